"""lower-graph: the q35 graph ops other than `linear` -> linalg, tensor, arith and math on tensors.

It runs after `materialize-weights` (embedding tables and norm gains must be `q35_storage.assemble`d storage)
and before `unpack-bits`, which lowers `q35.linear` and the `q35_storage.unpack` that a quantized embedding
leaves behind. Every op computes in f32 and rounds to its result element type once, at the end (`arith.truncf`
for f16 activations): the numpy reference (`q35c.verify.reference`) rounds at the same points.

The linalg op that carries each graph op's main loop nest is tagged `q35.kernel = "<op>"` (`embed`, `rmsnorm`,
`rope`, `attention`, `silu`, `mul`, `add`; `unpack-bits` adds `linear` and `unpack`), so that later passes and
cost models can tell kernels apart. Helper generics of the same op (a reduction feeding the tagged one, a final
rounding) are not tagged.

- embed: a gather. One generic over (t, d) reads id[t] and `tensor.extract`s table[id, d]. A quantized table
  is unpacked whole (`q35_storage.unpack`, lowered by unpack-bits) and the gather decodes only the rows it
  reads: w = offset[id, d/g] + scale[id, d/g] * e[id, d], as `q35c.formats.dequantize`. Ids must lie in
  [0, V): like any gather, an id out of range reads out of bounds.

      %x = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0)>, affine_map<(d0, d1) -> (d0, d1)>],
          iterator_types = ["parallel", "parallel"]} ins(%ids : tensor<1xi32>) outs(%0 : tensor<1x64xf16>)
          attrs = {q35.kernel = "embed"} {
      ^bb0(%id: i32, %out: f16):
        %row = arith.index_cast %id : i32 to index
        %col = linalg.index 1 : index
        %w = tensor.extract %table[%row, %col] : tensor<256x64xf16>
        linalg.yield %w : f16
      } -> tensor<1x64xf16>

- rmsnorm: ss[t] = sum_d x^2 (f32 reduction); y = x * rsqrt(ss/D + eps) * gain (`math.rsqrt`).
- rope: rotate-half per head, as Hugging Face Llama: with half = head_dim/2, x1 = x[..., :half] and
  x2 = x[..., half:] of each head, out = [x1 cos - x2 sin, x2 cos + x1 sin] at angle pos * inv_freq[i mod half],
  inv_freq[i] = theta^(-2i/head_dim) (an f32 constant vector). x is expanded to [T, heads, head_dim]; the
  partner element is read through the map (t, h, i) -> (t, h, (i + half) mod head_dim).
- attention: causal grouped-query attention over the C cached tokens followed by the T new ones (L = C + T):
      K = [k_cache; k], V = [v_cache; v]                (tensor.insert_slice into one [L, Hkv*hd] tensor)
      s[h, t, j] = (q[t, h, :] . K[j, h / G, :]) / sqrt(hd)          G = H / Hkv
      m[h, t] = max_{j valid} s,  e = exp(s - m) where j valid else 0,  l[h, t] = sum_j e
      o[t, h, :] = (sum_j e[h, t, j] V[j, h / G, :]) / l[h, t]
  where j is valid for query t iff j <= C + t; with the op's `positions` operand (a cache filled at run time)
  a cache row j < C is valid only when also j + t < pos[t] (below the sequence's first new position): the
  masked generics read pos through (.., t); with C = 0 there is no cache row and pos is not read. The (h, t)
  rows are loops of their own: q is expanded to [T, H, hd] and K, V to [L, Hkv, hd], read through
  (.., h floordiv G, ..). The tagged op is the e.V product;
  it also carries `q35.kv_append_bytes` (the bytes of k and v: what the step adds to the cache) and, for a
  batch, `q35.batch`, so the cost model reads them from the lowered IR as from the graph.
  The KV cache is read-only here: the step's new k and v are the last T rows of K and V, and writing them to
  cache slots C..C+T-1 (with positions: pos..pos+T-1) for the next step is the runtime's job (the graph form
  has no state; `runtime-kv-cache` makes the step return them).
  A batch of B sequences (`batch = B`: q, k, v of B*T rows, caches of B*C) adds an outer parallel loop b to
  every one of these generics: q becomes [B, T, H, hd], K and V [B, L, Hkv, hd] (sequence b's cache rows, then
  its new rows), so no sequence reads another's keys. B = 1 lowers exactly as above.
- silu: x / (1 + exp(-x)); mul, add: elementwise in f32.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from xdsl.context import Context
from xdsl.dialects import arith
from xdsl.dialects.builtin import (
    AnyFloat,
    DenseIntOrFPElementsAttr,
    ModuleOp,
    TensorType,
)
from xdsl.dialects.linalg.attrs import IteratorTypeAttr
from xdsl.dialects.linalg.ops import IndexOp
from xdsl.ir import BlockArgument, SSAValue
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    GreedyRewritePatternApplier,
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)
from xdsl.utils.exceptions import PassFailedException

from q35c.dialects.q35 import AddOp, AttentionOp, EmbedOp, MulOp, RMSNormOp, RopeOp, SiluOp
from q35c.dialects.q35_storage import CODES, AssembleOp, UnpackOp
from q35c.passes._build.attention import batched_map, record_appends, runtime_positions, split, with_cache
from q35c.passes._build.linalg import (
    PARALLEL,
    REDUCTION,
    Body,
    MapFn,
    Scalar,
    collapse_shape,
    element_type,
    empty,
    expand_shape,
    f32,
    fill,
    generic,
    identity,
    mark_kernel,
    shape_of,
    zeros,
)
from q35c.passes.unpack_bits import EraseDeadAssemble, effective_code, offsets, scales

NEG_INF = float("-inf")


def rope_inv_freq(head_dim: int, theta: float) -> NDArray[np.float32]:
    """inv_freq[i] = theta^(-2i/head_dim) for i < head_dim/2, computed in float64 and rounded to float32."""
    i = np.arange(head_dim // 2, dtype=np.float64)
    return (float(theta) ** (-2.0 * i / head_dim)).astype(np.float32)


def _assembled(value: SSAValue) -> AssembleOp | None:
    return value.owner if isinstance(value.owner, AssembleOp) else None


def _result_float(value: SSAValue) -> AnyFloat:
    element = element_type(value)
    assert isinstance(element, AnyFloat)
    return element


def _map_all(rewriter: PatternRewriter, inputs: Sequence[SSAValue], out: SSAValue, body: Body, name: str) -> SSAValue:
    """An elementwise generic (identity maps, all loops parallel) writing a fresh tensor shaped like `out`."""
    rank = len(shape_of(out))
    init = empty(rewriter, element_type(out), shape_of(out), f"{name}_init")
    maps = [identity(rank)] * (len(inputs) + 1)
    return generic(rewriter, inputs, init, maps, (PARALLEL,) * rank, body, name)


# --------------------------------------------------------------------------------------------------------------
# Patterns
# --------------------------------------------------------------------------------------------------------------


class LowerEmbed(RewritePattern):
    """`q35.embed` of an assembled table -> a gathering generic (decoding quantized rows on the fly)."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: EmbedOp, rewriter: PatternRewriter, /) -> None:
        if (table := _assembled(op.table)) is None:
            return
        out = _result_float(op.result)
        t, d = shape_of(op.result)
        scheme = table.packed_type.scheme
        storage = table.operand_for(CODES)
        assert storage is not None
        if scheme.is_quantized:
            codes = rewriter.insert(UnpackOp(table.result)).result
            scale, offset, g = scales(rewriter, table), offsets(rewriter, table), scheme.group_size(d)
        init = empty(rewriter, out, (t, d), "x_init")

        def body(s: Scalar, a: Sequence[BlockArgument]) -> SSAValue:
            row = s.to_index(a[0])
            col = s.builder.insert(IndexOp(1)).result
            if not scheme.is_quantized:
                return s.convert(s.extract(storage, (row, col)), out)
            group = s.to_index(s.divui(s.index(1), g))
            code = effective_code(s, scheme, s.extract(codes, (row, col)), 1)
            w = s.mulf(s.sitofp(code), s.to_f32(s.extract(scale, (row, group))))
            if offset is not None:
                w = s.addf(w, s.to_f32(s.extract(offset, (row, group))))
            return s.truncf(w, out)

        maps = [lambda t, d: (t,), identity(2)]
        x = generic(rewriter, [op.ids], init, maps, (PARALLEL, PARALLEL), body, "x", ("id", "out"))
        rewriter.replace(op, [], [mark_kernel(x, "embed")])


