"""fuse-gather: a gather unpacks only the elements it reads.

lower-graph lowers `q35.embed` of a quantized table as an unpacking of the whole table (after unpack-bits: a
generic writing every code into a [V, groups, ..] grid, collapsed to [V, D], and generics decoding every group's
scale and offset) and a gather generic that `tensor.extract`s row `id` of them. Left so, every decode step
unpacks the whole table (tens of MB) to read one row. This pass replaces each `tensor.extract` of a tensor that
an all-parallel generic produced (directly or through a `tensor.collapse_shape`), and that nothing but
`tensor.extract`s reads, by that generic's body computed at the extracted position: the producer's loop indices
from the extract's indices (a collapsed index split by the grid's extents), its inputs `tensor.extract`ed at its
indexing maps' positions, `linalg.index` the loop index:

    %codes_grid = linalg.generic {maps [(d0, d1, d2) -> (d0, d1 * 34 + 2 + d2), (d0, d1, d2) -> (d0, d1, d2)]}
        ins(%table : tensor<49152x612xi8>) outs(...) {q35.kernel = "unpack"} -> tensor<49152x18x32xi8>
    %codes = tensor.collapse_shape %codes_grid [[0], [1, 2]] : ... into tensor<49152x576xi8>
    ... %c = tensor.extract %codes[%row, %col] : tensor<49152x576xi8>        (in the gather's body)

becomes, in the gather's body,

    %group = affine.apply (d0) -> (d0 floordiv 32) (%col)
    %within = affine.apply (d0) -> (d0 mod 32) (%col)
    %at = affine.apply (d0, d1, d2) -> (d1 * 34 + 2 + d2) (%row, %group, %within)
    %byte = tensor.extract %table[%row, %at] : tensor<49152x612xi8>
    ... the unpacking body on %byte ...

and the producers, now unused, are erased. Each element is the same expression of the same storage bytes, so
the result is bit-exact; the work is that of the elements read (a decode step's T rows) instead of the table.
A tensor read other than by `tensor.extract` keeps its producer (it is materialized for that use anyway).
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import affine, arith, tensor
from xdsl.dialects.builtin import AffineMapAttr, IndexType, ModuleOp, TensorType
from xdsl.dialects.linalg.attrs import IteratorType
from xdsl.dialects.linalg.ops import GenericOp, IndexOp, YieldOp
from xdsl.ir import Operation, SSAValue
from xdsl.ir.affine import AffineConstantExpr, AffineDimExpr, AffineExpr, AffineMap
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)

_d = AffineExpr.dimension


def _only_extracted(value: SSAValue) -> bool:
    """Whether every use of `value` is a `tensor.extract` of it (through at most one `tensor.collapse_shape`)."""
    for use in value.uses:
        user = use.operation
        if isinstance(user, tensor.CollapseShapeOp):
            if not all(isinstance(u.operation, tensor.ExtractOp) for u in user.result.uses):
                return False
        elif not isinstance(user, tensor.ExtractOp):
            return False
    return True


def _producer(value: SSAValue) -> GenericOp | None:
    """The all-parallel, one-output generic producing `value`, its output map a permutation, its body not
    reading the output."""
    op = value.owner
    if not isinstance(op, GenericOp) or len(op.outputs) != 1 or len(op.results) != 1:
        return None
    if any(it.data != IteratorType.PARALLEL for it in op.iterator_types.data):
        return None
    out = op.indexing_maps.data[-1].data
    positions = [e.position for e in out.results if isinstance(e, AffineDimExpr)]
    if len(positions) != len(out.results) or sorted(positions) != list(range(out.num_dims)):
        return None
    block = op.body.blocks.first
    if block is None or block.args[-1].uses:
        return None
    return op if _only_extracted(value) else None


def _apply(rewriter: PatternRewriter, expr: AffineExpr, operands: list[SSAValue]) -> SSAValue:
    """The index `expr` of `operands` (dimensions d0, d1, ..): an operand itself, a constant or an affine.apply."""
    if isinstance(expr, AffineDimExpr):
        return operands[expr.position]
    if isinstance(expr, AffineConstantExpr):
        const = arith.ConstantOp.from_int_and_width(expr.value, IndexType())
        rewriter.insert(const)
        return const.result
    apply = affine.ApplyOp(operands, AffineMapAttr(AffineMap(len(operands), 0, (expr,))))
    rewriter.insert(apply)
    return apply.result


class FuseGather(RewritePattern):
    """A `tensor.extract` of an element-wise produced tensor: the producer's body at that element."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: tensor.ExtractOp, rewriter: PatternRewriter) -> None:
        source = op.tensor
        collapse = source.owner if isinstance(source.owner, tensor.CollapseShapeOp) else None
        producer = _producer(collapse.src if collapse is not None else source)
        if producer is None:
            return
        indices = list(op.indices)
        if collapse is not None:
            src_type = collapse.src.type
            assert isinstance(src_type, TensorType)
            shape = list(src_type.get_shape())
            split: list[SSAValue] = []
            for index, group in zip(indices, collapse.reassociation.data, strict=True):
                dims = [i.value.data for i in group.data]
                stride = 1
                parts: list[AffineExpr] = []
                for dim in reversed(dims):
                    part = _d(0) if stride == 1 else _d(0) // stride
                    parts.append(part if dim == dims[0] else part % shape[dim])
                    stride *= shape[dim]
                split += [_apply(rewriter, e, [index]) for e in reversed(parts)]
            indices = split
        out = producer.indexing_maps.data[-1].data
        loops: list[SSAValue] = list(indices)
        for position, expr in enumerate(out.results):
            assert isinstance(expr, AffineDimExpr)
            loops[expr.position] = indices[position]
        block = producer.body.blocks.first
        assert block is not None
        mapping: dict[SSAValue, SSAValue] = {}
        for arg, operand, m in zip(block.args, producer.inputs, producer.indexing_maps.data, strict=False):
            if not isinstance(operand.type, TensorType):
                mapping[arg] = operand
                continue
            at = [_apply(rewriter, e, loops) for e in m.data.results]
            element = tensor.ExtractOp(operand, at, operand.type.element_type)
            rewriter.insert(element)
            mapping[arg] = element.result
        result: SSAValue | None = None
        for inner in block.ops:
            if isinstance(inner, YieldOp):
                result = mapping.get(inner.operands[0], inner.operands[0])
                break
            if isinstance(inner, IndexOp):
                mapping[inner.result] = loops[inner.dim.value.data]
                continue
            clone = inner.clone(value_mapper=mapping)
            rewriter.insert(clone)
        assert result is not None
        rewriter.replace(op, [], [result])
        init = producer.outputs[0].owner
        dead: list[Operation] = [producer] if collapse is None else [collapse, producer]
        for gone in dead:
            if gone.parent is not None and all(not r.uses for r in gone.results):
                rewriter.erase(gone)
        if isinstance(init, tensor.EmptyOp) and init.parent is not None and not init.tensor.uses:
            rewriter.erase(init)


@dataclass(frozen=True)
class FuseGatherPass(ModulePass):
    """Extracted elements of element-wise produced tensors computed where they are read (module docstring)."""

    name = "fuse-gather"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        PatternRewriteWalker(FuseGather()).rewrite_module(op)
