"""unpack-bits: packed weights -> integer codes -> dequantized values -> matmul, in linalg + arith.

It rewrites the users of a packed value whose storage is known (a `q35_storage.assemble`, as made by
`materialize-weights`): `q35_storage.unpack` and `q35.linear`. Every bit layout follows DESIGN section 3.

Codes: one `linalg.generic` over (n, k) -> tensor<NxKxi8>. Indexing maps pick the storage element(s) of weight
(n, k); the body moves its field down with `arith.shrui`, masks it with `arith.andi` and sign-extends it with
`arith.shli` + `arith.shrsi` (in i32, then `arith.trunci` to i8). int4, code j of a word in bits [4j, 4j+4):

    %codes = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, (d1 floordiv 8))>,
        affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]}
        ins(%words : tensor<4x8xi32>) outs(%codes_init : tensor<4x64xi8>) {
    ^bb0(%word: i32, %0: i8):
      %1 = linalg.index 1 : index
      %2 = arith.index_cast %1 : index to i32
      %3 = arith.constant 7 : i32
      %4 = arith.andi %2, %3 : i32
      %5 = arith.constant 2 : i32
      %shift = arith.shli %4, %5 : i32                // 4 * (k mod 8)
      %6 = arith.shrui %word, %shift : i32
      %7 = arith.constant 15 : i32
      %8 = arith.andi %6, %7 : i32
      %9 = arith.constant 28 : i32
      %10 = arith.shli %8, %9 : i32
      %11 = arith.shrsi %10, %9 : i32                 // sign-extended 4-bit code
      %12 = arith.trunci %11 : i32 to i8
      linalg.yield %12 : i8
    } -> tensor<4x64xi8>

q3p5 dense reads two words per weight, w = 7p/32 and w' = (7p+6)/32 for pair p = k/2 (the words holding the
pair's first and last bit: equal unless the pair straddles a word boundary). The two form a 64-bit window
w':w, shifted right by 7p mod 32 and masked to the 7-bit pair code c; n1 = sext4(c >> 3) at even k,
n2 = sext3(c & 7) at odd k. q4_0 reads byte 18*(k/32) + 2 + k%16 and takes its low nibble for k%32 < 16,
its high nibble otherwise, minus 8; q8_0 reads byte 34*(k/32) + 2 + k%32. Their float16 block scales are
two little-endian bytes, assembled with shifts and an `arith.bitcast` to f16.

Linear (default): w[n, k] = offset[n, k/g] + scale[n, k/g] * e[n, k] in f32, where e is the code, doubled
(`arith.shli` by 1) at the odd, 3-bit q3p5 slot; then y = x @ w^T with f32 accumulation (a zero-filled
accumulator, iterators parallel, parallel, reduction) and a final `arith.truncf` when x is f16.

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
codes generic `q35.kernel = "unpack"` (see `q35c.passes._linalg.mark_kernel`).
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
from q35c.passes._linalg import (
    PARALLEL,
    REDUCTION,
    Body,
    MapFn,
    Scalar,
    empty,
    f16,
    f32,
    generic,
    identity,
    mark_kernel,
    named,
    zeros,
)
from q35c.schemes import LLAMA_BLOCK, LLAMA_BLOCK_BYTES, Scheme

# --------------------------------------------------------------------------------------------------------------
# Codes, scales, offsets
# --------------------------------------------------------------------------------------------------------------


def _split_pair(s: Scalar, pair: SSAValue, k: SSAValue) -> SSAValue:
    """q3p5: the 7-bit pair code c (i32) -> n1 = sext4(c >> 3) at even k, n2 = sext3(c & 7) at odd k."""
    n1 = named(s.sext(s.andi(s.shrui(pair, 3), 0xF), 4), "n1")
    n2 = named(s.sext(s.andi(pair, 0x7), 3), "n2")
    return s.select(s.is_odd(k), n2, n1)


def _int4_code(s: Scalar, args: Sequence[BlockArgument]) -> SSAValue:
    word, k = args[0], s.index(1)
    shift = named(s.shli(s.andi(k, 7), 2), "shift")  # 4 * (k mod 8)
    return s.trunci(s.sext(s.andi(s.shrui(word, shift), 0xF), 4), i8)


def _q3p5_byte_code(s: Scalar, args: Sequence[BlockArgument]) -> SSAValue:
    return s.trunci(_split_pair(s, s.extui(args[0], i32), s.index(1)), i8)


def _q3p5_dense_code(s: Scalar, args: Sequence[BlockArgument]) -> SSAValue:
    lo, hi, k = args[0], args[1], s.index(1)
    bit = named(s.andi(s.muli(s.shrui(k, 1), 7), 31), "bit")  # 7p mod 32: where pair p starts in `lo`
    window = named(s.ori(s.shli(s.extui(hi, i64), 32), s.extui(lo, i64)), "window")  # hi:lo
    pair = named(s.trunci(s.andi(s.shrui(window, s.extui(bit, i64)), 0x7F), i32), "pair")
    return s.trunci(_split_pair(s, pair, k), i8)


def _q4_0_code(s: Scalar, args: Sequence[BlockArgument]) -> SSAValue:
    byte, k = s.extui(args[0], i32), s.index(1)
    shift = named(s.shli(s.andi(s.shrui(k, 4), 1), 2), "shift")  # 0 for k%32 < 16 (low nibble), else 4
    return s.trunci(s.subi(s.andi(s.shrui(byte, shift), 0xF), 8), i8)


def _copy(s: Scalar, args: Sequence[BlockArgument]) -> SSAValue:
    return args[0]


@dataclass(frozen=True)
class _CodeLayout:
    """Where the code of weight (n, k) lives: the storage elements it reads (one map each) and its decoding."""

    maps: tuple[MapFn, ...]
    decode: Body
    arg_names: tuple[str, ...]


def _layout(scheme: Scheme) -> _CodeLayout:
    if scheme.name == "int4":
        return _CodeLayout((lambda n, k: (n, k // 8),), _int4_code, ("word",))
    if scheme.name == "q3p5" and scheme.container == "byte":
        return _CodeLayout((lambda n, k: (n, k // 2),), _q3p5_byte_code, ("pair_byte",))
    if scheme.name == "q3p5":
        # Pair p = k/2 occupies stream bits [7p, 7p + 7): the words holding its first and its last bit.
        first = lambda n, k: (n, (k // 2 * 7) // 32)  # noqa: E731
        last = lambda n, k: (n, (k // 2 * 7 + 6) // 32)  # noqa: E731
        return _CodeLayout((first, last), _q3p5_dense_code, ("lo", "hi"))
    block, size = LLAMA_BLOCK, LLAMA_BLOCK_BYTES[scheme.name]
    if scheme.name == "q4_0":  # after the 2-byte scale, byte j holds elements j and j + 16
        return _CodeLayout((lambda n, k: (n, k // block * size + 2 + k % (block // 2)),), _q4_0_code, ("byte",))
    return _CodeLayout((lambda n, k: (n, k // block * size + 2 + k % block),), _copy, ("byte",))


def codes(rewriter: PatternRewriter, w: AssembleOp) -> SSAValue:
    """The int8 codes [N, K] of an assembled weight (int8 storage already is its codes)."""
    scheme, (n, k) = w.packed_type.scheme, w.packed_type.get_shape()
    storage = w.operand_for(CODES)
    assert storage is not None
    if scheme.name == "int8":
        return storage
    layout = _layout(scheme)
    inputs = [storage] * len(layout.maps)
    out = empty(rewriter, i8, (n, k), "codes_init")
    maps = [*layout.maps, identity(2)]
    result = generic(rewriter, inputs, out, maps, (PARALLEL, PARALLEL), layout.decode, "codes", layout.arg_names)
    return mark_kernel(result, "unpack")


def _f16_from_bytes(s: Scalar, args: Sequence[BlockArgument]) -> SSAValue:
    lo, hi = s.extui(args[0], i16), s.extui(args[1], i16)
    return s.bitcast(s.ori(lo, s.shli(hi, 8)), f16)


def scales(rewriter: PatternRewriter, w: AssembleOp) -> SSAValue:
    """The float16 scales [N, K/g]: an operand, or for q4_0/q8_0 the first two bytes of every block."""
    scale = w.operand_for(SCALE)
    if scale is not None:
        return scale
    scheme, (n, k) = w.packed_type.scheme, w.packed_type.get_shape()
    blocks, size = w.operand_for(CODES), LLAMA_BLOCK_BYTES[scheme.name]
    assert blocks is not None
    maps = [lambda n, b: (n, b * size), lambda n, b: (n, b * size + 1), identity(2)]
    out = empty(rewriter, f16, (n, k // LLAMA_BLOCK), "scale_init")
    names = ("scale_lo", "scale_hi")
    return generic(rewriter, [blocks, blocks], out, maps, (PARALLEL, PARALLEL), _f16_from_bytes, "scale", names)


def effective_code(s: Scalar, scheme: Scheme, code: SSAValue, parity_dim: int) -> SSAValue:
    """The code times its slot's step as an i8: doubled at the odd (3-bit) q3p5 slot, else itself.

    `parity_dim` is the loop whose index has the parity of k.
    """
    if scheme.name != "q3p5":
        return code
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
    """w[n, k] = offset[n, k/g] + scale[n, k/g] * e[n, k] as tensor<NxKxf32>."""
    scheme, (n, k) = w.packed_type.scheme, w.packed_type.get_shape()
    g = scheme.group_size(k)
    group = lambda n, k: (n, k // g)  # noqa: E731
    inputs = [rewriter.insert(UnpackOp(w.result)).result, scales(rewriter, w)]
    maps: list[MapFn] = [identity(2), group]
    offset = w.operand_for(OFFSET)
    if offset is not None:
        inputs.append(offset)
        maps.append(group)
    maps.append(identity(2))

    def body(s: Scalar, a: Sequence[BlockArgument]) -> SSAValue:
        value = s.mulf(s.to_f32(a[1]), s.sitofp(effective_code(s, scheme, a[0], 1)))
        return value if offset is None else s.addf(value, s.to_f32(a[2]))

    out = empty(rewriter, f32, (n, k), "w_init")
    names = ("code", "scale", "offset")[: len(inputs)]
    return generic(rewriter, inputs, out, maps, (PARALLEL, PARALLEL), body, "w", (*names, "out"))


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
    code_groups = _split_groups(rewriter, rewriter.insert(UnpackOp(w.result)).result, g, "code_groups")

    # i runs inside a group, and g is even for q3p5, so i has the parity of k = j*g + i.
    def partial(s: Scalar, a: Sequence[BlockArgument]) -> SSAValue:
        e = s.sitofp(effective_code(s, scheme, a[1], 3))
        return s.addf(a[2], s.mulf(s.to_f32(a[0]), e))

    p_maps = [lambda t, n, j, i: (t, j, i), lambda t, n, j, i: (n, j, i), lambda t, n, j, i: (t, n, j)]
    p_init = zeros(rewriter, (t, n, k // g), "p")
    p_loops = (PARALLEL, PARALLEL, PARALLEL, REDUCTION)
    p = generic(rewriter, [x_groups, code_groups], p_init, p_maps, p_loops, partial, "p", ("x", "code", "p"))
    mark_kernel(p, "linear")
    inputs = [p, scales(rewriter, w)]
    maps: list[MapFn] = [lambda t, n, j: (t, n, j), lambda t, n, j: (n, j)]
    offset = w.operand_for(OFFSET)
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
