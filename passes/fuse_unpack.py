"""fuse-unpack: a matrix-vector kernel unpacks, dequantizes and multiplies in one loop nest, codes in registers.

After `unpack-bits` a linear kernel's tile is three linalg ops: an unpacking generic over the storage's own grid
(for q3p5 dense, pairs x slots; for int4, words x nibbles) whose result is collapsed to the codes [N, K]; a
dequantizing generic over (n, group, j) whose result is collapsed to the weights [N, K]; and the contraction
x [T, K] . w [N, K] -> [T, N]. Left so, the codes and weights of a whole tile are written to memory and read
back. When the contraction has few token rows (T <= `max-tokens`: the decode step's matrix-vector products,
which stream every weight once), this pass replaces the three by one contraction over (t, n, grid...) whose body
is the unpacking body, the dequantizing body and the multiply-add, in that order:

    %codes_grid = linalg.generic {..., iterator_types = ["parallel", "parallel", "parallel"]}
        ins(%words, %words : tensor<264x448xi32>, ...) outs(...) {q35.kernel = "unpack"} -> tensor<264x2048x2xi8>
    %steps = tensor.collapse_shape %codes_grid [[0], [1, 2]] : tensor<264x2048x2xi8> into tensor<264x4096xi8>
    %w_grid = linalg.generic {maps (d0, d1 * 128 + d2), (d0, d1), (d0, d1) ...} ins(%steps, %scale, %offset ...)
    %w = tensor.collapse_shape %w_grid [[0], [1, 2]] : tensor<264x32x128xf32> into tensor<264x4096xf32>
    %acc = linalg.generic {maps (d0, d2), (d1, d2), (d0, d1); ["parallel", "parallel", "reduction"]}
        ins(%x, %w : tensor<1x4096xf16>, tensor<264x4096xf32>) outs(%acc_init : tensor<1x264xf32>)

becomes one contraction over (t, n, group, pair in group, slot), a group's scale and offset read at (n, group)
(loop invariants of the loops inside it), the words at the unpacking maps' positions, an empty tensor of the
loops' extents last (never read: linalg derives loop extents from operands indexed by plain dimensions):

    %extents = tensor.empty() : tensor<264x32x64x2xi8>
    %acc = linalg.generic {indexing_maps = [(d0, d1, d2, d3, d4) -> (d0, d2 * 128 + d3 * 2 + d4),        x
                                            (d0, d1, d2, d3, d4) -> (d1, (d2 * 448 + d3 * 7) floordiv 32),
                                            (d0, d1, d2, d3, d4) -> (d1, (d2 * 448 + d3 * 7 + 6) floordiv 32),
                                            (d0, d1, d2, d3, d4) -> (d1, d2),                             scale
                                            (d0, d1, d2, d3, d4) -> (d1, d2),                             offset
                                            (d0, d1, d2, d3, d4) -> (d1, d2, d3, d4),                     extents
                                            (d0, d1, d2, d3, d4) -> (d0, d1)],
                           iterator_types = ["parallel", "parallel", "reduction", "reduction", "reduction"]}
        ins(%x, %words, %words, %scale, %offset, %extents ...) outs(%acc_init : tensor<1x264xf32>)

(`linalg.index` in the unpacking body becomes the fused loops' value of its dimension). The first grid dimension
along K splits by group when it holds several steps per group (q3p5: 64 pairs of a 128-group; int4: 16 words);
when each of its steps is one group (q4_0's blocks) it is the group loop itself. The value of every output is
the same expression; only the order of the float sums changes (reduction order is free in linalg). Prefill
kernels (T > max-tokens) are left alone: there each code is used T times, and unpacking it once pays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import affine, tensor
from xdsl.dialects.builtin import AffineMapAttr, IntegerType, ModuleOp, TensorType
from xdsl.dialects.linalg.attrs import IteratorType, IteratorTypeAttr
from xdsl.dialects.linalg.ops import GenericOp, IndexOp, YieldOp
from xdsl.ir import Attribute, Block, Operation, Region, SSAValue
from xdsl.ir.affine import AffineDimExpr, AffineExpr, AffineMap
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)
from xdsl.rewriter import InsertPoint

from q35c.ir.attrs import KERNEL_ATTR

_PARALLEL = IteratorType.PARALLEL
_REDUCTION = IteratorType.REDUCTION
_d = AffineExpr.dimension


def _kinds(op: GenericOp) -> list[IteratorType]:
    return [it.data for it in op.iterator_types.data]


def _maps(op: GenericOp) -> list[AffineMap]:
    return [m.data for m in op.indexing_maps.data]


def _shape(value: SSAValue) -> tuple[int, ...]:
    typ = value.type
    assert isinstance(typ, TensorType)
    return tuple(typ.get_shape())


def _elementwise_producer(value: SSAValue, identity: bool = True) -> GenericOp | None:
    """The all-parallel generic with one output that produced `value` through a collapse_shape keeping its
    leading dimension and merging the others ([[0], [1, ...]]); its output map is the identity, or with
    `identity` False any permutation keeping the leading dimension first."""
    collapse = value.owner
    if not isinstance(collapse, tensor.CollapseShapeOp) or len(list(value.uses)) != 1:
        return None
    producer = collapse.src.owner
    if not isinstance(producer, GenericOp) or len(producer.outputs) != 1 or len(list(collapse.src.uses)) != 1:
        return None
    rank = len(_kinds(producer))
    groups = _reassociation(collapse)
    if len(groups) != 2 or groups[0] != [0] or groups[1] != list(range(1, rank)):
        return None
    out = _maps(producer)[-1]
    if any(k != _PARALLEL for k in _kinds(producer)) or out.results[:1] != (_d(0),):
        return None
    if out != AffineMap.identity(rank) and (identity or not _is_permutation(out)):
        return None
    return producer


def _is_permutation(m: AffineMap) -> bool:
    positions = [e.position for e in m.results if isinstance(e, AffineDimExpr)]
    return len(positions) == m.num_dims == len(m.results) and sorted(positions) == list(range(m.num_dims))


def _reassociation(op: tensor.CollapseShapeOp) -> list[list[int]]:
    return [[i.value.data for i in group.data] for group in op.reassociation.data]


def _body_ops(op: GenericOp) -> tuple[list[Operation], SSAValue]:
    block = op.body.blocks.first
    assert block is not None
    ops = list(block.ops)
    last = ops[-1]
    assert isinstance(last, YieldOp) and len(last.operands) == 1
    return ops[:-1], last.operands[0]


def _clone_into(
    block: Block, ops: Sequence[Operation], mapping: dict[SSAValue, SSAValue], exprs: Sequence[AffineExpr], dims: int
) -> None:
    """Clone `ops` into `block`; `linalg.index i` becomes the value of `exprs[i]` over the block's loops."""
    for inner in ops:
        if isinstance(inner, IndexOp):
            expr = exprs[inner.dim.value.data]
            if isinstance(expr, AffineDimExpr):
                index: Operation = IndexOp(expr.position)
                block.add_op(index)
            else:
                loops = [IndexOp(d) for d in range(dims)]
                block.add_ops(loops)
                index = affine.ApplyOp([i.result for i in loops], AffineMapAttr(AffineMap(dims, 0, (expr,))))
                block.add_op(index)
            mapping[inner.result] = index.results[0]
            continue
        block.add_op(inner.clone(value_mapper=mapping))


