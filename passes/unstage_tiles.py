"""unstage-tiles: on the host, kernels read their tiles where they are; the staging copies go.

`schedule-memory` stages every tile a kernel streams: a `linalg.copy` (tagged `q35.src_space`/`q35.dst_space`)
into a buffer of the tile level, double-buffered through two-slot rings in the tile loops (`_build/double_buffer`).
That is what a scratchpad needs and what the cost models count; a CPU's caches fill themselves, and the copies
only move every weight byte twice more (a 4096x4096 q3p5 matrix-vector product spends a third of its time in
them). This host-only pass undoes the staging in the code generated for the host:

1. a ring read in the tile loop, `extract_slice %ring[%slot, 0, ...]` of the ring the iteration just filled at
   `%next_slot` (the documented pattern: %slot = ((%n - lb) / step) mod 2, %next_slot = 1 - %slot, the copy's
   source `extract_slice %src[%next, ...]` with %next = %n + step, or at offsets that arith ops of the loop
   compute from %next, as a K tile's storage column), becomes that source at %n: `extract_slice %src[%n, ...]`
   (those ops cloned with %n for %next); the peeled last iteration's read of the ring (the loop's result, at the
   constant slot of the tile at the loop's bound) becomes the source at the bound;
2. the ring stops being carried (the loop yields the ring it received), so the copies into it are dead;
3. every staging copy's result is its input (on tensors a copy is the value itself).

What is left dead (rings, their copies, allocations) is erased. The values every kernel reads are unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import arith, scf, tensor
from xdsl.dialects.bufferization import AllocTensorOp
from xdsl.dialects.builtin import ModuleOp
from xdsl.dialects.linalg.ops import CopyOp
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter
from xdsl.transforms.canonicalization_patterns.utils import const_evaluate_operand
from xdsl.transforms.dead_code_elimination import region_dce

from q35c.ir.attrs import DST_SPACE_ATTR, SRC_SPACE_ATTR


def _is_staging(op: Operation | None) -> bool:
    return isinstance(op, CopyOp) and SRC_SPACE_ATTR in op.attributes and DST_SPACE_ATTR in op.attributes


def _slot_offset(s: tensor.ExtractSliceOp | tensor.InsertSliceOp) -> SSAValue | int | None:
    """The slot index of a ring slice ([slot, 0, ...], unit size and strides along the slot dimension)."""
    static = s.static_offsets.get_values()
    if any(v != 0 for v in static[1:]) or any(v != 1 for v in s.static_strides.get_values()):
        return None
    if s.static_sizes.get_values()[0] != 1:
        return None
    if static[0] >= 0:
        return static[0]
    return s.offsets[0] if len(s.offsets) == 1 else None


@dataclass(frozen=True)
class Ring:
    """One ring carried by a tile loop: its block argument, the copy filling the next slot and its source."""

    index: int  # position among the loop's iter_args
    fill: tensor.InsertSliceOp  # the ring with the next tile copied in (yielded)
    source: tensor.ExtractSliceOp  # the next tile, in main memory, at %next
    next_value: SSAValue  # %next = %n + step
    slot: SSAValue  # %slot, the current tile's slot
    chain: tuple[Operation, ...] = ()  # the loop body's ops computing the source's offsets from %next, in order


def _slot_of_iteration(slot: SSAValue, loop: scf.ForOp) -> bool:
    """Whether `slot` is ((%n - lb) / step) mod 2 (lb may be 0 and then not subtracted)."""
    rem = slot.owner
    if not isinstance(rem, arith.RemUIOp) or const_evaluate_operand(rem.rhs) != 2:
        return False
    div = rem.lhs.owner
    if not isinstance(div, arith.DivUIOp) or div.rhs != loop.step:
        return False
    iv = loop.body.block.args[0]
    offset = div.lhs
    if offset == iv:
        return const_evaluate_operand(loop.lb) == 0
    sub = offset.owner
    return isinstance(sub, arith.SubiOp) and sub.lhs == iv and sub.rhs == loop.lb


def _ring(loop: scf.ForOp, index: int) -> Ring | None:
    block = loop.body.block
    arg = block.args[index + 1]
    yielded = block.last_op
    assert isinstance(yielded, scf.YieldOp)
    fill = yielded.operands[index].owner
    if not isinstance(fill, tensor.InsertSliceOp) or fill.dest != arg:
        return None
    copy = fill.source.owner
    if not _is_staging(copy):
        return None
    assert isinstance(copy, CopyOp)
    dest = copy.outputs[0].owner
    source = copy.inputs[0].owner
    if (
        not isinstance(dest, tensor.ExtractSliceOp)
        or dest.source != arg
        or not isinstance(source, tensor.ExtractSliceOp)
    ):
        return None
    next_slot = _slot_offset(fill)
    if not isinstance(next_slot, SSAValue) or _slot_offset(dest) != next_slot:
        return None
    other = next_slot.owner
    if not isinstance(other, arith.SubiOp) or const_evaluate_operand(other.lhs) != 1:
        return None
    slot = other.rhs
    if not _slot_of_iteration(slot, loop):
        return None
    found = _offsets_of_next(loop, source)
    if found is None or not _first_tile_in_slot_0(loop.iter_args[index], source):
        return None
    next_value, chain = found
    return Ring(index, fill, source, next_value, slot, chain)


def _offsets_of_next(loop: scf.ForOp, source: tensor.ExtractSliceOp) -> tuple[SSAValue, tuple[Operation, ...]] | None:
    """%next = %n + step, and the arith ops of the loop body that compute the source's offsets from it (K tiles
    start at a column of the storage that is a function of %next, e.g. (%next / 64) * 7), in order; None if an
    operand computed in the loop depends on anything else (not the documented pattern)."""
    block = loop.body.block
    iv = block.args[0]
    needed: set[Operation] = set()
    pending = [v for v in source.operands if isinstance(v.owner, Operation) and v.owner.parent_block() is block]
    while pending:
        owner = pending.pop().owner
        if not isinstance(owner, Operation) or owner in needed:
            continue
        if len(owner.results) != 1 or owner.regions or not owner.name.startswith("arith."):
            return None
        needed.add(owner)
        for v in owner.operands:
            if isinstance(v.owner, Operation) and v.owner.parent_block() is block:
                pending.append(v)
            elif v.owner is block and not (
                isinstance(owner, arith.AddiOp) and owner.lhs == iv and owner.rhs == loop.step
            ):
                return None  # reads the induction variable other than as %next, or a carried value
    nexts = [o for o in needed if isinstance(o, arith.AddiOp) and o.lhs == iv]
    if len(nexts) != 1:
        return None
    chain = tuple(o for o in block.ops if o in needed and o is not nexts[0])
    return nexts[0].results[0], chain


def _first_tile_in_slot_0(ring: SSAValue, source: tensor.ExtractSliceOp) -> bool:
    """Whether the ring the loop starts from holds, in slot 0, a staged slice of the tiles' source of the same
    sizes (the prologue's first tile)."""
    fill = ring.owner
    if not isinstance(fill, tensor.InsertSliceOp) or _slot_offset(fill) != 0:
        return False
    copy = fill.source.owner
    first = copy.inputs[0].owner if isinstance(copy, CopyOp) and _is_staging(copy) else None
    return (
        isinstance(first, tensor.ExtractSliceOp)
        and first.source == source.source
        and first.static_sizes == source.static_sizes
        and first.static_strides == source.static_strides
    )


def _at(ring: Ring, position: SSAValue, where: InsertPoint) -> SSAValue:
    """The ring's source (and the ops computing its offsets) cloned at `where` with %next replaced by
    `position`."""
    mapping: dict[SSAValue, SSAValue] = {ring.next_value: position}
    for op in (*ring.chain, ring.source):
        clone = op.clone(mapping)  # type: ignore[arg-type]
        Rewriter.insert_op(clone, where)
        mapping[op.results[0]] = clone.results[0]
    return mapping[ring.source.results[0]]


def _unstage_loop(loop: scf.ForOp) -> None:
    block = loop.body.block
    ub = const_evaluate_operand(loop.ub)
    lb = const_evaluate_operand(loop.lb)
    step = const_evaluate_operand(loop.step)
    if ub is None or lb is None or step is None or step <= 0:
        return
    yielded = block.last_op
    assert isinstance(yielded, scf.YieldOp)
    for index in range(len(loop.iter_args)):
        ring = _ring(loop, index)
        if ring is None:
            continue
        iv = block.args[0]
        reads = [u.operation for u in ring.fill.result.uses if u.operation is not yielded]
        final = loop.results[index]
        final_reads = [u.operation for u in final.uses]
        last_slot = ((ub - lb) // step) % 2
        ok = all(isinstance(r, tensor.ExtractSliceOp) and _slot_offset(r) == ring.slot for r in reads)
        ok = ok and all(isinstance(r, tensor.ExtractSliceOp) and _slot_offset(r) == last_slot for r in final_reads)
        if not ok:
            continue
        for r in reads:
            here = _at(ring, iv, InsertPoint.before(r))
            r.results[0].replace_all_uses_with(here)
            Rewriter.erase_op(r)
        for r in final_reads:
            here = _at(ring, loop.ub, InsertPoint.before(r))
            r.results[0].replace_all_uses_with(here)
            Rewriter.erase_op(r)
        yielded.operands[index] = block.args[index + 1]  # the ring is no longer filled


def _unused_iter_args(loop: scf.ForOp) -> None:
    """Drop iter_args that the loop only forwards (yielded as received) and nobody reads after the loop."""
    block = loop.body.block
    yielded = block.last_op
    assert isinstance(yielded, scf.YieldOp)
    keep = [
        i
        for i in range(len(loop.iter_args))
        if not (yielded.operands[i] == block.args[i + 1] and not loop.results[i].uses)
    ]
    if len(keep) == len(loop.iter_args):
        return
    for i in range(len(loop.iter_args)):
        if i not in keep:
            block.args[i + 1].replace_all_uses_with(loop.iter_args[i])
    new_yield = scf.YieldOp(*(yielded.operands[i] for i in keep))
    Rewriter.replace_op(yielded, new_yield)
    for i in reversed(range(len(loop.iter_args))):
        if i not in keep:
            block.erase_arg(block.args[i + 1])
    body = loop.detach_region(loop.body)
    new_loop = scf.ForOp(loop.lb, loop.ub, loop.step, [loop.iter_args[i] for i in keep], body)
    new_loop.attributes.update(loop.attributes)
    results: list[SSAValue | None] = [None] * len(loop.results)
    for position, i in enumerate(keep):
        results[i] = new_loop.results[position]
    Rewriter.replace_op(loop, new_loop, results)


@dataclass(frozen=True)
class UnstageTilesPass(ModulePass):
    """Kernels read their tiles in place; staging copies and rings go (module docstring)."""

    name = "unstage-tiles"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        loops = [loop for loop in op.walk() if isinstance(loop, scf.ForOp)]
        for loop in loops:
            _unstage_loop(loop)
        for loop in loops:
            _unused_iter_args(loop)
        for copy in [c for c in op.walk() if _is_staging(c)]:
            assert isinstance(copy, CopyOp)
            if copy.inputs[0].type == copy.results[0].type:
                copy.results[0].replace_all_uses_with(copy.inputs[0])
                Rewriter.erase_op(copy)
        for region in op.regions:
            region_dce(region)
        for alloc in [a for a in op.walk() if isinstance(a, AllocTensorOp) and not a.tensor.uses]:
            Rewriter.erase_op(alloc)  # the buffers staging filled
