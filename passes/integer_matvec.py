"""integer-matvec: linear kernels as integer dot products, the codes unpacked in vector registers.

After `unpack-bits` a linear kernel of M token rows is an unpacking generic (codes from packed storage), a dequantizing
generic (w = scale * e + offset per group of g along K) and the contraction y = x w^T. When the codes are bit
fields of their storage rows laid out in chunks (`_build/code_layout`: found by running the unpacking body, not
assumed per scheme; q3p5 dense and byte, int4, q4_0, q4_1, q8_0), this pass computes the kernel, as llama.cpp's
CPU kernels do, as

    y[t, n] = sum_j scale[n, j] d[t, j] 2^-P I[t, n, j]  +  sum_j offset[n, j] X[t, j]
    I[t, n, j] = sum_{k in group j} (e[n, k] / 2^step_k + h_k) 2^s_k xq[t, k]  -  sum_{k in j} h_k 2^s_k xq[t, k]

with the activations quantized once per call, before the tile loops, per row and group (`quantize_activations`,
one scf.for over them on vectors): d[t, j] = max |x| / Q, xq[t, k] = round(x[t, k] / d[t, j] 2^multiplier_k) in
i16 (Q levels per sign, at least MIN_LEVELS, chosen so that no i32 sum overflows), X the group's sum of x (for
the offsets),
and the groups' sign-bit terms (the second sum of I, negated: the integer sums start from it; h = 0 for unsigned
codes, q4_1's 0 .. 15, whose minimum is the offset). For one row the kernel stays
a linalg.generic over (t, n) (the tiles' parallel loops); its body loops over blocks of 16 groups (their scales
times d as one vector, the offsets' share of y as one vector product) and, per group (unrolled in a block),
over its chunks and their parts of 32 codes (unrolled, alternating between two accumulators):

    %raw  = vector.transfer_read %codes[%n, %at] : tensor<264x448xi32>, vector<4xi32>     (in order)
    %win  = vector.shuffle (vector.bitcast %raw to vector<16xi8>) [each code's field's bytes] : vector<64xi8>
    %code = arith.xori (arith.andi (vector.bitcast %win to vector<32xi16>), M), H       (vpternlog)
    %xv   = vector.transfer_read %xq[%j, %k] : vector<32xi16>
    %p    = arith.muli (arith.extsi %code), (arith.extsi %xv) : vector<32xi32>
    %acc  = %acc + evens(%p) + odds(%p) : vector<16xi32>                              (vpdpwssd)

then one conversion and one multiply-add of the group's 16 lane sums by its scale times d[j] (vector<16xf32>),
and one horizontal sum per output. For M rows the kernel is a generic over (b, n) whose body computes a block
of B rows (`rows_per_block`: up to 8, fewer for large groups) for output n: each part of 32 codes is read,
permuted and masked once and multiplied with each row's activations (B accumulators), each group's sums scaled
by its scale (broadcast once) and each row's step; the body yields B sums, its outputs the strided slices
y[first + r + B b, :] of the result (a second generic takes the last M mod B rows). Its activations are
interleaved by blocks of B rows (a group of a block's rows is one run of memory), and kernels whose block of
activations exceeds SEGMENT_BYTES run over segments of K in a loop, so that they stay in the L1 cache. Codes
stay bit-exact; the activations' rounding moves each x by at most
d[j] / 2, which `q35c.verify.linear.output_tolerance(levels=Q)` adds to the error bound. A kernel in a K-tile
loop from 0 (accumulating into the loop's carried sum, its last tile peeled after the loop) whose x, codes, scales
and offsets are slices of whole arrays, or whose scales and offsets a generic decodes from the codes' storage tile
alone (q4_0, q4_1, q8_0: stored in each block; decoded again from whole rows), becomes, with that last tile
(and a shorter remainder tile after it, where K is no whole number of tiles), one kernel over whole rows before
the loop (`k_loop`; several rows: the tile's rows of x are quantized before the
loop); other K-tiled kernels are rewritten per tile.

With `interleave-rows` R > 1 (the host's native stage: 8), the codes, scales and offsets of weights that only
these kernels read are stored with rows interleaved by blocks of R (`_build/interleave`: the arguments carry
`q35.interleave = [R, G]`, the library's runtime stores the arrays so). A one-token kernel then computes the R
outputs of a row block per step of its loop over groups, reading the group's activations once for all of them
and the R rows' codes as one run of memory, over the whole weight (`WholeRows`: the kernels of N tiles become
slices of it, one parallel loop); a kernel of several rows computes W outputs per body (`weights_per_body`).
Kernels that do not fit (codes that are no bit fields,
groups that are no whole number of chunks, a dequantization other than scale * e + offset, no unpacking as int8
and fp16) are left to `fuse-unpack`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from xdsl.builder import Builder
from xdsl.context import Context
from xdsl.dialects import arith, math, scf, tensor, vector
from xdsl.dialects.builtin import (
    AffineMapAttr,
    ArrayAttr,
    DenseArrayBase,
    Float16Type,
    Float32Type,
    FloatAttr,
    IndexType,
    IntegerAttr,
    IntegerType,
    ModuleOp,
    TensorType,
    VectorType,
    i16,
    i32,
    i64,
)
from xdsl.dialects.linalg.attrs import IteratorTypeAttr
from xdsl.dialects.linalg.ops import FillOp, GenericOp, IndexOp, YieldOp
from xdsl.ir import Block, BlockArgument, Operation, Region, SSAValue
from xdsl.ir.affine import AffineExpr, AffineMap
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter
from xdsl.transforms.canonicalization_patterns.utils import const_evaluate_operand

from q35c.ir.attrs import KERNEL_ATTR, TILE_DIM_ATTR
from q35c.passes._build.bit_fields import unpacking_of
from q35c.passes._build.code_layout import PART_CODES, Layout, find_layout
from q35c.passes._build.interleave import Candidate, interleaved_arguments, mark, row_slice
from q35c.passes._build.vector_ops import Emit, VectorExtSIOp, VectorFPToSIOp, VectorSIToFPOp, read, reduction, write
from q35c.passes.fuse_unpack import _elementwise_producer, _kinds, _maps, _shape, _uses_index

f32 = Float32Type()


PARALLEL = IteratorTypeAttr.parallel()
REDUCTION = IteratorTypeAttr.reduction()
_d = AffineExpr.dimension


def _is_affine_dequant(op: GenericOp, with_offset: bool) -> bool:
    """Whether the dequantizing body computes e * scale (+ offset) (evaluated on a few values)."""
    block = op.body.blocks.first
    assert block is not None
    for e, s, o in ((3, 0.5, 0.25), (-5, 2.0, -1.5), (0, 1.0, 4.0)):
        env: dict[SSAValue, float] = {block.args[0]: float(e), block.args[1]: s}
        if with_offset:
            env[block.args[2]] = o
        for inner in block.ops:
            if isinstance(inner, YieldOp):
                want = e * s + (o if with_offset else 0.0)
                if env.get(inner.operands[0]) != want:
                    return False
                break
            args = [env.get(v) for v in inner.operands]
            if any(a is None for a in args):
                return False
            if isinstance(inner, arith.SIToFPOp | arith.ExtFOp):
                value = args[0]
            elif isinstance(inner, math.FmaOp):
                value = args[0] * args[1] + args[2]  # type: ignore[operator]
            elif isinstance(inner, arith.MulfOp):
                value = args[0] * args[1]  # type: ignore[operator]
            elif isinstance(inner, arith.AddfOp):
                value = args[0] + args[1]  # type: ignore[operator]
            else:
                return False
            env[inner.results[0]] = value  # type: ignore[assignment]
    return True


def _is_multiply_add(op: GenericOp) -> bool:
    """Whether the contraction's body is acc + x * w (x possibly extended to f32)."""
    block = op.body.blocks.first
    assert block is not None
    ops = list(block.ops)
    names = [o.name for o in ops]
    return names in (
        ["arith.extf", "arith.mulf", "arith.addf", "linalg.yield"],
        ["arith.mulf", "arith.addf", "linalg.yield"],
    )


