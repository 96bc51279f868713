"""Double-buffered tile rings, the copies into them and the static offsets they leave, for `schedule-memory`.

A slice of a kernel argument read in an innermost loop, at an offset that moves with the loop, is streamed
through a two-slot ring in the tile level: the first tile is copied into slot 0 before the loop, each iteration
first issues the copy of the next tile into the other slot and then computes on its own slot, and the last
iteration is peeled off after the loop (it has no next tile to copy). `DoubleBuffer` is that rewrite, as an
xDSL rewrite pattern on the `scf.for`; `FoldConstantOffsets` then turns slice offsets that became constants (the
first and the last tile) static. Every copy between memory levels is a `linalg.copy` tagged with its source and
destination spaces. One ring, over the N tiles of a decode-step kernel (`%c31968` = the last tile = the new bound):

    %codes_ring = bufferization.alloc_tensor() {memory_space = 2 : i64} : tensor<2x24x896xi32>
    %codes_tile = tensor.extract_slice %codes[0, 0] [24, 896] [1, 1] : tensor<32000x896xi32> to tensor<24x896xi32>
    %codes_slot = tensor.extract_slice %codes_ring[0, 0, 0] [1, 24, 896] [1, 1, 1] : ... to tensor<24x896xi32>
    %codes_copied = linalg.copy {q35.src_space = 0 : i64, q35.dst_space = 2 : i64}
        ins(%codes_tile : tensor<24x896xi32>) outs(%codes_slot : tensor<24x896xi32>) -> tensor<24x896xi32>
    %codes_ring_1 = tensor.insert_slice %codes_copied into %codes_ring[0, 0, 0] [1, 24, 896] [1, 1, 1] : ...
    %0, %1 = scf.for %n = %c0 to %c31968 step %c24 iter_args(%y_n = %y, %codes_ring_2 = %codes_ring_1) -> (...) {
      %2 = arith.divui %n, %c24 : index
      %slot = arith.remui %2, %c2 : index
      %next_slot = arith.subi %c1, %slot : index
      %next = arith.addi %n, %c24 : index
      %codes_tile_1 = tensor.extract_slice %codes[%next, 0] [24, 896] [1, 1] : ...
      ... copied into %codes_ring_2[%next_slot] as above, giving %codes_ring_3 ...
      %codes_tile_2 = tensor.extract_slice %codes_ring_3[%slot, 0, 0] [1, 24, 896] [1, 1, 1] : ...
      ... the loop body, on %codes_tile_2 ...
      scf.yield %y_next, %codes_ring_3 : ...
    } {q35.tile_dim = "n"}
    %codes_tile_3 = tensor.extract_slice %1[0, 0, 0] [1, 24, 896] [1, 1, 1] : ...   // the last tile's slot
    ... the loop body once more, at %n = 31968, on %codes_tile_3 ...

The first tile's offsets are folded as they are cloned, by xDSL's arith folders (`Folder.try_fold`; plus
`arith.divui` of constants, which xDSL 0.74 does not fold); what folding and peeling leave dead is erased by the
caller (`staging.stage_kernel`, with xDSL's trivial dead-code elimination).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache

from xdsl.context import Context
from xdsl.dialects import arith, func, scf, tensor
from xdsl.dialects.bufferization import AllocTensorOp
from xdsl.dialects.builtin import DYNAMIC_INDEX, DenseArrayBase, IndexType, IntegerAttr, TensorType, i32, i64
from xdsl.dialects.linalg.ops import CopyOp
from xdsl.folder import Folder
from xdsl.ir import Attribute, Block, Operation, Region, SSAValue
from xdsl.pattern_rewriter import PatternRewriter, PatternRewriteWalker, RewritePattern, op_type_rewrite_pattern
from xdsl.rewriter import InsertPoint
from xdsl.transforms.canonicalization_patterns.utils import const_evaluate_operand

from q35c.ir.attrs import DST_SPACE_ATTR, SRC_SPACE_ATTR
from q35c.passes._build.linalg import element_type, shape_of
from q35c.passes.tile import insert_slice

_index = IndexType()


def alloc_in(shape: Sequence[int], element: Attribute, space: int, name: str) -> AllocTensorOp:
    """A fresh tensor placed in memory space `space` (`bufferization.alloc_tensor {memory_space = space}`)."""
    op = AllocTensorOp(TensorType(element, shape))
    op.attributes["memory_space"] = IntegerAttr(space, i64)
    op.tensor.name_hint = name
    return op


def copy_between(source: SSAValue, dest: SSAValue, src_space: int, dst_space: int, name: str) -> CopyOp:
    """`linalg.copy` of `source` into `dest`, tagged with the memory spaces it copies between."""
    op = CopyOp([source], [dest])
    op.attributes[SRC_SPACE_ATTR] = IntegerAttr(src_space, i64)
    op.attributes[DST_SPACE_ATTR] = IntegerAttr(dst_space, i64)
    op.results[0].name_hint = name
    return op


def _slot(ring: SSAValue, slot: SSAValue | int, name: str) -> tensor.ExtractSliceOp:
    """The tile in slot `slot` of a [2, ...] ring (rank-reduced to the tile's shape)."""
    tile = shape_of(ring)[1:]
    result_type = TensorType(element_type(ring), tile)
    op = tensor.ExtractSliceOp(ring, [slot, *[0] * len(tile)], [1, *tile], [1] * (len(tile) + 1), result_type)
    op.result.name_hint = name
    return op


def _stem(s: tensor.ExtractSliceOp) -> str:
    """`codes` for the slice `%codes_tile`: the name its ring, slots and copies are built from."""
    return (s.result.name_hint or "tile").removesuffix("_tile")


@cache
def _folder() -> Folder:
    """xDSL's folder, able to materialize the `arith.constant`s that folding index arithmetic produces."""
    ctx = Context()
    ctx.load_dialect(arith.Arith)
    return Folder(ctx)


def _fold(op: Operation) -> tuple[list[SSAValue], list[Operation]] | None:
    """`op` folded by xDSL's folders (`Folder.try_fold`: the values replacing its results and the constants they
    need), or by the one folder xDSL 0.74 lacks, `arith.divui` of two constants; None if it does not fold."""
    if (folded := _folder().try_fold(op)) is not None:
        return folded
    if isinstance(op, arith.DivUIOp):
        lhs, rhs = const_evaluate_operand(op.lhs), const_evaluate_operand(op.rhs)
        if lhs is not None and rhs is not None and lhs >= 0 and rhs > 0:
            constant = arith.ConstantOp.from_int_and_width(lhs // rhs, op.result.type)
            return [constant.result], [constant]
    return None


@dataclass(frozen=True)
class DoubleBuffer(RewritePattern):
    """`scf.for` with slices to stream (`rings`, by loop, from `staging`'s plan) -> the rings: a prologue copying the
    first tiles into slot 0, the loop one iteration shorter carrying the rings, and the peeled last iteration.

    Index constants go to the top of the kernel (`top`, its entry block), reusing the ones there."""

    rings: Mapping[scf.ForOp, Sequence[tensor.ExtractSliceOp]]
    space: int
    top: Block

    @op_type_rewrite_pattern
    def match_and_rewrite(self, loop: scf.ForOp, rewriter: PatternRewriter, /) -> None:
        if not (slices := self.rings.get(loop)):
            return
        lb, ub, step = (const_evaluate_operand(v) for v in (loop.lb, loop.ub, loop.step))
        if lb is None or ub is None or step is None:
            return
        trips, carried = (ub - lb) // step, len(loop.results)
        last = self._const(rewriter, lb + (trips - 1) * step)
        new_ub = self._const(rewriter, ub - step)
        peeled = _peel_last(rewriter, loop, last, slices)
        rings = self._prologue(rewriter, loop, slices, lb)
        new_loop = _carry(rewriter, loop, new_ub, slices, rings)
        self._steady_state(rewriter, new_loop, slices, lb)
        for s, ring in zip(peeled, new_loop.results[carried:], strict=True):  # the last tile's slot
            rewriter.replace(s, _slot(ring, (trips - 1) % 2, s.result.name_hint or "tile"))

    def _const(self, rewriter: PatternRewriter, value: int) -> SSAValue:
        """An index constant at the top of the kernel (reusing one that is there)."""
        for op in self.top.ops:
            if (
                isinstance(op, arith.ConstantOp)
                and op.result.type == _index
                and const_evaluate_operand(op.result) == value
            ):
                return op.result
        op = arith.ConstantOp.from_int_and_width(value, _index)
        op.result.name_hint = f"c{value}"
        rewriter.insert(op, InsertPoint.at_start(self.top))
        return op.result

    def _prologue(
        self, rewriter: PatternRewriter, loop: scf.ForOp, slices: Sequence[tensor.ExtractSliceOp], lb: int
    ) -> list[SSAValue]:
        """Before the loop: copy the first tiles into slot 0 of fresh rings; return the rings."""
        before = InsertPoint.before(loop)
        body = loop.body.block
        at_first: dict[SSAValue, SSAValue] = {body.args[0]: self._const(rewriter, lb)}
        rings: list[SSAValue] = []
        for s in slices:
            alloc = alloc_in((2, *shape_of(s.result)), element_type(s.result), self.space, f"{_stem(s)}_ring")
            rewriter.insert(alloc, before)
            source = _clone_at(rewriter, s, at_first, body, before)
            rings.append(self._fill_slot(rewriter, alloc.tensor, 0, source, before, _stem(s)))
        return rings

    def _steady_state(
        self, rewriter: PatternRewriter, loop: scf.ForOp, slices: Sequence[tensor.ExtractSliceOp], lb: int
    ) -> None:
        """In each iteration: issue the next tiles' copies into the other slot, then compute on the current slot."""
        body = loop.body.block
        iv = body.args[0]
        ring_args = body.args[len(body.args) - len(slices) :]
        two, one = self._const(rewriter, 2), self._const(rewriter, 1)
        prep: list[Operation] = []
        offset: SSAValue = iv
        if lb:
            prep.append(arith.SubiOp(iv, loop.lb))
            offset = prep[-1].results[0]
        index = arith.DivUIOp(offset, loop.step)
        slot = arith.RemUIOp(index.result, two)
        other = arith.SubiOp(one, slot.result)
        following = arith.AddiOp(iv, loop.step)
        slot.result.name_hint, other.result.name_hint, following.result.name_hint = "slot", "next_slot", "next"
        rewriter.insert([*prep, index, slot, other, following], InsertPoint.at_start(body))
        where = InsertPoint.after(following)
        at_next: dict[SSAValue, SSAValue] = {iv: following.result}
        next_rings: list[SSAValue] = []
        for s, arg in zip(slices, ring_args, strict=True):
            source = _clone_at(rewriter, s, at_next, body, where)
            ring = self._fill_slot(rewriter, arg, other.result, source, where, _stem(s))
            where = InsertPoint.after(ring.owner)  # type: ignore[arg-type]
            next_rings.append(ring)
        for s, ring in zip(slices, next_rings, strict=True):
            rewriter.replace(s, _slot(ring, slot.result, s.result.name_hint or "tile"))
        yielded = body.last_op
        assert isinstance(yielded, scf.YieldOp)
        rewriter.replace(yielded, scf.YieldOp(*yielded.operands, *next_rings))

    def _fill_slot(
        self,
        rewriter: PatternRewriter,
        ring: SSAValue,
        slot: SSAValue | int,
        source: SSAValue,
        where: InsertPoint,
        name: str,
    ) -> SSAValue:
        """Copy `source` (in main memory) into slot `slot` of `ring`; return the updated ring."""
        dest = _slot(ring, slot, f"{name}_slot")
        copy = copy_between(source, dest.result, 0, self.space, f"{name}_copied")
        shape = shape_of(source)
        update = insert_slice(copy.results[0], ring, [slot, *[0] * len(shape)], [1, *shape])
        update.result.name_hint = f"{name}_ring"
        rewriter.insert([dest, copy, update], where)
        return update.result


def _peel_last(
    rewriter: PatternRewriter, loop: scf.ForOp, last: SSAValue, slices: Sequence[tensor.ExtractSliceOp]
) -> list[tensor.ExtractSliceOp]:
    """Inline a copy of the loop body after the loop, at the last position `last` and on the loop's results, which
    it then stands for; return its copies of `slices`."""
    mapper: dict[SSAValue, SSAValue] = {}
    region = Region()
    loop.body.clone_into(region, value_mapper=mapper)
    yielded = region.block.last_op
    assert isinstance(yielded, scf.YieldOp)
    finals = list(yielded.operands)
    rewriter.erase(yielded)
    for arg in region.block.args:  # they stand for the loop's results, which keep their own names
        arg.name_hint = None
    for result, final in zip(loop.results, finals, strict=True):
        rewriter.replace_all_uses_with(result, final)
    rewriter.inline_block(region.block, InsertPoint.after(loop), [last, *loop.results])
    peeled = [mapper[s.result].owner for s in slices]
    return [s for s in peeled if isinstance(s, tensor.ExtractSliceOp)]


def _carry(
    rewriter: PatternRewriter,
    loop: scf.ForOp,
    ub: SSAValue,
    slices: Sequence[tensor.ExtractSliceOp],
    rings: Sequence[SSAValue],
) -> scf.ForOp:
    """Replace `loop` by one up to `ub` that also carries `rings` (one per slice); return it."""
    body = loop.body.block
    new_loop = scf.ForOp(
        loop.lb, ub, loop.step, [*loop.iter_args, *rings], rewriter.move_region_contents_to_new_regions(loop.body)
    )
    new_loop.attributes.update(loop.attributes)
    for s, ring in zip(slices, rings, strict=True):
        arg = rewriter.insert_block_argument(body, len(body.args), ring.type)
        arg.name_hint = f"{_stem(s)}_ring"
    rewriter.replace(loop, new_loop, new_loop.results[: len(loop.results)])
    return new_loop


def _clone_at(
    rewriter: PatternRewriter, op: Operation, mapping: dict[SSAValue, SSAValue], body: Block, where: InsertPoint
) -> SSAValue:
    """Clone `op` and the ops of `body` its operands come from at `where`, mapping values by `mapping` (the induction
    variable to another position; shared between the slices of one position, which then share their offset
    arithmetic). Each clone is folded (xDSL's `Folder`: index arithmetic on constants becomes constants)."""

    def need(value: SSAValue) -> None:
        owner = value.owner
        if value in mapping or not isinstance(owner, Operation) or owner.parent_block() is not body:
            return
        for operand in owner.operands:
            need(operand)
        clone = owner.clone(mapping)
        folded = _fold(clone)
        if folded is None:
            rewriter.insert(clone, where)
            return
        values, constants = folded
        rewriter.insert(constants, where)
        mapping.update(zip(owner.results, values, strict=True))
        clone.erase()

    for operand in op.operands:
        need(operand)
    copy = op.clone(mapping)
    rewriter.insert(copy, where)
    return copy.results[0]


class FoldConstantOffsets(RewritePattern):
    """`tensor.extract_slice`/`tensor.insert_slice` with a dynamic offset that is a constant -> that offset static
    (`%codes[%c0, 0]` -> `%codes[0, 0]`), as MLIR's canonicalization of slices does."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: tensor.ExtractSliceOp | tensor.InsertSliceOp, rewriter: PatternRewriter, /) -> None:
        if all(const_evaluate_operand(v) is None for v in op.offsets):
            return
        dynamic = iter(op.offsets)
        static: list[int] = []
        kept: list[SSAValue] = []
        for offset in op.static_offsets.get_values():
            if offset == DYNAMIC_INDEX:
                value = next(dynamic)
                if (known := const_evaluate_operand(value)) is None:
                    kept.append(value)
                else:
                    offset = known
            static.append(offset)
        sources = [op.source] if isinstance(op, tensor.ExtractSliceOp) else [op.source, op.dest]
        segments = [*([1] * len(sources)), len(kept), len(op.sizes), len(op.strides)]
        new = op.create(
            operands=[*sources, *kept, *op.sizes, *op.strides],
            result_types=[r.type for r in op.results],
            attributes=dict(op.attributes),
            properties={
                **op.properties,
                "static_offsets": DenseArrayBase.from_list(i64, static),
                "operandSegmentSizes": DenseArrayBase.from_list(i32, segments),
            },
        )
        rewriter.replace(op, new)


def static_offsets(fn: func.FuncOp) -> None:
    """Slice offsets that are constants (tiles at a fixed position) become static offsets."""
    PatternRewriteWalker(FoldConstantOffsets(), apply_recursively=False).rewrite_region(fn.body)
