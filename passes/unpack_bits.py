"""unpack-bits: packed weights -> integer codes -> dequantized values -> matmul, in linalg + arith.

It rewrites the users of a packed value whose storage is known (a `q35_storage.assemble`, as made by
`materialize-weights`): `q35_storage.unpack` and `q35.linear`. Every bit layout follows docs/formats.md.

Codes (`q35c.passes._build.unpack_codes`): one `linalg.generic` per weight over its storage's natural units -- int4
words (n, word, i < 8), q3p5 pairs (n, pair, slot < 2), q4_0/q8_0 blocks -- so that where a code lives comes
from static loop indices (address arithmetic that unrolling folds away), and the data work is a shift pair
per code (`arith.shli` then `arith.shrsi`: extracted and sign-extended, no mask), plus, once per q3p5 pair,
joining its 7 bits from one or two words, and once per q4_0 byte, an `arith.xori`. The result is made [N, K]
by `tensor.collapse_shape`. q3p5 dense, with the pair join done once per pair:

    %steps_grid = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, ((d1 * 7) floordiv 32))>,
        affine_map<(d0, d1, d2) -> (d0, (((d1 * 7) + 6) floordiv 32))>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>],
        iterator_types = ["parallel", "parallel", "parallel"]}
        ins(%words, %words : tensor<4x7xi32>, tensor<4x7xi32>) outs(%codes_init : tensor<4x32x2xi8>) {
    ^bb0(%lo: i32, %hi: i32, %0: i8):
      ...                                                  // %bit = 7p mod 32, %wrap = min(32 - %bit, 31)
      %1 = arith.shrui %lo, %bit : i32
      %2 = arith.shli %hi, %wrap : i32
      %pair = arith.ori %1, %2 : i32                       // the pair code in bits [0, 7)
      ...                                                  // %left = 25 + 4 slot
      %3 = arith.shli %pair, %left : i32
      %4 = arith.shrsi %3, %c28 : i32                      // n1 (slot 0) or 2 n2 (slot 1)
      %5 = arith.trunci %4 : i32 to i8
      linalg.yield %5 : i8
    } -> tensor<4x32x2xi8>
    %steps = tensor.collapse_shape %steps_grid [[0], [1, 2]] : tensor<4x32x2xi8> into tensor<4x64xi8>

`q35_storage.unpack` gets the codes themselves (n1, n2); the linear lowerings get each code times its slot's
step (n1, 2 n2: what w = offset + scale * e multiplies), which the same shift pair yields at no extra cost.
q4_0/q8_0's float16 block scales are two little-endian bytes, assembled with a shift, an or and an
`arith.bitcast` to f16, once per block. The other llama.cpp formats (`_build/ggml_codes.py`) decode their scales
the same way, and the K-quants' and iq4_xs's sub-block scale (and min) from its packed field, times the block's d
(dmin) in f32, once per sub-block; the formats with a min (q4_1, q5_1, q2_k, q4_k, q5_k) give an offset tensor
(-dmin * min) that dequantization adds as it adds int4's and q3p5's.

Linear (default): over loops (n, j, i) of group j, w[n, j*g+i] = math.fma(sitofp(e), scale[n, j],
offset[n, j]) in f32 (`arith.mulf` for symmetric schemes; the scales are converted to f32 once per group),
collapsed to [N, K]; then y = x @ w^T with f32 accumulation (a zero-filled accumulator, iterators parallel,
parallel, reduction) and a final `arith.truncf` when x is f16.

Linear with `keep-int-codes=true`, for matrix units that take integer weights: the codes are not dequantized
before the matmul. Per group j of g weights (k = j*g + i), the products of the activations with the integer
codes are summed first, and scale and offset are applied once per group:

    P[t, n, j] = sum_i x[t, jg+i] * e[n, jg+i]            (the integer codes, converted to f32 exactly)
    X[t, j]    = sum_i x[t, jg+i]                          (asymmetric schemes only)
    y[t, n]    = sum_j scale[n, j] * P[t, n, j] + offset[n, j] * X[t, j]

which equals x @ w^T in exact arithmetic. x and the codes are split into groups with `tensor.expand_shape`
([T, K] -> [T, K/g, g]) so that P is one generic with loops (t, n, j, i). Activations stay float here, so P
and X are f32 sums of float products; a target that quantizes activations to integers would accumulate P
in i32 instead.
fp16 weights have no codes and always take the default path.

Kernel tags: the matmul generic (the P generic with keep-int-codes) carries `q35.kernel = "linear"` and the
codes generic `q35.kernel = "unpack"` (see `q35c.passes._build.linalg.mark_kernel`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import tensor
from xdsl.dialects.builtin import (
    AnyFloat,
    ArrayAttr,
    IntegerAttr,
    ModuleOp,
    TensorType,
    i8,
    i16,
    i32,
    i64,
)
from xdsl.ir import Attribute, BlockArgument, SSAValue
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    GreedyRewritePatternApplier,
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)

from q35c.dialects.q35 import LinearOp
from q35c.dialects.q35_storage import CODES, OFFSET, SCALE, AssembleOp, UnpackOp
from q35c.ir.schemes import Scheme
from q35c.passes._build.ggml_codes import WITH_MIN, iq4_value, scale_body, scale_layout, scale_type
from q35c.passes._build.linalg import (
    PARALLEL,
    REDUCTION,
    MapFn,
    Scalar,
    collapse_shape,
    empty,
    f16,
    f32,
    generic,
    identity,
    mark_kernel,
    named,
    zeros,
)
from q35c.passes._build.unpack_codes import codes_generic

# --------------------------------------------------------------------------------------------------------------
# Codes, scales, offsets
# --------------------------------------------------------------------------------------------------------------


def codes(rewriter: PatternRewriter, w: AssembleOp, steps: bool = False) -> SSAValue:
    """The int8 codes [N, K] of an assembled weight (int8 storage already is its codes); with `steps`, each code
    times its slot's step (q3p5's odd slot doubled): the integer e of w = offset + scale * e."""
    scheme, (n, k) = w.packed_type.scheme, w.packed_type.get_shape()
    storage = w.operand_for(CODES)
    assert storage is not None
    if scheme.codes_are_storage:
        return storage
    return codes_generic(rewriter, scheme, storage, n, k, steps)


def _f16_from_bytes(s: Scalar, args: Sequence[BlockArgument]) -> SSAValue:
    lo, hi = s.extui(args[0], i16), s.extui(args[1], i16)
    return s.bitcast(s.ori(lo, s.shli(hi, 8)), f16)


def _ggml_scales(rewriter: PatternRewriter, w: AssembleOp, want_min: bool) -> SSAValue:
    """Scales (or offsets) [N, K/g] of a llama.cpp block format other than q4_0/q8_0 (`_build.ggml_codes`)."""
    name, (n, k) = w.packed_type.scheme.name, w.packed_type.get_shape()
    blocks = w.operand_for(CODES)
    assert blocks is not None
    loops, maps = scale_layout(name, n, k, want_min)
    out = empty(rewriter, scale_type(name), loops, "offset_init" if want_min else "scale_init")
    body = lambda s, a: scale_body(name, s, a, want_min)  # noqa: E731
    what = "offset" if want_min else "scale"
    rank = len(loops)
    maps_all = [*maps, identity(rank)]
    grid = generic(rewriter, [blocks] * len(maps), out, maps_all, (PARALLEL,) * rank, body, f"{what}_grid")
    if rank == 2:  # one per block of 32: already [N, K/32]
        return named(grid, what)
    groups = (n, k // w.packed_type.scheme.group_size(k))
    return collapse_shape(rewriter, grid, ((0,), tuple(range(1, rank))), groups, what)


def offsets(rewriter: PatternRewriter, w: AssembleOp) -> SSAValue | None:
    """The offsets [N, K/g]: an operand, the mins of the llama.cpp formats that have one (q4_1, q5_1: the
    float16 m of every block; q2_k, q4_k, q5_k: -dmin times each sub-block's min), or None (symmetric)."""
    offset = w.operand_for(OFFSET)
    if offset is not None:
        return offset
    if w.packed_type.scheme.name in WITH_MIN:
        return _ggml_scales(rewriter, w, want_min=True)
    return None


def scales(rewriter: PatternRewriter, w: AssembleOp) -> SSAValue:
    """The scales [N, K/g]: an operand (float16), for q4_0/q8_0 the first two bytes of every block (float16), for
    the other llama.cpp formats `_ggml_scales` (float16 d per block of 32, float32 d * sub-scale per sub-block)."""
    scale = w.operand_for(SCALE)
    if scale is not None:
        return scale
    scheme, (n, k) = w.packed_type.scheme, w.packed_type.get_shape()
    if scheme.name not in ("q4_0", "q8_0"):
        return _ggml_scales(rewriter, w, want_min=False)
    blocks = w.operand_for(CODES)
    block, size = scheme.storage_ratio  # weights and bytes per block
    assert blocks is not None and scheme.block_scales
    maps = [lambda n, b: (n, b * size), lambda n, b: (n, b * size + 1), identity(2)]
    out = empty(rewriter, f16, (n, k // block), "scale_init")
    names = ("scale_lo", "scale_hi")
    return generic(rewriter, [blocks, blocks], out, maps, (PARALLEL, PARALLEL), _f16_from_bytes, "scale", names)


def effective_code(s: Scalar, scheme: Scheme, code: SSAValue, parity_dim: int) -> SSAValue:
    """The code times its slot's step (`Scheme.slot_steps`) as an i8: doubled at the odd (3-bit) q3p5 slot, else
    itself (iq4_nl/iq4_xs: the 4-bit index's value in the non-linear table).

    `parity_dim` is the loop whose index has the parity of k. For bodies that read single codes (the embedding
    gather of lower-graph); the linear lowerings take the steps from the codes generic instead.
    """
    if scheme.name in ("iq4_nl", "iq4_xs"):
        return s.trunci(iq4_value(s, s.extui(code, i32)), i8)
    if scheme.slot_steps == (1,):
        return code
    assert scheme.slot_steps == (1, 2), scheme.slot_steps
    return s.select(s.is_odd(s.index(parity_dim)), s.shli(code, 1), code)


# --------------------------------------------------------------------------------------------------------------
# Patterns
# --------------------------------------------------------------------------------------------------------------


def _assembled(value: SSAValue) -> AssembleOp | None:
    return value.owner if isinstance(value.owner, AssembleOp) else None


class LowerUnpack(RewritePattern):
    """`q35_storage.unpack` of an assembled weight -> the codes generic."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: UnpackOp, rewriter: PatternRewriter, /) -> None:
        if (w := _assembled(op.weight)) is None:
            return
        rewriter.replace(op, [], [codes(rewriter, w)])


def _matmul(rewriter: PatternRewriter, x: SSAValue, w: SSAValue, out_type: TensorType[Attribute]) -> SSAValue:
    """y = x @ w^T with f32 accumulation, truncated to the output element type."""
    t, n = out_type.get_shape()
    maps = [lambda t, n, k: (t, k), lambda t, n, k: (n, k), lambda t, n, k: (t, n)]

    def body(s: Scalar, a: Sequence[BlockArgument]) -> SSAValue:
        return s.addf(a[2], s.mulf(s.to_f32(a[0]), s.to_f32(a[1])))

    init = zeros(rewriter, (t, n), "acc")
    loops = (PARALLEL, PARALLEL, REDUCTION)
    acc = mark_kernel(generic(rewriter, [x, w], init, maps, loops, body, "acc", ("x", "w", "acc")), "linear")
    return _truncate(rewriter, acc, out_type)


def _truncate(rewriter: PatternRewriter, acc: SSAValue, out_type: TensorType[Attribute]) -> SSAValue:
    element = out_type.element_type
    if element == f32:
        return acc
    assert isinstance(element, AnyFloat)
    out = empty(rewriter, element, out_type.get_shape(), "y_init")
    truncate = lambda s, a: s.truncf(a[0], element)  # noqa: E731
    return generic(
        rewriter, [acc], out, [identity(2), identity(2)], (PARALLEL, PARALLEL), truncate, "y", ("acc", "out")
    )


def _dequantize(rewriter: PatternRewriter, w: AssembleOp) -> SSAValue:
    """w[n, j*g + i] = offset[n, j] + scale[n, j] * e[n, j*g + i] as tensor<NxKxf32>, over loops (n, j, i):
    one conversion and one `math.fma` per weight (a `mulf` without offset), the scales converted per group."""
    scheme, (n, k) = w.packed_type.scheme, w.packed_type.get_shape()
    g = scheme.group_size(k)
    inputs = [codes(rewriter, w, steps=True), scales(rewriter, w)]
    maps: list[MapFn] = [lambda n, j, i: (n, j * g + i), lambda n, j, i: (n, j)]
    offset = offsets(rewriter, w)
    if offset is not None:
        inputs.append(offset)
        maps.append(lambda n, j, i: (n, j))
    maps.append(identity(3))

    def body(s: Scalar, a: Sequence[BlockArgument]) -> SSAValue:
        e, scale = s.sitofp(a[0]), s.to_f32(a[1])
        return s.mulf(scale, e) if offset is None else s.fma(e, scale, s.to_f32(a[2]))

    out = empty(rewriter, f32, (n, k // g, g), "w_init")
    names = ("e", "scale", "offset")[: len(inputs)]
    grid = generic(rewriter, inputs, out, maps, (PARALLEL,) * 3, body, "w_grid", (*names, "out"))
    return collapse_shape(rewriter, grid, ((0,), (1, 2)), (n, k), "w")


def _split_groups(rewriter: PatternRewriter, value: SSAValue, g: int, name: str) -> SSAValue:
    """[R, K] -> [R, K/g, g] with tensor.expand_shape, so the group index is a loop of its own."""
    typ = value.type
    assert isinstance(typ, TensorType)
    rows, k = typ.get_shape()
    shape = (rows, k // g, g)
    reassociation = ArrayAttr([ArrayAttr([IntegerAttr(0, i64)]), ArrayAttr([IntegerAttr(1, i64), IntegerAttr(2, i64)])])
    op = rewriter.insert(tensor.ExpandShapeOp(value, [], reassociation, shape, TensorType(typ.element_type, shape)))
    op.result.name_hint = name
    return op.result


def _int_code_linear(
    rewriter: PatternRewriter, x: SSAValue, w: AssembleOp, out_type: TensorType[Attribute]
) -> SSAValue:
    """y = sum_j scale[n,j] * P[t,n,j] + offset[n,j] * X[t,j] (see the module docstring)."""
    scheme, (n, k) = w.packed_type.scheme, w.packed_type.get_shape()
    t = out_type.get_shape()[0]
    g = scheme.group_size(k)
    x_groups = _split_groups(rewriter, x, g, "x_groups")
    code_groups = _split_groups(rewriter, codes(rewriter, w, steps=True), g, "code_groups")

    def partial(s: Scalar, a: Sequence[BlockArgument]) -> SSAValue:
        return s.addf(a[2], s.mulf(s.to_f32(a[0]), s.sitofp(a[1])))

    p_maps = [lambda t, n, j, i: (t, j, i), lambda t, n, j, i: (n, j, i), lambda t, n, j, i: (t, n, j)]
    p_init = zeros(rewriter, (t, n, k // g), "p")
    p_loops = (PARALLEL, PARALLEL, PARALLEL, REDUCTION)
    p = generic(rewriter, [x_groups, code_groups], p_init, p_maps, p_loops, partial, "p", ("x", "e", "p"))
    mark_kernel(p, "linear")
    inputs = [p, scales(rewriter, w)]
    maps: list[MapFn] = [lambda t, n, j: (t, n, j), lambda t, n, j: (n, j)]
    offset = offsets(rewriter, w)
    if offset is not None:
        x_maps = [lambda t, j, i: (t, j, i), lambda t, j, i: (t, j)]
        x_init = zeros(rewriter, (t, k // g), "xsum")
        x_sum = lambda s, a: s.addf(a[1], s.to_f32(a[0]))  # noqa: E731
        x_loops = (PARALLEL, PARALLEL, REDUCTION)
        xsum = generic(rewriter, [x_groups], x_init, x_maps, x_loops, x_sum, "xsum", ("x", "xsum"))
        inputs += [offset, xsum]
        maps += [lambda t, n, j: (n, j), lambda t, n, j: (t, j)]

    def combine(s: Scalar, a: Sequence[BlockArgument]) -> SSAValue:
        acc = s.addf(a[-1], s.mulf(s.to_f32(a[1]), a[0]))
        return acc if offset is None else s.addf(acc, s.mulf(s.to_f32(a[2]), a[3]))

    maps.append(lambda t, n, j: (t, n))
    acc_init = zeros(rewriter, (t, n), "acc")
    names = ("p", "scale", "offset", "xsum")[: len(inputs)]
    acc = generic(rewriter, inputs, acc_init, maps, (PARALLEL, PARALLEL, REDUCTION), combine, "acc", (*names, "acc"))
    return _truncate(rewriter, acc, out_type)


@dataclass(frozen=True)
class LowerLinear(RewritePattern):
    """`q35.linear` of an assembled weight -> codes, dequantization (or per-group scaling) and matmul."""

    keep_int_codes: bool = False

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: LinearOp, rewriter: PatternRewriter, /) -> None:
        if (w := _assembled(op.weight)) is None:
            return
        out_type = op.result.type
        assert isinstance(out_type, TensorType)
        if not w.packed_type.scheme.is_quantized:
            storage = w.operand_for(CODES)
            assert storage is not None
            y = _matmul(rewriter, op.x, storage, out_type)
        elif self.keep_int_codes:
            y = _int_code_linear(rewriter, op.x, w, out_type)
        else:
            y = _matmul(rewriter, op.x, _dequantize(rewriter, w), out_type)
        rewriter.replace(op, [], [y])


class EraseDeadAssemble(RewritePattern):
    """An `assemble` nothing uses any more is erased (its storage tensors stay)."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: AssembleOp, rewriter: PatternRewriter, /) -> None:
        if op.result.uses:
            return
        rewriter.erase_op(op)


@dataclass(frozen=True)
class UnpackBitsPass(ModulePass):
    """Lower `q35.linear` and `q35_storage.unpack` of assembled weights to linalg + arith on storage tensors."""

    name = "unpack-bits"

    keep_int_codes: bool = False

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        patterns = [LowerLinear(self.keep_int_codes), LowerUnpack(), EraseDeadAssemble()]
        PatternRewriteWalker(GreedyRewritePatternApplier(patterns)).rewrite_module(op)