def _uses_index(op: GenericOp) -> bool:
    return any(isinstance(inner, IndexOp) for inner in op.body.walk())


class FuseUnpackIntoMatvec(RewritePattern):
    """One contraction of few token rows whose weights are dequantized unpacked codes (module docstring)."""

    def __init__(self, max_tokens: int) -> None:
        self.max_tokens = max_tokens

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: GenericOp, rewriter: PatternRewriter) -> None:
        if _kinds(op) != [_PARALLEL, _PARALLEL, _REDUCTION] or len(op.inputs) != 2 or len(op.outputs) != 1:
            return
        contraction = [
            AffineMap(3, 0, (_d(0), _d(2))),
            AffineMap(3, 0, (_d(1), _d(2))),
            AffineMap(3, 0, (_d(0), _d(1))),
        ]
        if _maps(op) != contraction or _uses_index(op):
            return
        x, w = op.inputs
        if _shape(x)[0] > self.max_tokens:
            return
        dequant = _elementwise_producer(w)
        if dequant is None or len(_kinds(dequant)) != 3 or _uses_index(dequant):
            return
        group = _shape(dequant.outputs[0])[2]
        if _maps(dequant)[0] != AffineMap(3, 0, (_d(0), _d(1) * group + _d(2))):
            return
        unpack = _elementwise_producer(dequant.inputs[0], identity=False)
        if unpack is None:
            return
        grid = _shape(unpack.outputs[0])
        rank = len(grid)  # (n, u_1 .. u_r): rank - 1 grid dimensions along K
        # The first grid dimension along K splits into (group, within): the group's scale and offset are then
        # loop invariants of the loops inside it. Fused loops: (t, n, [group,] u_1 .. u_r), the grid's last
        # dimension innermost.
        groups = _shape(dequant.outputs[0])[1]
        aligned = groups > 1 and grid[1] % groups == 0  # whole groups per step of the first grid dimension
        within = grid[1] // groups if aligned else grid[1]
        split = 1 if aligned and within > 1 else 0
        dims = rank + 1 + split
        first = _d(2) * within + _d(3) if split else _d(2)
        position_expr = [_d(1), first, *(_d(i + 1 + split) for i in range(2, rank))]
        k: AffineExpr = AffineExpr.constant(0)
        in_group: AffineExpr = AffineExpr.constant(0)
        stride = 1
        for i in range(rank - 1, 0, -1):
            k = position_expr[i] * stride + k
            if i > 1 or not aligned:
                in_group = position_expr[i] * stride + in_group
            elif split:
                in_group = _d(3) * stride + in_group
            stride *= grid[i]
        # The fused expression of each unpacking loop dimension: that of the grid position its output map gives it.
        loop_expr: list[AffineExpr] = [AffineExpr.constant(0)] * rank
        for position, expr in enumerate(_maps(unpack)[-1].results):
            assert isinstance(expr, AffineDimExpr)
            loop_expr[expr.position] = position_expr[position]
        by_group = [_d(1), _d(2), in_group] if aligned else [_d(1), k // group, k % group]
        maps = [AffineMap(dims, 0, (_d(0), k))]
        maps += [m.replace_dims_and_symbols(loop_expr, [], dims, 0) for m in _maps(unpack)[:-1]]
        maps += [m.replace_dims_and_symbols(by_group, [], dims, 0) for m in _maps(dequant)[1:-1]]
        # An empty tensor of the fused loops' extents, never read: linalg derives loop extents from operands
        # indexed by plain dimensions.
        extents = [grid[0], *((groups, within) if split else (grid[1],)), *grid[2:]]
        shape = tensor.EmptyOp([], TensorType(IntegerType(8), extents))
        rewriter.insert_op(shape, InsertPoint.before(op))
        maps.append(AffineMap(dims, 0, tuple(_d(i + 1) for i in range(dims - 1))))
        maps.append(AffineMap(dims, 0, (_d(0), _d(1))))
        inputs = [x, *unpack.inputs, *dequant.inputs[1:], shape.tensor]

        acc = op.outputs[0]
        block = Block(arg_types=[*(_element(v) for v in inputs), _element(acc)])
        args = list(block.args)
        unpack_ops, code = _body_ops(unpack)
        dequant_ops, weight = _body_ops(dequant)
        matmul_ops, total = _body_ops(op)
        mapping: dict[SSAValue, SSAValue] = {}
        u_args = unpack.body.blocks.first.args  # type: ignore[union-attr]
        for old, new in zip(u_args[:-1], args[1 : 1 + len(unpack.inputs)], strict=True):
            mapping[old] = new
        _clone_into(block, unpack_ops, mapping, loop_expr, dims)
        d_args = dequant.body.blocks.first.args  # type: ignore[union-attr]
        mapping[d_args[0]] = mapping.get(code, code)
        for old, new in zip(d_args[1:-1], args[1 + len(unpack.inputs) : -2], strict=True):
            mapping[old] = new
        _clone_into(block, dequant_ops, mapping, (), dims)
        m_args = op.body.blocks.first.args  # type: ignore[union-attr]
        mapping[m_args[0]], mapping[m_args[1]], mapping[m_args[2]] = args[0], mapping.get(weight, weight), args[-1]
        _clone_into(block, matmul_ops, mapping, (), dims)
        block.add_op(YieldOp(mapping.get(total, total)))

        kinds: list[Attribute] = [IteratorTypeAttr(_PARALLEL)] * 2 + [IteratorTypeAttr(_REDUCTION)] * (dims - 2)
        fused = GenericOp(
            inputs,
            [acc],
            Region(block),
            [AffineMapAttr(m) for m in maps],
            kinds,
            [acc.type],
        )
        if KERNEL_ATTR in op.attributes:
            fused.attributes[KERNEL_ATTR] = op.attributes[KERNEL_ATTR]
        rewriter.replace(op, fused)
        for dead in (w.owner, dequant, dequant.inputs[0].owner, unpack):
            if isinstance(dead, Operation) and all(not r.uses for r in dead.results):
                rewriter.erase_op(dead)


def _element(value: SSAValue) -> Attribute:
    typ = value.type
    assert isinstance(typ, TensorType)
    return typ.element_type


@dataclass(frozen=True)
class FuseUnpackPass(ModulePass):
    """Unpack, dequantize and multiply in one loop nest in contractions of at most `max_tokens` rows."""

    name = "fuse-unpack"

    max_tokens: int = 1

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        PatternRewriteWalker(FuseUnpackIntoMatvec(self.max_tokens), apply_recursively=False).rewrite_module(op)