@dataclass
class Match:
    op: GenericOp
    x: SSAValue
    storage: SSAValue
    scale: SSAValue
    offset: SSAValue | None
    group: int
    layout: Layout
    dead: list[Operation]

    @property
    def rows(self) -> int:
        """The kernel's activation rows (tokens)."""
        return _shape(self.op.outputs[0])[0]

    @property
    def reads(self) -> tuple[SSAValue, ...]:
        """The weight storage the kernel reads: codes, scales and (if any) offsets."""
        return (self.storage, self.scale) if self.offset is None else (self.storage, self.scale, self.offset)


def match(op: GenericOp, cache: dict[tuple[object, ...], Layout | None]) -> Match | None:
    if KERNEL_ATTR not in op.attributes or len(op.inputs) != 2 or len(op.outputs) != 1:
        return None
    kind = op.attributes[KERNEL_ATTR]
    if getattr(kind, "data", None) != "linear" or _kinds(op) != [
        IteratorTypeAttr.parallel().data,
        IteratorTypeAttr.parallel().data,
        IteratorTypeAttr.reduction().data,
    ]:
        return None
    contraction = [AffineMap(3, 0, (_d(0), _d(2))), AffineMap(3, 0, (_d(1), _d(2))), AffineMap(3, 0, (_d(0), _d(1)))]
    if _maps(op) != contraction or _uses_index(op) or not _is_multiply_add(op):
        return None
    x, w = op.inputs
    if op.outputs[0].type != TensorType(f32, (_shape(x)[0], _shape(w)[0])):
        return None
    if not isinstance(x.type, TensorType) or not isinstance(x.type.element_type, Float16Type | Float32Type):
        return None
    dequant = _elementwise_producer(w)
    if dequant is None or len(_kinds(dequant)) != 3 or _uses_index(dequant) or len(dequant.inputs) not in (2, 3):
        return None
    group = _shape(dequant.outputs[0])[2]
    maps = _maps(dequant)
    if maps[0] != AffineMap(3, 0, (_d(0), _d(1) * group + _d(2))):
        return None
    if any(m != AffineMap(3, 0, (_d(0), _d(1))) for m in maps[1:-1]):
        return None
    with_offset = len(dequant.inputs) == 3
    if not _is_affine_dequant(dequant, with_offset):
        return None
    unpack = _elementwise_producer(dequant.inputs[0], identity=False)
    if unpack is None:
        return None
    unpacking = unpacking_of(unpack)
    if unpacking is None:
        return None
    key = (group, *unpacking.key())
    if key not in cache:
        cache[key] = find_layout(unpacking, group)
    layout = cache[key]
    if layout is None:
        return None
    dead: list[Operation] = [w.owner, dequant, dequant.inputs[0].owner, unpack]  # type: ignore[list-item]
    offset = dequant.inputs[2] if with_offset else None
    return Match(op, x, unpacking.op.inputs[0], dequant.inputs[1], offset, group, layout, dead)


# --------------------------------------------------------------------------------------------------------------
# Building
# --------------------------------------------------------------------------------------------------------------


def _generic(
    inputs: Sequence[SSAValue],
    inits: Sequence[SSAValue],
    maps: Sequence[AffineMap],
    iterators: Sequence[IteratorTypeAttr],
    build: object,
) -> GenericOp:
    types = [v.type.element_type for v in (*inputs, *inits)]  # type: ignore[attr-defined]
    block = Block(arg_types=types)
    results = build(Emit(Builder(InsertPoint.at_end(block))), block.args)  # type: ignore[operator]
    block.add_op(YieldOp(*results))
    return GenericOp(
        list(inputs),
        list(inits),
        Region(block),
        [AffineMapAttr(m) for m in maps],
        list(iterators),
        [v.type for v in inits],
    )


@dataclass
class Activations:
    """The quantized activations of one x [M, K]: xq i16 and bias i32 per group and row, interleaved by blocks of
    B rows (row r's group j at ((r / B) G + j) B + r mod B: a group of a block's rows is one run of memory, as
    the kernel reads it), and the groups' steps and sums [M G] f32 (row r's group j at r G + j)."""

    xq: SSAValue  # [ceil(M / B) G B, g]
    dx: SSAValue  # max |x| / levels: the activations' step per group
    xsum: SSAValue
    bias: SSAValue  # [ceil(M / B) G B, 16] i32: minus each lane's share of the sign bits' products
    groups: int  # G, groups per row
    block: int  # B