class LowerRMSNorm(RewritePattern):
    """`q35.rmsnorm` -> the f32 sum of squares per token, then x * rsqrt(ss/D + eps) * gain."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: RMSNormOp, rewriter: PatternRewriter, /) -> None:
        if (gamma := _assembled(op.gamma)) is None:
            return
        gain = gamma.operand_for(CODES)
        assert gain is not None
        t, d = shape_of(op.x)
        eps = op.eps.value.data

        def square_sum(s: Scalar, a: Sequence[BlockArgument]) -> SSAValue:
            x = s.to_f32(a[0])
            return s.addf(a[1], s.mulf(x, x))

        maps = [identity(2), lambda t, d: (t,)]
        ss = generic(rewriter, [op.x], zeros(rewriter, (t,), "ss"), maps, (PARALLEL, REDUCTION), square_sum, "ss")

        def normalize(s: Scalar, a: Sequence[BlockArgument]) -> SSAValue:
            inv_rms = s.rsqrt(s.addf(s.divf(a[1], float(d)), eps))
            return s.truncf(s.mulf(s.mulf(s.to_f32(a[0]), inv_rms), s.to_f32(a[2])), _result_float(op.result))

        init = empty(rewriter, element_type(op.result), (t, d), "y_init")
        maps = [identity(2), lambda t, d: (t,), lambda t, d: (d,), identity(2)]
        names = ("x", "ss", "gain", "out")
        y = generic(rewriter, [op.x, ss, gain], init, maps, (PARALLEL, PARALLEL), normalize, "y", names)
        rewriter.replace(op, [], [mark_kernel(y, "rmsnorm")])


class LowerRope(RewritePattern):
    """`q35.rope` -> one generic over (token, head, i) reading x[i] and its rotate-half partner."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: RopeOp, rewriter: PatternRewriter, /) -> None:
        t, d = shape_of(op.x)
        hd = op.head_dim.value.data
        half, heads = hd // 2, d // hd
        inv_freq_type = TensorType(f32, (half,))
        values = [float(v) for v in rope_inv_freq(hd, op.theta.value.data)]
        constant = arith.ConstantOp(DenseIntOrFPElementsAttr.from_list(inv_freq_type, values))
        inv_freq = rewriter.insert(constant).result
        inv_freq.name_hint = "inv_freq"
        x3 = expand_shape(rewriter, op.x, [[0], [1, 2]], (t, heads, hd), "x_heads")
        out = _result_float(op.result)

        def rotate(s: Scalar, a: Sequence[BlockArgument]) -> SSAValue:
            x, partner = s.to_f32(a[0]), s.to_f32(a[1])
            angle = s.mulf(s.sitofp(a[2]), a[3])
            x_cos, partner_sin = s.mulf(x, s.cos(angle)), s.mulf(partner, s.sin(angle))
            first_half = s.cmpi(s.index(2), half, "slt")  # x = x1, partner = x2: x1 cos - x2 sin
            return s.truncf(s.select(first_half, s.subf(x_cos, partner_sin), s.addf(x_cos, partner_sin)), out)

        maps = [
            identity(3),
            lambda t, h, i: (t, h, (i + half) % hd),
            lambda t, h, i: (t,),
            lambda t, h, i: (i % half,),
            identity(3),
        ]
        init = empty(rewriter, out, (t, heads, hd), "rope_init")
        names = ("x", "partner", "pos", "inv_freq", "out")
        y3 = generic(rewriter, [x3, x3, op.positions, inv_freq], init, maps, (PARALLEL,) * 3, rotate, "rope", names)
        mark_kernel(y3, "rope")
        rewriter.replace(op, [], [collapse_shape(rewriter, y3, [[0], [1, 2]], (t, d), "y")])


