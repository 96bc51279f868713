"""reduce-in-registers: a reduction sums in an SSA value, its reduction dimensions an explicit loop nest.

Lowered as it is, a linalg reduction adds into its output buffer: every step loads and stores the accumulator
in memory, and a compiler that cannot prove the buffer apart from the inputs (a parallel body outlined into a
thread function sees only pointers) keeps it there, one dependent load-add-store per weight, never vectorized.
This pass turns each `linalg.generic` with one output whose reduction dimensions follow its parallel ones and
whose output map is the parallel dimensions in order (a linear kernel's contraction; attention's scores and
weighted values) into a generic over the parallel dimensions only,
whose body runs the reduction as `scf.for` loops carrying the partial sum, reading the inputs with
`tensor.extract` at their indexing maps' positions:

    %acc = linalg.generic {indexing_maps = [(d0, d1, d2) -> (d0, d2), (d0, d1, d2) -> (d1, d2),
                                            (d0, d1, d2) -> (d0, d1)],
                           iterator_types = ["parallel", "parallel", "reduction"]}
        ins(%x, %w : ...) outs(%init : tensor<1x264xf32>) { body(%a, %b, %acc) }

becomes

    %acc = linalg.generic {indexing_maps = [(d0, d1) -> (d0, d1)], iterator_types = ["parallel", "parallel"]}
        outs(%init : tensor<1x264xf32>) {
    ^bb0(%start: f32):
      %i = linalg.index 0 : index
      %j = linalg.index 1 : index
      %sum = scf.for %k = %c0 to %c4096 step %c1 iter_args(%part = %start) -> (f32) {
        %a = tensor.extract %x[%i, %k] : tensor<1x4096xf16>
        %b = tensor.extract %w[%j, %k] : tensor<264x4096xf32>
        ... body(%a, %b, %part) ...
        scf.yield %next : f32
      }
      linalg.yield %sum : f32
    }

The parallel dimensions stay a linalg op, so they still become parallel loops (threads); the sum now lives in a
register, and the innermost loop is one a vectorizer can take. Each output's sum runs in the same order. An
element-wise producer of another reduction's input is no longer fused into it by mlir-opt: it is computed once
(attention's masked exponentials once per score, not once per score and value column). Left as they are: a
linear contraction whose input an element-wise op computes through a reshape (weights dequantized by
`fuse-unpack`'s float path for several token rows: left for that fusion), and other reductions whose result a
generic reads broadcast (softmax's max and sum, a norm's sum of squares: `_read_one_to_one`).
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import affine, arith, scf, tensor
from xdsl.dialects.builtin import AffineMapAttr, IndexType, IntegerAttr, ModuleOp, TensorType
from xdsl.dialects.linalg.attrs import IteratorType, IteratorTypeAttr
from xdsl.dialects.linalg.ops import GenericOp, IndexOp, YieldOp
from xdsl.ir import Attribute, Block, Region, SSAValue
from xdsl.ir.affine import AffineDimExpr, AffineExpr, AffineMap
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)

from q35c.ir.attrs import kernel_kind

_PARALLEL = IteratorType.PARALLEL
_REDUCTION = IteratorType.REDUCTION


def _index(value: int) -> arith.ConstantOp:
    return arith.ConstantOp(IntegerAttr(value, IndexType()))


def _extent(op: GenericOp, dim: int) -> int | None:
    """The extent of loop `dim`: the size of an operand dimension indexed by exactly `dim`."""
    for operand, attr in zip(op.operands, op.indexing_maps.data, strict=True):
        typ = operand.type
        assert isinstance(typ, TensorType)
        for position, expr in enumerate(attr.data.results):
            if expr == AffineExpr.dimension(dim):
                return typ.get_shape()[position]
    return None


class ReduceInRegisters(RewritePattern):
    """One linear contraction (module docstring)."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: GenericOp, rewriter: PatternRewriter) -> None:
        kinds = [it.data for it in op.iterator_types.data]
        if len(op.outputs) != 1 or _REDUCTION not in kinds:
            return
        parallel = kinds.index(_REDUCTION)
        if any(k != _REDUCTION for k in kinds[parallel:]) or any(k != _PARALLEL for k in kinds[:parallel]):
            return
        linear = kernel_kind(op) == "linear"
        if linear and any(_computed(operand) for operand in op.inputs):
            return  # an input an elementwise op computes: left for fusion into this contraction
        if not linear and not _read_one_to_one(op.results[0]):
            return  # a consumer broadcasting the sums: fused into it, the loop would run once per its element
        maps = [m.data for m in op.indexing_maps.data]
        if maps[-1] != AffineMap.identity(parallel).replace_dims_and_symbols(
            [AffineExpr.dimension(i) for i in range(parallel)], [], len(kinds), 0
        ):
            return
        extents = [_extent(op, d) for d in range(len(kinds))]
        if any(e is None for e in extents):
            return
        old = op.body.blocks.first
        assert old is not None
        acc = op.outputs[0]
        acc_type = acc.type
        assert isinstance(acc_type, TensorType)
        element: Attribute = acc_type.element_type

        block = Block(arg_types=[element])
        ivs: list[SSAValue] = []
        for d in range(parallel):
            index = IndexOp(d)
            block.add_op(index)
            ivs.append(index.result)
        zero, one = _index(0), _index(1)
        block.add_ops([zero, one])
        start: SSAValue = block.args[0]
        outer: Block = block
        loops: list[scf.ForOp] = []
        carried = start
        for d in range(parallel, len(kinds)):
            upper = _index(int(extents[d]))  # type: ignore[arg-type]
            outer.add_op(upper)
            body = Block(arg_types=[IndexType(), element])
            loop = scf.ForOp(zero.result, upper.result, one.result, [carried], body)
            outer.add_op(loop)
            loops.append(loop)
            ivs.append(body.args[0])
            carried = body.args[1]
            outer = body
        mapping: dict[SSAValue, SSAValue] = {old.args[-1]: carried}
        for operand, arg, m in zip(op.inputs, old.args[:-1], maps[:-1], strict=True):
            if not arg.uses:
                continue
            indices: list[SSAValue] = []
            for expr in m.results:
                if isinstance(expr, AffineDimExpr):
                    indices.append(ivs[expr.position])
                    continue
                apply = affine.ApplyOp(ivs, AffineMapAttr(AffineMap(len(kinds), 0, (expr,))))
                outer.add_op(apply)
                indices.append(apply.result)
            extract = tensor.ExtractOp(operand, indices, arg.type)
            outer.add_op(extract)
            mapping[arg] = extract.result
        ops = list(old.ops)
        for inner in ops[:-1]:
            if isinstance(inner, IndexOp):
                mapping[inner.result] = ivs[inner.dim.value.data]
                continue
            outer.add_op(inner.clone(value_mapper=mapping))
        final = ops[-1]
        assert isinstance(final, YieldOp)
        outer.add_op(scf.YieldOp(mapping.get(final.operands[0], final.operands[0])))
        for inner_loop, enclosing in zip(loops[1:], loops[:-1], strict=True):
            enclosing.body.blocks.first.add_op(scf.YieldOp(inner_loop.results[0]))  # type: ignore[union-attr]
        block.add_op(YieldOp(loops[0].results[0]))

        identity = AffineMapAttr(AffineMap.identity(parallel))
        kinds_attr: list[Attribute] = [IteratorTypeAttr(_PARALLEL)] * parallel
        reduced = GenericOp([], [acc], Region(block), [identity], kinds_attr, [acc_type])
        for name, attr in op.attributes.items():
            reduced.attributes[name] = attr
        rewriter.replace(op, reduced)