def quantize_activations(point: InsertPoint, x: SSAValue, group: int, layout: Layout, block: int) -> Activations:
    """Insert at `point` one loop over the groups of x [M, K], row by row, that quantizes them on vectors
    (module docstring): xq = round(x Q / max|x| * 2^multiplier) (i16), d = max|x| / Q * 2^-P, the sums X and
    the sign-bit terms' pair sums, negated (bias, 16 i32 per group); xq and bias interleaved by blocks of `block`
    rows (`Activations`)."""
    rows, k = _shape(x)
    groups, lanes, levels = k // group, layout.lanes, layout.levels(group)
    multipliers = layout.multipliers()
    _, _, sign_bits = layout.masks()
    half = PART_CODES // 2
    outer = Builder(point)
    e = Emit(outer)
    count = rows * groups
    slots = -(-rows // block) * block * groups
    shapes = ((i16, (slots, group)), (f32, (count,)), (f32, (count,)), (i32, (slots, half)))
    inits = [e.op(tensor.EmptyOp([], TensorType(t, shape))) for t, shape in shapes]
    body = Block(arg_types=[IndexType(), *(v.type for v in inits)])
    g, xq, dx, xsum, bias = body.args
    be = Emit(Builder(InsertPoint.at_end(body)), e._consts.copy())
    vf, vi = VectorType(f32, (group,)), VectorType(i16, (group,))
    x_type = x.type
    assert isinstance(x_type, TensorType)
    row, column = (be.index(0), g) if rows == 1 else (be.op(arith.DivUIOp(g, be.index(groups))), None)
    if column is None:
        column = be.op(arith.RemUIOp(g, be.index(groups)))
    slot = g
    if block > 1:  # ((row / B) G + group) B + row mod B
        base = be.op(arith.MuliOp(be.op(arith.DivUIOp(row, be.index(block))), be.index(groups)))
        first = be.op(arith.MuliOp(be.op(arith.AddiOp(base, column)), be.index(block)))
        slot = be.op(arith.AddiOp(first, be.op(arith.RemUIOp(row, be.index(block)))))
    at = [row, be.op(arith.MuliOp(column, be.index(group)))]
    xv = read(be, x, at, VectorType(x_type.element_type, (group,)))
    xf = xv if x_type.element_type == f32 else be.op(arith.ExtFOp(xv, vf))
    amax = reduction(be, be.op(math.AbsFOp(xf)), vector.CombiningKindFlag.MAXIMUMF)
    total = reduction(be, xf, vector.CombiningKindFlag.ADD)
    positive = be.op(arith.CmpfOp(amax, be.f32(0.0), "ogt"))
    inv = be.op(arith.SelectOp(positive, be.op(arith.DivfOp(be.f32(float(levels)), amax)), be.f32(0.0)))
    steps = be.dense(vf, [float(1 << multipliers[i % lanes]) for i in range(group)])
    scaled = be.op(arith.MulfOp(be.op(arith.MulfOp(xf, be.op(vector.BroadcastOp(inv, vf)))), steps))
    q = be.op(VectorFPToSIOp(be.op(math.RoundEvenOp(scaled)), vi))
    xq_next = write(be, q, xq, [slot, be.index(0)])
    # The sign bits' share of each lane: sum over the group's parts of pairs of H * xq, as the kernel adds them.
    p16, p32, o32 = VectorType(i16, (PART_CODES,)), VectorType(i32, (PART_CODES,)), VectorType(i32, (half,))
    evens = DenseArrayBase.from_list(i64, list(range(0, PART_CODES, 2)))
    odds = DenseArrayBase.from_list(i64, list(range(1, PART_CODES, 2)))
    acc = be.dense(o32, [0] * half)
    for first in range(0, group, PART_CODES):
        lane = first % lanes
        sign = be.op(VectorExtSIOp(be.dense(p16, sign_bits[lane : lane + PART_CODES]), p32))
        slice_mask = DenseArrayBase.from_list(i64, list(range(first, first + PART_CODES)))
        piece = be.op(VectorExtSIOp(be.op(vector.ShuffleOp(q, q, slice_mask, result_type=p16)), p32))
        prod = be.op(arith.MuliOp(sign, piece))
        pe = be.op(vector.ShuffleOp(prod, prod, evens, result_type=o32))
        po = be.op(vector.ShuffleOp(prod, prod, odds, result_type=o32))
        acc = be.op(arith.SubiOp(acc, be.op(arith.AddiOp(pe, po))))
    bias_next = write(be, acc, bias, [slot, be.index(0)])
    step = be.op(arith.MulfOp(amax, be.f32(1.0 / levels / (1 << layout.top()))))
    dx_next = be.op(tensor.InsertOp(step, dx, [g]))
    xsum_next = be.op(tensor.InsertOp(total, xsum, [g]))
    body.add_op(scf.YieldOp(xq_next, dx_next, xsum_next, bias_next))
    loop = scf.ForOp(e.index(0), e.index(count), e.index(1), inits, body)
    for result, name in zip(loop.results, ("xq", "x_step", "x_sum", "x_bias"), strict=True):
        result.name_hint = name
    outer.insert(loop)
    return Activations(loop.results[0], loop.results[1], loop.results[2], loop.results[3], groups, block)


SCALE_BLOCK = 16  # groups whose scales (and offsets) are read and converted as one vector
ROW_BLOCK = 8  # activation rows per kernel body at most (each part of codes is unpacked once for all of them)
SEGMENT_BYTES = 16384  # int16 activations of a block of rows per K segment: room for the codes in a 32 KiB L1


def rows_per_block(rows: int, group: int) -> int:
    """Activation rows per kernel body: up to ROW_BLOCK, as many as keep a scale block's activations (SCALE_BLOCK
    groups of each row, int16) within SEGMENT_BYTES (q3p5, g = 128: 4 rows; g <= 64: 8)."""
    return max(1, min(rows, ROW_BLOCK, SEGMENT_BYTES // (SCALE_BLOCK * group * 2)))


@dataclass(frozen=True)
class Interleaved:
    """A kernel's codes, scales and offsets stored with rows interleaved by `rows` (`_build/interleave`), as the
    [N / R, R C] views its body reads."""

    rows: int
    storage: SSAValue
    scale: SSAValue
    offset: SSAValue | None


def interleaved_views(m: Match, rows: int) -> tuple[list[Operation], Interleaved]:
    """The [N / R, R C] views of m's codes, scales and offsets (an expand_shape to [N / R, R, C] and a
    collapse_shape: the same memory), and the ops computing them."""
    ops: list[Operation] = []

    def view(value: SSAValue) -> SSAValue:
        n, c = _shape(value)
        element = value.type.element_type  # type: ignore[attr-defined]
        three = (n // rows, rows, c)
        groups = ArrayAttr([ArrayAttr([IntegerAttr(d, i64) for d in g]) for g in ((0, 1), (2,))])
        expand = tensor.ExpandShapeOp(value, [], groups, three, TensorType(element, three))
        joined = ArrayAttr([ArrayAttr([IntegerAttr(d, i64) for d in g]) for g in ((0,), (1, 2))])
        collapse = tensor.CollapseShapeOp(
            operands=[expand.result],
            result_types=[TensorType(element, (n // rows, rows * c))],
            properties={"reassociation": joined},
        )
        ops.extend((expand, collapse))
        return collapse.results[0]

    offset = None if m.offset is None else view(m.offset)
    return ops, Interleaved(rows, view(m.storage), view(m.scale), offset)


def integer_kernel(
    m: Match, acts: Activations, init: SSAValue | None = None, interleave: int = 1
) -> tuple[list[Operation], SSAValue]:
    """The kernels of m adding y to `init` (default: the contraction's own), and their result. One row: a generic
    over (t, n) (module docstring), or with codes stored interleaved by R rows (`interleave` > 1), over (t, b)
    computing outputs R b .. R b + R - 1, each group of activations read once for all of them. M rows: a generic
    over (b, n) whose body computes B rows (`rows_per_block`) for output n, each part of codes unpacked once for
    all of them (and one more for the last M mod B rows); its output r is the strided slice of rows
    first + r + B b. When a block's activations exceed SEGMENT_BYTES, the sums run over segments of K (a loop
    adding each segment's kernels to the sums), so that the block's activations stay in the L1 cache while the
    kernel walks the outputs (one row: whole rows, measured as fast)."""
    acc = m.op.outputs[0] if init is None else init
    views: list[Operation] = []
    il = None
    if interleave > 1:
        views, il = interleaved_views(m, interleave)
    rows = _shape(acc)[0]
    block = rows_per_block(rows, m.group)
    segment = max(1, SEGMENT_BYTES // (block * m.group * 2))  # groups
    full, rest = divmod(acts.groups, segment)
    if rows == 1 or full <= 1:
        ops, result = _row_blocks(m, acts, acc, 0, acts.groups, il)
        return [*views, *ops], result
    body = Block(arg_types=[IndexType(), acc.type])
    e = Emit(Builder(InsertPoint.at_end(body)))
    start = e.op(arith.MuliOp(body.args[0], e.index(segment)))
    inner, summed = _row_blocks(m, acts, body.args[1], start, segment, il)
    for op in inner:
        body.add_op(op)
    body.add_op(scf.YieldOp(summed))
    bounds = [arith.ConstantOp(IntegerAttr(v, IndexType())) for v in (0, full, 1)]
    loop = scf.ForOp(*(c.result for c in bounds), [acc], body)
    ops: list[Operation] = [*views, *bounds, loop]
    result = loop.results[0]
    if rest:
        tail, result = _row_blocks(m, acts, result, full * segment, rest, il)
        ops += tail
    return ops, result


def _row_blocks(
    m: Match, acts: Activations, acc: SSAValue, start: SSAValue | int, count: int, il: Interleaved | None
) -> tuple[list[Operation], SSAValue]:
    """The kernels adding groups start .. start + count of every row to `acc`, and their result. With interleaved
    storage each body computes W outputs (`weights_per_body`) for its block of rows: its outputs are the slices
    of rows first + r + B b and columns w + W n."""
    rows, width = _shape(acc)
    if rows == 1 and il is None:
        kernel = _row_block_kernel(m, acts, [acc], 0, 1, start, count, il)
        return [kernel], kernel.results[0]
    ops: list[Operation] = []
    result = acc
    size = rows_per_block(rows, m.group)
    weights = 1 if il is None else weights_per_body(size if rows > 1 else 1, il.rows)
    full, tail = divmod(rows, size)
    for first, block, blocks in ((0, size, full), (full * size, tail, 1)):
        if not block:
            continue
        slice_type = TensorType(f32, (blocks, width // weights))
        places = [(first + r, w) for w in range(weights) for r in range(block)]
        sizes, strides = [blocks, width // weights], [block, weights]
        slices = [tensor.ExtractSliceOp(result, [r, w], sizes, strides, slice_type) for r, w in places]
        kernel = _row_block_kernel(m, acts, [s.results[0] for s in slices], first, block, start, count, il, weights)
        ops += [*slices, kernel]
        for (r, w), value in zip(places, kernel.results, strict=True):
            insert = tensor.InsertSliceOp.get(value, result, sizes, [r, w], strides)
            ops.append(insert)
            result = insert.results[0]
    return ops, result


# Integer sums (vector registers) a body over interleaved rows keeps per part, at most: with the parts' codes,
# activations and masks they fill AVX-512's 32 registers. 2 outputs x 4 token rows measured faster than plain rows
# at 8 x 4096x11008 (8.1 against 9.9 ms), 1 output x 4 rows 30-40% slower (docs/host-code.md).
WEIGHT_SUMS = 8


def weights_per_body(block: int, rows: int) -> int:
    """Outputs a kernel body over rows interleaved by `rows` computes for a block of `block` token rows: all of
    a row block for one token row (8 with R = 8), at least 2 (one run of 2 rows' codes per group) and otherwise
    as many as keep WEIGHT_SUMS sums (q3p5, g = 128, 4 token rows: 2)."""
    return rows if block == 1 else max(2, min(rows, WEIGHT_SUMS // block))


def _activation_rows(e: Emit, acts: Activations, first: int, block: int, count: int) -> list[SSAValue | None]:
    """Per row of the body's block (rows first + r + block b), the index of its group 0 in the steps and sums
    (row times G; None for 0)."""
    base = None if count == 1 else e.op(arith.MuliOp(e.op(IndexOp(0)), e.index(block * acts.groups)))
    starts: list[SSAValue | None] = []
    for r in range(block):
        offset = (first + r) * acts.groups
        if base is None:
            starts.append(e.index(offset) if offset else None)
        else:
            starts.append(e.op(arith.AddiOp(base, e.index(offset))) if offset else base)
    return starts


def _interleaved_base(e: Emit, acts: Activations, first: int, count: int) -> SSAValue | None:
    """The body's block of rows (first + block b, first a multiple of B) in xq and bias: its group 0's index
    over B (None for 0)."""
    static = first // acts.block * acts.groups
    if count == 1:
        return e.index(static) if static else None
    base = e.op(arith.MuliOp(e.op(IndexOp(0)), e.index(acts.groups)))
    return e.op(arith.AddiOp(base, e.index(static))) if static else base


def _row_block_kernel(
    m: Match,
    acts: Activations,
    outs: Sequence[SSAValue],
    first: int,
    block: int,
    start: SSAValue | int,
    count: int,
    il: Interleaved | None = None,
    weights: int = 1,
) -> GenericOp:
    """The generic over (b, n) (one row: (t, n)) whose body sums the integer dot products of groups start ..
    start + count per group of `block` activation rows (module docstring) for output n, into `outs` (one per
    row). With interleaved storage and one row, its index n is a block of R outputs (`outs` the R strided
    slices); with several rows, output n reads row n mod R of the storage's block n / R."""
    layout = m.layout
    lanes = layout.lanes
    chunks = m.group // lanes
    element = IntegerType(layout.element_bits)
    per_chunk = layout.stride_bits // layout.element_bits
    per_group = chunks * per_chunk  # storage columns of a group of one row
    element_bytes = layout.element_bits // 8
    blocks = _shape(outs[0])[0]
    stride = 1 if il is None else il.rows  # rows whose groups sit side by side
    storage, scale_of, offset_of = (m.storage, m.scale, m.offset) if il is None else (il.storage, il.scale, il.offset)
    # Independent chains of multiply-adds per row: with few rows, two accumulators alternating by part.
    chains = 2 if block * weights <= 2 else 1

    def body(e: Emit, args: Sequence[SSAValue]) -> list[SSAValue]:
        n = e.op(IndexOp(1))
        zero, one = e.index(0), e.index(1)
        starts = _activation_rows(e, acts, first, block, blocks)
        interleaved = _interleaved_base(e, acts, first, blocks)
        begin = start if isinstance(start, SSAValue) else e.index(start) if start else None
        # Output row w of the body: the storage row it reads and its row within an interleaved block (a value,
        # or static: `weights` outputs per body).
        row, within = n, None
        if il is not None and weights < il.rows:  # n: W outputs of block n / (R / W), from row (n mod R / W) W
            per_block = il.rows // weights
            row = e.op(arith.DivUIOp(n, e.index(per_block)))
            within = e.op(arith.MuliOp(e.op(arith.RemUIOp(n, e.index(per_block))), e.index(weights)))
        within_at = None if within is None else e.op(arith.MuliOp(within, e.index(per_group)))
        p16, p32 = VectorType(i16, (PART_CODES,)), VectorType(i32, (PART_CODES,))
        o32, of = VectorType(i32, (PART_CODES // 2,)), VectorType(f32, (PART_CODES // 2,))
        keep_bits, flip_bits, _ = layout.masks()
        part_masks = {
            part.first: (
                e.dense(p16, keep_bits[part.first : part.first + PART_CODES]),
                e.dense(p16, flip_bits[part.first : part.first + PART_CODES]),
            )
            for part in layout.parts()
        }
        evens = DenseArrayBase.from_list(i64, list(range(0, PART_CODES, 2)))
        odds = DenseArrayBase.from_list(i64, list(range(1, PART_CODES, 2)))

        def at(ge: Emit, r: int, j: SSAValue) -> SSAValue:
            """Row r's group j in the steps and sums."""
            start = starts[r]
            return j if start is None else ge.op(arith.AddiOp(start, j))

        def slot(ge: Emit, r: int, j: SSAValue) -> SSAValue:
            """Row r's group j in xq and bias: the block's rows side by side."""
            if acts.block == 1:
                return j if interleaved is None else ge.op(arith.AddiOp(interleaved, j))
            group = j if interleaved is None else ge.op(arith.AddiOp(interleaved, j))
            first_row = ge.op(arith.MuliOp(group, ge.index(acts.block)))
            return ge.op(arith.AddiOp(first_row, ge.index(r))) if r else first_row

        def column(ge: Emit, j: SSAValue) -> SSAValue:
            """Group j's first column of the body's (first) output row in the storage (view)."""
            at_j = ge.op(arith.MuliOp(j, ge.index(stride * per_group)))
            return at_j if within_at is None else ge.op(arith.AddiOp(at_j, within_at))

        def group_sums(ge: Emit, j: SSAValue) -> list[list[SSAValue]]:
            """Group j's integer sums (vector<16xi32>) per output and row: per chunk and part, 32 codes from one
            read of the storage (a byte permutation puts each code's field in a 16-bit lane, a mask and an xor
            leave the biased code) per output, times each row's quantized activations (read once for all
            outputs), summed in pairs."""
            rows = [slot(ge, r, j) for r in range(block)]
            # The sums start at minus the groups' share of the sign bits (`quantize_activations`).
            biases = [read(ge, acts.bias, [row, zero], o32) for row in rows]
            empty = ge.dense(o32, [0] * (PART_CODES // 2))
            sums = [[[bias] + [empty] * (chains - 1) for bias in biases] for _ in range(weights)]
            base = column(ge, j)
            step = 0
            for c in range(chunks):
                for part in layout.parts():
                    xvs = [read(ge, acts.xq, [r, ge.index(c * lanes + part.first)], p16) for r in rows]
                    xws = [ge.op(VectorExtSIOp(xv, p32)) for xv in xvs]
                    for w in range(weights):
                        offset = (w * per_group if weights > 1 else 0) + c * per_chunk + part.start
                        where = ge.op(arith.AddiOp(base, ge.index(offset))) if offset else base
                        raw = read(ge, storage, [row, where], VectorType(element, (part.count,)))
                        byte_type = VectorType(IntegerType(8), (part.count * element_bytes,))
                        raw_bytes = ge.op(vector.BitcastOp(raw, byte_type))
                        mask = DenseArrayBase.from_list(i64, list(part.mask))
                        win_type = VectorType(IntegerType(8), (2 * PART_CODES,))
                        win = ge.op(vector.ShuffleOp(raw_bytes, raw_bytes, mask, result_type=win_type))
                        w16 = ge.op(vector.BitcastOp(win, p16))
                        keep, sign = part_masks[part.first]
                        code = ge.op(arith.XOrIOp(ge.op(arith.AndIOp(w16, keep)), sign))  # (e / 2^step + h) 2^s
                        wide = ge.op(VectorExtSIOp(code, p32))
                        for r, xw in enumerate(xws):
                            prod = ge.op(arith.MuliOp(wide, xw))
                            pe = ge.op(vector.ShuffleOp(prod, prod, evens, result_type=o32))
                            po = ge.op(vector.ShuffleOp(prod, prod, odds, result_type=o32))
                            chain = step % chains
                            sums[w][r][chain] = ge.op(arith.AddiOp(sums[w][r][chain], ge.op(arith.AddiOp(pe, po))))
                    step += 1
            return [[s[0] if chains == 1 else ge.op(arith.AddiOp(s[0], s[1])) for s in per_w] for per_w in sums]

        def to_f32(be: Emit, value: SSAValue, typ: VectorType | None = None) -> SSAValue:
            if typ is None:
                return value if value.type == f32 else be.op(arith.ExtFOp(value, f32))
            return value if typ.element_type == f32 else be.op(arith.ExtFOp(value, VectorType(f32, typ.get_shape())))

        def block_of_groups(
            be: Emit, first_group: SSAValue, count: int, faccs: list[SSAValue], oaccs: list[SSAValue]
        ) -> tuple[list[SSAValue], list[SSAValue]]:
            """`count` groups from `first_group` on (unrolled): one row, their scales * d read as one vector and
            each group's sums times its lane of it (interleaved: each group's R scales as one vector); several
            rows, each group's sums times its scale and each row's d; the offsets' share of y."""
            faccs, oaccs = list(faccs), list(oaccs)
            rows = [at(be, r, first_group) for r in range(block)]
            if il is None:
                vf = VectorType(f32, (count,))  # a whole block, or the row's last groups (read exactly)
                scale_type = VectorType(scale_of.type.element_type, (count,))  # type: ignore[attr-defined]
                scales = to_f32(be, read(be, scale_of, [n, first_group], scale_type), scale_type)
                if offset_of is not None:
                    offset_type = VectorType(offset_of.type.element_type, (count,))  # type: ignore[attr-defined]
                    offs = to_f32(be, read(be, offset_of, [n, first_group], offset_type), offset_type)
                    for r, row_at in enumerate(rows):
                        xsums = read(be, acts.xsum, [row_at], vf)
                        if block > 1 and vf == of:  # into the lanes of the sums (added up at the end)
                            faccs[r] = be.op(vector.FMAOp(offs, xsums, faccs[r]))
                        else:
                            products = be.op(arith.MulfOp(offs, xsums))
                            oaccs[r] = reduction(be, products, vector.CombiningKindFlag.ADD, oaccs[r])
                if block == 1:
                    factors = [be.op(arith.MulfOp(scales, read(be, acts.dx, [row_at], vf))) for row_at in rows]
                    for i in range(count):
                        j = be.op(arith.AddiOp(first_group, be.index(i)))
                        for r, sums in enumerate(group_sums(be, j)[0]):
                            factor = be.op(vector.ExtractOp(factors[r], [i], f32))
                            converted = be.op(VectorSIToFPOp(sums, of))
                            faccs[r] = be.op(vector.FMAOp(converted, be.op(vector.BroadcastOp(factor, of)), faccs[r]))
                    return faccs, oaccs
            if il is not None:  # each group's W scales (and offsets) as one vector: the body's W outputs
                vw = VectorType(f32, (weights,))
                for i in range(count):
                    j = be.op(arith.AddiOp(first_group, be.index(i)))
                    where = be.op(arith.MuliOp(j, be.index(il.rows)))
                    where = where if within is None else be.op(arith.AddiOp(where, within))
                    scale_type = VectorType(scale_of.type.element_type, (weights,))  # type: ignore[attr-defined]
                    scales = to_f32(be, read(be, scale_of, [row, where], scale_type), scale_type)
                    offs = None
                    if offset_of is not None:
                        offset_type = VectorType(offset_of.type.element_type, (weights,))  # type: ignore[attr-defined]
                        offs = to_f32(be, read(be, offset_of, [row, where], offset_type), offset_type)
                    sums = group_sums(be, j)
                    for r in range(block):
                        if offs is not None:
                            xsum = be.op(tensor.ExtractOp(acts.xsum, [at(be, r, j)], f32))
                            shares = be.op(arith.MulfOp(offs, be.op(vector.BroadcastOp(xsum, vw))))
                            for w in range(weights):
                                share = be.op(vector.ExtractOp(shares, [w], f32))
                                oaccs[w * block + r] = be.op(arith.AddfOp(oaccs[w * block + r], share))
                        step = be.op(tensor.ExtractOp(acts.dx, [at(be, r, j)], f32))
                        factors = be.op(arith.MulfOp(scales, be.op(vector.BroadcastOp(step, vw))))
                        for w in range(weights):
                            factor = be.op(vector.BroadcastOp(be.op(vector.ExtractOp(factors, [w], f32)), of))
                            converted = be.op(VectorSIToFPOp(sums[w][r], of))
                            faccs[w * block + r] = be.op(vector.FMAOp(converted, factor, faccs[w * block + r]))
                return faccs, oaccs
            # Several rows: each group's scale broadcast once, each row's step read broadcast (an FMA operand),
            # so that no vector of factors per row stays live across the block.
            for i in range(count):
                j = be.op(arith.AddiOp(first_group, be.index(i)))
                scale = be.op(vector.BroadcastOp(be.op(vector.ExtractOp(scales, [i], f32)), of))
                for r, sums in enumerate(group_sums(be, j)[0]):
                    scaled = be.op(arith.MulfOp(be.op(VectorSIToFPOp(sums, of)), scale))
                    step = be.op(tensor.ExtractOp(acts.dx, [at(be, r, j)], f32))
                    faccs[r] = be.op(vector.FMAOp(scaled, be.op(vector.BroadcastOp(step, of)), faccs[r]))
            return faccs, oaccs

        def from_start(ge: Emit, offset: SSAValue) -> SSAValue:
            """Group `offset` of the segment."""
            return offset if begin is None else ge.op(arith.AddiOp(begin, offset))

        # Groups per step of the loop over a row: one with R outputs (R groups of codes each), else a block of
        # SCALE_BLOCK groups whose scales are read as one vector.
        per_step = 1 if il is not None else SCALE_BLOCK
        full, tail = divmod(count, per_step)
        sums_count = block * weights
        faccs: list[SSAValue] = [e.dense(of, [0.0] * (PART_CODES // 2))] * sums_count
        oaccs: list[SSAValue] = [e.f32(0.0)] * sums_count
        if full:
            block_body = Block(arg_types=[IndexType(), *[of] * sums_count, *[f32] * sums_count])
            be = Emit(Builder(InsertPoint.at_end(block_body)), e._consts.copy())
            first_group = from_start(be, be.op(arith.MuliOp(block_body.args[0], be.index(per_step))))
            carried = list(block_body.args[1:])
            new_f, new_o = block_of_groups(be, first_group, per_step, carried[:sums_count], carried[sums_count:])
            block_body.add_op(scf.YieldOp(*new_f, *new_o))
            outer = scf.ForOp(zero, e.index(full), one, [*faccs, *oaccs], block_body)
            e.builder.insert(outer)
            faccs, oaccs = list(outer.results[:sums_count]), list(outer.results[sums_count:])
        if tail:
            faccs, oaccs = block_of_groups(e, from_start(e, e.index(full * per_step)), tail, faccs, oaccs)
        totals = [reduction(e, f, vector.CombiningKindFlag.ADD, o) for f, o in zip(faccs, oaccs, strict=True)]
        return [e.op(arith.AddfOp(arg, total)) for arg, total in zip(args, totals, strict=True)]

    identity = AffineMap.identity(2)
    kernel = _generic([], list(outs), [identity] * len(outs), [PARALLEL, PARALLEL], body)
    kernel.attributes[KERNEL_ATTR] = m.op.attributes[KERNEL_ATTR]
    return kernel


# --------------------------------------------------------------------------------------------------------------
# K-tile loops
# --------------------------------------------------------------------------------------------------------------


@dataclass
class KLoop:
    """A kernel whose K is split in tiles: `tile` in the K loop (its sum added to the loop's accumulator),
    `last` on the peeled last tile and `rest` on a shorter remainder tile after it, if any (each added to the
    sum so far; `total` the last of those additions), and `rows`, the match of the whole rows: x, codes, scales
    and offsets the slices' sources, read from column 0."""

    loop: scf.ForOp
    index: int  # the accumulator's position among the loop's iter_args
    tile: Match
    last: Match
    rest: Match | None
    total: GenericOp
    rows: Match


def _accumulates(add: Operation, value: SSAValue, acc: SSAValue) -> bool:
    """Whether `add` is the element-wise generic acc + value."""
    if not isinstance(add, GenericOp) or list(add.inputs) != [value] or list(add.outputs) != [acc]:
        return False
    block = add.body.blocks.first
    if block is None or [o.name for o in block.ops] != ["arith.addf", "linalg.yield"]:
        return False
    addf = block.first_op
    assert addf is not None
    return set(addf.operands) == set(block.args) and list(block.last_op.operands) == list(addf.results)  # type: ignore[union-attr]


def _from_zero(m: Match) -> bool:
    return _zero_filled(m.op.outputs[0])


def _zero_filled(value: SSAValue) -> bool:
    """Whether `value` is a linalg.fill with 0.0."""
    fill = value.owner
    if not isinstance(fill, FillOp) or not isinstance(zero := fill.inputs[0].owner, arith.ConstantOp):
        return False
    return isinstance(zero.value, FloatAttr) and zero.value.value.data == 0.0


def _slice_of(value: SSAValue, width: int, total: int) -> tuple[tensor.ExtractSliceOp, SSAValue | int] | None:
    """The 2-d slice `value` is (unit strides) of a source whose rows hold `total` / `width` of its columns, and
    the slice's row offset (static or a value)."""
    s = value.owner
    if not isinstance(s, tensor.ExtractSliceOp) or any(v != 1 for v in s.static_strides.get_values()):
        return None
    sizes = s.static_sizes.get_values()
    source = _shape(s.source)
    if len(sizes) != 2 or len(source) != 2 or sizes[1] * total != source[1] * width:
        return None
    first = s.static_offsets.get_values()[0]
    return s, (first if first >= 0 else s.offsets[0])


Slice = tuple[tensor.ExtractSliceOp, SSAValue | int]  # a slice of a source, its first row
Sources = tuple[SSAValue, SSAValue | int, tuple[Slice | GenericOp | None, ...]]


def _decoded_from(value: SSAValue, storage: SSAValue) -> GenericOp | None:
    """The generic that computes `value` [rows, groups] from the storage tile alone, element by element (the
    scales and offsets stored inside each block, q4_0 and q8_0: two bytes of a block as an f16), or None."""
    op = value.owner
    if not isinstance(op, GenericOp) or len(op.outputs) != 1 or op.results[0] is not value:
        return None
    if not op.inputs or any(v is not storage for v in op.inputs) or _uses_index(op):
        return None
    if _kinds(op) != [PARALLEL.data, PARALLEL.data] or not isinstance(op.outputs[0].owner, tensor.EmptyOp):
        return None
    return op


def _in_loop(value: SSAValue | int, m: Match) -> bool:
    """Whether `value` is computed in the loop around m, or is a K loop's index."""
    if isinstance(value, int):
        return False
    owner = value.owner
    if isinstance(owner, Operation):
        return owner.parent_op() is m.op.parent_op()
    loop = owner.parent_op()
    return loop is not None and getattr(loop.attributes.get(TILE_DIM_ATTR), "data", None) == "k"


def _sources(m: Match, k: int, tile_k: int) -> Sources | None:
    """The sources of m's slices: x [M, k] (before its conversion to f32) and the slice's first row, and codes,
    scales and offsets with their slices and row offsets (loop invariants)."""
    x = m.x
    convert = x.owner
    if isinstance(convert, GenericOp) and len(convert.inputs) == 1:
        block = convert.body.blocks.first
        if block is not None and [o.name for o in block.ops] == ["arith.extf", "linalg.yield"]:
            x = convert.inputs[0]
    x_slice = x.owner
    if not isinstance(x_slice, tensor.ExtractSliceOp) or _shape(x_slice.source)[1:] != (k,):
        return None
    x_row = _slice_of(x, tile_k, k)
    if x_row is None or _in_loop(x_row[1], m):
        return None
    slices: list[Slice | GenericOp | None] = []
    for value in (m.storage, m.scale, m.offset):
        found = None if value is None else _slice_of(value, tile_k, k)
        if value is not None and found is None and value is not m.storage:
            decoded = _decoded_from(value, m.storage)  # from the storage tile: decoded from whole rows
            if decoded is None:
                return None
            slices.append(decoded)
            continue
        if value is not None and found is None:
            return None
        if found is not None and _in_loop(found[1], m):
            return None  # a row offset computed in the K loop
        slices.append(found)
    return x_slice.source, x_row[1], tuple(slices)


def _whole_rows(point: InsertPoint, m: Match, sources: Sources) -> Match:
    """The match reading whole rows from column 0 of the sources of m's slices (new slices inserted at
    `point` where the rows are not all of the source)."""
    operands: list[SSAValue | None] = []
    for found in sources[2]:
        if found is None or isinstance(found, GenericOp):
            operands.append(None)
            continue
        s, row = found
        rows, columns = _shape(s.source)
        size = s.static_sizes.get_values()[0]
        if row == 0 and size == rows:
            operands.append(s.source)
            continue
        element = s.source.type.element_type  # type: ignore[attr-defined]
        whole = tensor.ExtractSliceOp(s.source, [row, 0], [size, columns], [1, 1], TensorType(element, (size, columns)))
        Rewriter.insert_op(whole, point)
        operands.append(whole.results[0])
    storage = operands[0]
    assert storage is not None
    scale, offset = (
        _decode_whole(point, found, storage, m.group) if isinstance(found, GenericOp) else operand
        for found, operand in zip(sources[2][1:], operands[1:], strict=True)
    )
    assert scale is not None
    x, row = sources[0], sources[1]
    rows, columns = _shape(x)
    size = _shape(m.op.outputs[0])[0]
    if row != 0 or size != rows:  # the tile's rows of x, quantized before the loop
        element = x.type.element_type  # type: ignore[attr-defined]
        tile = tensor.ExtractSliceOp(x, [row, 0], [size, columns], [1, 1], TensorType(element, (size, columns)))
        Rewriter.insert_op(tile, point)
        x = tile.results[0]
    return Match(m.op, x, storage, scale, offset, m.group, m.layout, [])


def _decode_whole(point: InsertPoint, decode: GenericOp, storage: SSAValue, group: int) -> SSAValue:
    """`decode` (`_decoded_from`) again at `point`, on the whole rows `storage`: one value per group of a row."""
    rows, columns = _shape(storage)
    per_row = _shape(decode.inputs[0])[1] // _shape(decode.outputs[0])[1]  # storage columns per group
    element = decode.outputs[0].type.element_type  # type: ignore[attr-defined]
    empty = tensor.EmptyOp([], TensorType(element, (rows, columns // per_row)))
    whole = GenericOp(
        [storage] * len(decode.inputs),
        [empty.tensor],
        decode.body.clone(),
        list(decode.indexing_maps.data),
        list(decode.iterator_types.data),
        [empty.tensor.type],
    )
    whole.attributes.update(decode.attributes)
    Rewriter.insert_op([empty, whole], point)
    return whole.results[0]


def k_loop(m: Match, by_op: dict[GenericOp, Match]) -> KLoop | None:
    """The K loop of m (m its kernel in the loop) as one kernel over whole rows, or None if m is not in the
    documented pattern: the K loop from 0 adding m to its accumulator, the peeled last tile after it."""
    loop = m.op.parent_op()
    if not isinstance(loop, scf.ForOp) or getattr(loop.attributes.get(TILE_DIM_ATTR), "data", None) != "k":
        return None
    lb, ub, step = (const_evaluate_operand(v) for v in (loop.lb, loop.ub, loop.step))
    if lb != 0 or not isinstance(ub, int) or not isinstance(step, int) or step <= 0 or ub % step:
        return None
    block = loop.body.block
    uses = list(m.op.results[0].uses)
    yielded = block.last_op
    if len(uses) != 1 or not isinstance(yielded, scf.YieldOp):
        return None
    add = uses[0].operation
    accs = [i for i, arg in enumerate(block.args[1:]) if _accumulates(add, m.op.results[0], arg)]
    if len(accs) != 1 or yielded.operands[accs[0]] != add.results[0]:
        return None
    index = accs[0]
    final = list(loop.results[index].uses)
    if len(final) != 1 or not isinstance(total := final[0].operation, GenericOp) or len(total.inputs) != 1:
        return None
    last = by_op.get(total.inputs[0].owner)  # type: ignore[arg-type]
    if last is None or not _accumulates(total, last.op.results[0], loop.results[index]):
        return None
    rest = _remainder(total, by_op)
    if rest is not None:
        total = rest[1]
    tail = [last] if rest is None else [last, rest[0]]
    k = ub + sum(_shape(t.x)[1] for t in tail)
    if not all(_from_zero(t) for t in (m, *tail)) or any((t.group, t.layout) != (m.group, m.layout) for t in tail):
        return None
    if _shape(m.x)[1] != step or k % m.group:
        return None
    sources = _sources(m, k, step)
    if sources is None:
        return None
    for t in tail:
        found = _sources(t, k, _shape(t.x)[1])
        if found is None or not _same_sources(sources, found):
            return None
    rows = _whole_rows(InsertPoint.before(loop), m, sources)
    return KLoop(loop, index, m, last, None if rest is None else rest[0], total, rows)


def _remainder(total: GenericOp, by_op: dict[GenericOp, Match]) -> tuple[Match, GenericOp] | None:
    """The kernel of a remainder tile whose sum is added to `total`'s (a K not a whole number of tiles), and that
    addition; None when `total` is the last one."""
    uses = list(total.results[0].uses)
    if len(uses) != 1 or not isinstance(add := uses[0].operation, GenericOp) or len(add.inputs) != 1:
        return None
    rest = by_op.get(add.inputs[0].owner)  # type: ignore[arg-type]
    if rest is None or not _accumulates(add, rest.op.results[0], total.results[0]):
        return None
    return rest, add


def _same_sources(a: Sources, b: Sources) -> bool:
    if a[0] != b[0] or a[1] != b[1] or len(a[2]) != len(b[2]):
        return False
    for one, other in zip(a[2], b[2], strict=True):
        if (one is None) != (other is None) or isinstance(one, GenericOp) != isinstance(other, GenericOp):
            return False
        if isinstance(one, GenericOp) and isinstance(other, GenericOp):
            if not _same_decoding(one, other):
                return False
            continue
        if one is not None and other is not None:
            if one[0].source != other[0].source or one[1] != other[1]:
                return False
            if one[0].static_sizes.get_values()[0] != other[0].static_sizes.get_values()[0]:
                return False
    return True


def _same_decoding(one: GenericOp, other: GenericOp) -> bool:
    """Whether two decoding generics (`_decoded_from`) compute the same from their storage tiles: equal maps and
    structurally equal bodies (ops, properties, attributes, types and uses)."""
    return (
        one.indexing_maps == other.indexing_maps
        and len(one.inputs) == len(other.inputs)
        and one.body.is_structurally_equivalent(other.body)
    )


def _erase_unused(root: Operation) -> None:
    """Erase `root` (unused), then every producer of its operands that is left unused, and so on."""
    pending = [root]
    while pending:
        op = pending.pop()
        if op.parent is None or any(r.uses for r in op.results):
            continue
        producers = [v.owner for v in op.operands if isinstance(v.owner, Operation)]
        Rewriter.erase_op(op)
        pending.extend(producers)


def _definition_point(value: SSAValue) -> InsertPoint:
    owner = value.owner
    if isinstance(owner, Operation):
        return InsertPoint.after(owner)
    return InsertPoint.at_start(owner)  # type: ignore[arg-type]


@dataclass(frozen=True)
class IntegerMatvecPass(ModulePass):
    """Linear kernels of any number of token rows as int16 dot products, unpacking in vector registers (module
    docstring). With `interleave-rows` R > 1, the codes, scales and offsets of weights that only such kernels read
    are stored with rows interleaved by R (`_build/interleave`; their arguments say so) and one-token kernels
    compute R outputs per step."""

    name = "integer-matvec"

    interleave_rows: int = 0

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        if self.interleave_rows < 0:
            raise ValueError(f"integer-matvec: interleave-rows must be 0 or more, got {self.interleave_rows}")
        cache: dict[tuple[object, ...], Layout | None] = {}
        found = [mt for g in op.walk() if isinstance(g, GenericOp) and (mt := match(g, cache)) is not None]
        rewriter = Rewriter()
        quantized: dict[tuple[SSAValue, int, Layout], Activations] = {}

        def activations(mt: Match) -> Activations:
            key = (mt.x, mt.group, mt.layout)
            if key not in quantized:
                block = rows_per_block(_shape(mt.x)[0], mt.group)
                quantized[key] = quantize_activations(_definition_point(mt.x), mt.x, mt.group, mt.layout, block)
            return quantized[key]

        by_op = {mt.op: mt for mt in found}
        loops = [k for mt in found if (k := k_loop(mt, by_op)) is not None]
        done = {m.op for k in loops for m in (k.tile, k.last, k.rest) if m is not None}
        single = [mt for mt in found if mt.op not in done]
        interleave = self._interleaving(op, loops, single)
        wholes = WholeRows(activations)
        for k, rows in zip(loops, interleave[: len(loops)], strict=True):
            init = k.loop.iter_args[k.index]
            tile = wholes.tile(k.rows, init, rows)
            ops, result = integer_kernel(k.rows, activations(k.rows), init, rows) if tile is None else tile
            rewriter.insert_op(ops, InsertPoint.before(k.loop))
            k.total.results[0].replace_all_uses_with(result)
            _erase_unused(k.total)  # the peeled last tile, then the K loop
        for mt, rows in zip(single, interleave[len(loops) :], strict=True):
            tile = wholes.tile(mt, mt.op.outputs[0], rows)
            ops, result = integer_kernel(mt, activations(mt), interleave=rows) if tile is None else tile
            rewriter.replace_op(mt.op, ops, [result])
            for dead in mt.dead:
                if all(not r.uses for r in dead.results):
                    rewriter.erase_op(dead)

    def _interleaving(self, op: ModuleOp, loops: Sequence[KLoop], single: Sequence[Match]) -> list[int]:
        """Per kernel (the K loops', then the others'), the rows its storage is interleaved by (1: plain);
        the arguments interleaved are tagged."""
        rows = self.interleave_rows
        count = len(loops) + len(single)
        if rows <= 1:
            return [1] * count
        candidates: list[Candidate] = []
        for k in loops:
            consumed = frozenset(d for m in (k.tile, k.last, k.rest) if m is not None for d in m.dead)
            candidates.append(_candidate(k.rows, consumed | {m.op for m in (k.tile, k.last, k.rest) if m}))
        candidates += [_candidate(mt, frozenset((*mt.dead, mt.op))) for mt in single]
        chosen, interleaved = interleaved_arguments(op, candidates, rows)
        mark(chosen, rows)
        return [rows if yes else 1 for yes in interleaved]


class WholeRows:
    """One-token kernels over interleaved rows computed once for all of a weight's rows: a kernel of one N tile
    (in the tile loop or a peeled tile, from a zero accumulator) becomes the slice of its rows of a kernel over
    the whole weight, built once (after the activations' quantization) for its x, codes, scales and offsets. The
    kernel's outputs are then one parallel loop over all the weight's row blocks (one OpenMP region per call),
    not one per tile."""

    def __init__(self, activations: Callable[[Match], Activations]) -> None:
        self.activations = activations
        self.built: dict[tuple[SSAValue, ...], SSAValue] = {}

    def tile(self, m: Match, init: SSAValue, rows: int) -> tuple[list[Operation], SSAValue] | None:
        """The ops taking m's result from the whole kernel, and that result; None where m is no such tile."""
        if rows <= 1 or _shape(init)[0] != 1 or not _zero_filled(init):
            return None
        found = [row_slice(v) for v in m.reads]
        slices = [f for f in found if f is not None]
        if len(slices) != len(found) or len({(f[1], f[2]) for f in slices}) != 1:
            return None  # not the same rows of every storage tensor
        sources = [f[0] for f in slices]
        first, size = slices[0][1], slices[0][2]
        if not all(isinstance(v, BlockArgument) for v in sources):
            return None
        key = (m.x, *sources)
        if key not in self.built:
            whole = self._build(m, sources, rows)
            if whole is None:
                return None
            self.built[key] = whole
        whole = self.built[key]
        take = tensor.ExtractSliceOp(whole, [0, first], [1, size], [1, 1], TensorType(f32, (1, size)))
        return [take], take.results[0]

    def _build(self, m: Match, sources: Sequence[SSAValue], rows: int) -> SSAValue | None:
        acts = self.activations(m)
        loop = acts.xq.owner
        if not isinstance(loop, Operation) or not _dominates_uses(loop, m.op):
            return None
        storage, scale, *offset = sources
        width = _shape(storage)[0]
        whole = Match(m.op, m.x, storage, scale, offset[0] if offset else None, m.group, m.layout, [])
        zero = arith.ConstantOp(FloatAttr(0.0, f32))
        empty = tensor.EmptyOp([], TensorType(f32, (1, width)))
        fill = FillOp([zero.result], [empty.tensor], [TensorType(f32, (1, width))])
        ops, result = integer_kernel(whole, acts, fill.results[0], rows)
        Rewriter.insert_op([zero, empty, fill, *ops], InsertPoint.after(loop))
        return result


def _dominates_uses(point: Operation, user: Operation) -> bool:
    """Whether ops inserted after `point` are defined before `user` (same function, `point` in an ancestor block
    of `user` before it)."""
    block = point.parent_block()
    op: Operation | None = user
    while op is not None and op.parent_block() is not block:
        op = op.parent_op()
    return op is not None and point.is_before_in_block(op)


def _candidate(m: Match, consumed: frozenset[Operation]) -> Candidate:
    return Candidate(m.reads, _shape(m.x)[1] // m.group, consumed)