class LowerElementwise(RewritePattern):
    """`q35.silu`, `q35.mul`, `q35.add` -> one elementwise generic in f32, rounded to the result type."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: SiluOp | MulOp | AddOp, rewriter: PatternRewriter, /) -> None:
        out = _result_float(op.result)
        if isinstance(op, SiluOp):
            inputs: list[SSAValue] = [op.x]
            kernel = "silu"

            def body(s: Scalar, a: Sequence[BlockArgument]) -> SSAValue:
                x = s.to_f32(a[0])
                return s.truncf(s.divf(x, s.addf(s.exp(s.negf(x)), 1.0)), out)
        else:
            inputs = [op.lhs, op.rhs]
            kernel = "mul" if isinstance(op, MulOp) else "add"
            combine = Scalar.mulf if isinstance(op, MulOp) else Scalar.addf

            def body(s: Scalar, a: Sequence[BlockArgument]) -> SSAValue:
                return s.truncf(combine(s, s.to_f32(a[0]), s.to_f32(a[1])), out)

        y = _map_all(rewriter, inputs, op.result, body, "y")
        rewriter.replace(op, [], [mark_kernel(y, kernel)])


class LowerAttention(RewritePattern):
    """`q35.attention` -> scores, masked row max, exponentials and their sum, e.V, normalisation.

    A batch of B > 1 sequences adds an outermost parallel loop b to every generic (and a leading B dimension to
    every tensor), so sequence b reads only its own rows; B = 1 lowers without it."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: AttentionOp, rewriter: PatternRewriter, /) -> None:
        h, hkv, hd = op.num_heads.value.data, op.num_kv_heads.value.data, op.head_dim.value.data
        group = h // hkv
        b, t, c = op.batch, op.seq_len, op.cache_len
        length = c + t
        lead = (b,) if b > 1 else ()
        at = len(lead)  # the loop index of the first per-sequence loop

        def loops(*kinds: IteratorTypeAttr) -> tuple[IteratorTypeAttr, ...]:
            return (PARALLEL,) * at + kinds

        def per_seq(fn: MapFn | int) -> MapFn:
            return batched_map(fn, at)

        q = expand_shape(rewriter, op.q, split(at), (*lead, t, h, hd), "q_heads")
        k = with_cache(rewriter, op.k_cache, op.k, (*lead, length, hkv, hd), "k_all")
        v = with_cache(rewriter, op.v_cache, op.v, (*lead, length, hkv, hd), "v_all")
        scale = 1.0 / math.sqrt(hd)

        # With positions, cache row j is filled only below the sequence's first new position: query t sees it
        # when j + t < pos[t]. No cache rows (C = 0): nothing to mask, positions unread.
        positions = runtime_positions(rewriter, op, lead)

        def valid(s: Scalar, t_dim: int, j_dim: int, pos: SSAValue | None = None) -> SSAValue:
            """Query t sees the cache and the new tokens up to itself: j <= C + t (and j + t < pos[t] for a
            cache row when the cache is filled at run time)."""
            j, t_index = s.index(at + j_dim), s.index(at + t_dim)
            causal = s.cmpi(j, s.addi(t_index, c), "sle")
            if pos is None:
                return causal
            filled = s.ori(s.cmpi(j, c, "sge"), s.cmpi(s.addi(j, t_index), pos, "slt"))
            return s.andi(causal, filled)

        def dot(s: Scalar, a: Sequence[BlockArgument]) -> SSAValue:
            return s.addf(a[2], s.mulf(s.to_f32(a[0]), s.to_f32(a[1])))

        # s[h, t, j] over loops (h, t, j, d)
        maps = [lambda h, t, j, d: (t, h, d), lambda h, t, j, d: (j, h // group, d), lambda h, t, j, d: (h, t, j)]
        dot_loops = loops(PARALLEL, PARALLEL, PARALLEL, REDUCTION)
        scores_init = zeros(rewriter, (*lead, h, t, length), "scores")
        dots = generic(rewriter, [q, k], scores_init, [per_seq(m) for m in maps], dot_loops, dot, "dots")
        scores = _map_all(rewriter, [dots], dots, lambda s, a: s.mulf(a[0], scale), "scores")

        pos_in = [] if positions is None else [positions]
        pos_maps = [] if positions is None else [per_seq(lambda h, t, j: (t,))]
        pos_names = () if positions is None else ("pos",)

        def row_max(s: Scalar, a: Sequence[BlockArgument]) -> SSAValue:
            pos = a[1] if positions is not None else None
            return s.maximumf(a[-1], s.select(valid(s, 1, 2, pos), a[0], s.fconst(NEG_INF)))

        row_maps = [per_seq(3), per_seq(lambda h, t, j: (h, t))]
        row_loops = loops(PARALLEL, PARALLEL, REDUCTION)
        m_init = fill(rewriter, NEG_INF, f32, (*lead, h, t), "max")
        max_maps = [row_maps[0], *pos_maps, row_maps[1]]
        m = generic(rewriter, [scores, *pos_in], m_init, max_maps, row_loops, row_max, "max", ("s", *pos_names, "max"))

        def exponent(s: Scalar, a: Sequence[BlockArgument]) -> SSAValue:
            pos = a[2] if positions is not None else None
            return s.select(valid(s, 1, 2, pos), s.exp(s.subf(a[0], a[1])), s.fconst(0.0))

        e_init = empty(rewriter, f32, (*lead, h, t, length), "e_init")
        e_maps = [per_seq(3), per_seq(lambda h, t, j: (h, t)), *pos_maps, per_seq(3)]
        e_names = ("s", "max", *pos_names, "out")
        e = generic(rewriter, [scores, m, *pos_in], e_init, e_maps, loops(*(PARALLEL,) * 3), exponent, "e", e_names)
        total = lambda s, a: s.addf(a[1], a[0])  # noqa: E731
        sums = zeros(rewriter, (*lead, h, t), "sum")
        denominators = generic(rewriter, [e], sums, row_maps, row_loops, total, "sum")

        # o[t, h, d] over loops (t, h, d, j)
        pv_maps = [lambda t, h, d, j: (h, t, j), lambda t, h, d, j: (j, h // group, d), lambda t, h, d, j: (t, h, d)]
        pv_init = zeros(rewriter, (*lead, t, h, hd), "o")
        o = generic(rewriter, [e, v], pv_init, [per_seq(m) for m in pv_maps], dot_loops, dot, "o", ("e", "v", "o"))
        mark_kernel(o, "attention")
        record_appends(o, op)

        out = _result_float(op.result)
        norm_maps = [per_seq(3), per_seq(lambda t, h, d: (h, t)), per_seq(3)]
        norm_init = empty(rewriter, out, (*lead, t, h, hd), "attn_init")
        normalize = lambda s, a: s.truncf(s.divf(a[0], a[1]), out)  # noqa: E731
        attn = generic(rewriter, [o, denominators], norm_init, norm_maps, loops(*(PARALLEL,) * 3), normalize, "attn")
        collapsed = [[0, 1], [2, 3]] if lead else [[0], [1, 2]]
        rewriter.replace(op, [], [collapse_shape(rewriter, attn, collapsed, (b * t, h * hd), "attn_out")])


# --------------------------------------------------------------------------------------------------------------
# The pass
# --------------------------------------------------------------------------------------------------------------


def check_lowerable(module: ModuleOp) -> None:
    """PassFailedException where an embedding table or norm gain has no known storage."""
    for op in module.walk():
        operand: SSAValue | None = None
        if isinstance(op, EmbedOp):
            operand, what = op.table, "table"
        elif isinstance(op, RMSNormOp):
            operand, what = op.gamma, "gain"
        if operand is not None and _assembled(operand) is None:
            raise PassFailedException(
                f"{op.name} {what} has no known storage (it is not a q35_storage.assemble): "
                "run materialize-weights before lower-graph"
            )


@dataclass(frozen=True)
class LowerGraphPass(ModulePass):
    """Lower embed, rmsnorm, rope, attention, silu, mul and add to linalg/tensor/arith/math on tensors."""

    name = "lower-graph"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        check_lowerable(op)
        patterns: list[RewritePattern] = [
            LowerEmbed(),
            LowerRMSNorm(),
            LowerRope(),
            LowerAttention(),
            LowerElementwise(),
            EraseDeadAssemble(),
        ]
        PatternRewriteWalker(GreedyRewritePatternApplier(patterns)).rewrite_module(op)