def _read_one_to_one(value: SSAValue) -> bool:
    """Whether every linalg.generic reading `value` reads each element once (its map a permutation of all its
    loops). mlir-opt's element-wise fusion puts this op's loop into such consumers: once per output it stays
    one loop per sum; under a broadcast it would run once per consumer element, from a start the consumer's
    earlier iterations overwrote."""
    for use in value.uses:
        user = use.operation
        if not isinstance(user, GenericOp):
            continue
        if use.index >= len(user.inputs):
            return False
        m = user.indexing_maps.data[use.index].data
        positions = [e.position for e in m.results if isinstance(e, AffineDimExpr)]
        if len(positions) != len(m.results) or sorted(positions) != list(range(m.num_dims)):
            return False
    return True


def _computed(value: SSAValue) -> bool:
    """Whether `value` is a reshaped linalg.generic result (dequantized weights, which mlir-opt's elementwise
    fusion computes inside the contraction when it is left as it is)."""
    owner = value.owner
    if not isinstance(owner, tensor.CollapseShapeOp | tensor.ExpandShapeOp):
        return False
    while isinstance(owner, tensor.CollapseShapeOp | tensor.ExpandShapeOp):
        owner = owner.src.owner
    return isinstance(owner, GenericOp)


@dataclass(frozen=True)
class ReduceInRegistersPass(ModulePass):
    """Linear contractions with their reductions as loops carrying the sum (module docstring)."""

    name = "reduce-in-registers"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        PatternRewriteWalker(ReduceInRegisters(), apply_recursively=False).rewrite_module(op)
