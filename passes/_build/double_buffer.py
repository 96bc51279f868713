"""Double-buffered tile rings, the copies into them and the offsets they leave, for `schedule-memory`.

A slice of a kernel argument read in an innermost loop, at an offset that moves with the loop, is streamed
through a two-slot ring in the tile level: the first tile is copied into slot 0 before the loop, each iteration
first issues the copy of the next tile into the other slot and then computes on its own slot, and the last
iteration is peeled off after the loop (it has no next tile to copy). `RingBuilder.ring` does that rewrite; see
`q35c.passes.schedule_memory` for the IR it produces. Every copy between memory levels is a `linalg.copy` tagged
with its source and destination spaces.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from xdsl.dialects import arith, func, scf, tensor
from xdsl.dialects.bufferization import AllocTensorOp
from xdsl.dialects.builtin import DYNAMIC_INDEX, DenseArrayBase, IndexType, IntegerAttr, TensorType, i32, i64
from xdsl.dialects.linalg.ops import CopyOp
from xdsl.ir import Attribute, Block, Operation, SSAValue
from xdsl.rewriter import InsertPoint, Rewriter

from q35c.passes._build.linalg import element_type, shape_of
from q35c.passes.tile import insert_slice
from q35c.ir.attrs import DST_SPACE_ATTR, SRC_SPACE_ATTR

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


def constant_value(op: SSAValue) -> int | None:
    """The value of an integer `arith.constant`, or None for anything else."""
    owner = op.owner
    if isinstance(owner, arith.ConstantOp) and isinstance(owner.value, IntegerAttr):
        return owner.value.value.data
    return None


def _index_const(value: int) -> arith.ConstantOp:
    op = arith.ConstantOp.from_int_and_width(value, _index)
    op.result.name_hint = f"c{value}"
    return op


@dataclass(frozen=True)
class RingBuilder:
    """Builds the rings of kernel `fn` in memory space `space`."""

    fn: func.FuncOp
    space: int

    def const(self, value: int) -> SSAValue:
        """An index constant at the top of the kernel (reusing one that is there)."""
        block = self.fn.body.block
        for op in block.ops:
            if isinstance(op, arith.ConstantOp) and op.result.type == _index and constant_value(op.result) == value:
                return op.result
        op = _index_const(value)
        Rewriter.insert_op(op, InsertPoint.at_start(block))
        return op.result

    def ring(self, loop: scf.ForOp, slices: list[tensor.ExtractSliceOp]) -> None:
        """Double-buffer `slices` (distinct slices of kernel arguments) over `loop`."""
        lb, ub, step = (constant_value(v) for v in (loop.lb, loop.ub, loop.step))
        assert lb is not None and ub is not None and step is not None
        trips = (ub - lb) // step
        body = loop.body.block
        iv = body.args[0]
        last = self.const(lb + (trips - 1) * step)
        new_ub = self.const(ub - step)

        # The peeled last iteration, computing on the ring slot that holds the last tile.
        old_uses = [list(r.uses) for r in loop.results]
        mapping: dict[SSAValue, SSAValue] = {iv: last, **dict(zip(body.args[1:], loop.results, strict=True))}
        epilogue: list[Operation] = []
        for op in body.ops:
            if not isinstance(op, scf.YieldOp):
                epilogue.append(op.clone(mapping))
        Rewriter.insert_op(epilogue, InsertPoint.after(loop))
        yielded = body.last_op
        assert isinstance(yielded, scf.YieldOp)
        finals = [mapping.get(v, v) for v in yielded.operands]
        for uses, final in zip(old_uses, finals, strict=True):
            for use in uses:
                use.operation.operands[use.index] = final
        peeled = [mapping[s.result].owner for s in slices]

        # Prologue: copy the first tiles into slot 0.
        rings: list[SSAValue] = []
        at_first: dict[SSAValue, SSAValue] = {iv: self.const(lb)}
        for s in slices:
            name = (s.result.name_hint or "tile").removesuffix("_tile")
            alloc = alloc_in((2, *shape_of(s.result)), element_type(s.result), self.space, f"{name}_ring")
            Rewriter.insert_op(alloc, InsertPoint.before(loop))
            source = self._clone_at(s, at_first, body, InsertPoint.before(loop))
            rings.append(self._fill_slot(alloc.tensor, 0, source, InsertPoint.before(loop), name))

        # The loop, one iteration shorter, carrying the rings.
        new_loop = scf.ForOp(loop.lb, new_ub, loop.step, [*loop.iter_args, *rings], loop.detach_region(0))
        for key, value in loop.attributes.items():
            new_loop.attributes[key] = value
        ring_args = [body.insert_arg(r.type, len(body.args)) for r in rings]
        for arg, s in zip(ring_args, slices, strict=True):
            arg.name_hint = f"{(s.result.name_hint or 'tile').removesuffix('_tile')}_ring"
        Rewriter.replace_op(loop, new_loop, new_loop.results[: len(loop.results)])

        # Each iteration: issue the next tiles' copies, then compute on the current slot.
        step_c, two, one = new_loop.step, self.const(2), self.const(1)
        prep: list[Operation] = []
        offset = iv
        if lb:
            prep.append(arith.SubiOp(iv, new_loop.lb))
            offset = prep[-1].results[0]
        index = arith.DivUIOp(offset, step_c)
        slot = arith.RemUIOp(index.result, two)
        other = arith.SubiOp(one, slot.result)
        following = arith.AddiOp(iv, step_c)
        slot.result.name_hint, other.result.name_hint, following.result.name_hint = "slot", "next_slot", "next"
        Rewriter.insert_op([*prep, index, slot, other, following], InsertPoint.at_start(body))
        where = InsertPoint.after(following)
        next_rings: list[SSAValue] = []
        at_next: dict[SSAValue, SSAValue] = {iv: following.result}
        for s, arg in zip(slices, ring_args, strict=True):
            name = (s.result.name_hint or "tile").removesuffix("_tile")
            source = self._clone_at(s, at_next, body, where)
            ring = self._fill_slot(arg, other.result, source, where, name)
            where = InsertPoint.after(ring.owner)  # type: ignore[arg-type]
            next_rings.append(ring)
        for s, ring in zip(slices, next_rings, strict=True):
            current = _slot(ring, slot.result, s.result.name_hint or "tile")
            Rewriter.insert_op(current, InsertPoint.before(s))
            s.result.replace_all_uses_with(current.result)
            Rewriter.erase_op(s)
        terminator = body.last_op
        assert isinstance(terminator, scf.YieldOp)
        Rewriter.replace_op(terminator, scf.YieldOp(*terminator.operands, *next_rings))

        # The peeled iteration reads the last slot of the final rings.
        last_slot = (trips - 1) % 2
        for s, ring in zip(peeled, new_loop.results[len(old_uses) :], strict=True):
            assert isinstance(s, tensor.ExtractSliceOp)
            current = _slot(ring, last_slot, s.result.name_hint or "tile")
            Rewriter.insert_op(current, InsertPoint.before(s))
            s.result.replace_all_uses_with(current.result)
            Rewriter.erase_op(s)
        erase_dead(body)
        erase_dead(new_loop.parent_block())

    def _fill_slot(
        self, ring: SSAValue, slot: SSAValue | int, source: SSAValue, where: InsertPoint, name: str
    ) -> SSAValue:
        """Copy `source` (in main memory) into slot `slot` of `ring`; return the updated ring."""
        dest = _slot(ring, slot, f"{name}_slot")
        copy = copy_between(source, dest.result, 0, self.space, f"{name}_copied")
        shape = shape_of(source)
        update = insert_slice(copy.results[0], ring, [slot, *[0] * len(shape)], [1, *shape])
        update.result.name_hint = f"{name}_ring"
        Rewriter.insert_op([dest, copy, update], where)
        return update.result

    def _clone_at(self, op: Operation, mapping: dict[SSAValue, SSAValue], body: Block, where: InsertPoint) -> SSAValue:
        """Clone `op` and the ops of `body` its operands come from, mapping values by `mapping` (the induction
        variable to another position; shared between the slices of one position, which then share their
        offset arithmetic); index arithmetic on constants folds to constants."""
        cloned: list[Operation] = []

        def need(value: SSAValue) -> None:
            owner = value.owner
            if value in mapping or not isinstance(owner, Operation) or owner.parent_block() is not body:
                return
            for operand in owner.operands:
                need(operand)
            folded = _fold([constant_value(mapping.get(v, v)) for v in owner.operands], owner)
            if folded is not None:
                mapping[owner.results[0]] = self.const(folded)
            else:
                cloned.append(owner.clone(mapping))

        for operand in op.operands:
            need(operand)
        copy = op.clone(mapping)
        Rewriter.insert_op([*cloned, copy], where)
        return copy.results[0]


def _fold(operands: list[int | None], op: Operation) -> int | None:
    """The value of index arithmetic on constant operands (the offsets of a tile at a constant position)."""
    if len(operands) != 2 or operands[0] is None or operands[1] is None:
        return None
    a, b = operands
    if isinstance(op, arith.DivUIOp) and b:
        return a // b
    if isinstance(op, arith.MuliOp):
        return a * b
    if isinstance(op, arith.AddiOp):
        return a + b
    if isinstance(op, arith.SubiOp):
        return a - b
    return None


def static_offsets(fn: func.FuncOp) -> None:
    """Slice offsets that are constants (tiles at a fixed position) become static offsets."""
    for op in list(fn.body.walk()):
        if not isinstance(op, tensor.ExtractSliceOp | tensor.InsertSliceOp):
            continue
        values = [constant_value(v) for v in op.offsets]
        if all(v is None for v in values):
            continue
        dynamic = iter(zip(op.offsets, values, strict=True))
        static: list[int] = []
        kept: list[SSAValue] = []
        for offset in op.static_offsets.get_values():
            if offset == DYNAMIC_INDEX:
                value, known = next(dynamic)
                static.append(DYNAMIC_INDEX if known is None else known)
                kept += [value] if known is None else []
            else:
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
        new.results[0].name_hint = op.results[0].name_hint
        Rewriter.replace_op(op, new)


def erase_dead(block: Block | None) -> None:
    """Erase pure index arithmetic and slices left without uses (offsets of the slices the rings replaced)."""
    if block is None:
        return
    changed = True
    while changed:
        changed = False
        for op in reversed(list(block.ops)):
            dead = all(not r.uses for r in op.results) and op.results
            if dead and isinstance(op, arith.DivUIOp | arith.MuliOp | arith.AddiOp | tensor.ExtractSliceOp):
                Rewriter.erase_op(op)
                changed = True
