"""serial-small-loops: parallel loops too small to pay for an OpenMP region run in sequence on the host.

`convert-scf-to-openmp` makes every `scf.parallel` an OpenMP parallel region: a fork and a join of the
runtime's threads, about a microsecond on an idle core and tens of microseconds when the cores are shared.
Most of a decode step's loop nests (norms, element-wise ops, activation quantization, the small kernels of a
small model) do far less work than that. This pass runs on the bufferized loops (after
`convert-linalg-to-parallel-loops`, before the OpenMP conversion) and estimates each outermost `scf.parallel`'s
work: its static trip count times the operations its body executes, a nested `scf.for` of static bounds counting
its trip count times its body, a `memref.copy` its elements. A loop nest under `min_work` operations (default
`MIN_WORK`) becomes nested `scf.for` loops, as does every `scf.parallel` inside another one (the region's
threads already split the outer loop). A loop whose bounds are not constants, one with reductions
(`init_vals`) and one whose body calls a function keep their region: their work is not known here.

    scf.parallel (%i) = (%c0) to (%c64) step (%c1) {
      %v = memref.load %x[%i] : memref<64xf32>
      memref.store %v, %y[%i] : memref<64xf32>
      scf.reduce
    }

(64 x 3 operations) becomes

    scf.for %i = %c0 to %c64 step %c1 {
      %v = memref.load %x[%i] : memref<64xf32>
      memref.store %v, %y[%i] : memref<64xf32>
    }

The loops compute the same values in the same order per element; only which thread runs them changes.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import arith, memref, scf
from xdsl.dialects.builtin import IndexType, IntegerAttr, MemRefType, ModuleOp
from xdsl.ir import Block, Operation, Region, SSAValue
from xdsl.passes import ModulePass
from xdsl.rewriter import Rewriter

MIN_WORK = 32768
"""Operations below which a loop nest runs in sequence: on one core tens of microseconds of scalar work, the
cost of one fork and join when the host's cores are shared (docs/host-code.md)."""

UNKNOWN = -1


def constant_index(value: SSAValue) -> int | None:
    """The value of an index or integer `arith.constant`, else None."""
    owner = value.owner
    if isinstance(owner, arith.ConstantOp) and isinstance(owner.value, IntegerAttr):
        return owner.value.value.data
    return None


def trip_count(lower: SSAValue, upper: SSAValue, step: SSAValue) -> int | None:
    lo, hi, st = constant_index(lower), constant_index(upper), constant_index(step)
    if lo is None or hi is None or st is None or st <= 0:
        return None
    return max(0, -(-(hi - lo) // st))


def block_work(block: Block, limit: int) -> int:
    """Operations one execution of `block` runs, UNKNOWN when not static; counting stops above `limit`."""
    total = 0
    for op in block.ops:
        work = op_work(op, limit)
        if work == UNKNOWN:
            return UNKNOWN
        total += work
        if total > limit:
            return total
    return total


def op_work(op: Operation, limit: int) -> int:
    if isinstance(op, scf.ForOp):
        trips = trip_count(op.lb, op.ub, op.step)
        body = block_work(op.body.block, limit) if trips else 0
        if trips is None or body == UNKNOWN:
            return UNKNOWN
        return 1 + trips * body
    if isinstance(op, scf.ParallelOp):
        return parallel_work(op, limit)
    if isinstance(op, memref.CopyOp):
        source = op.source.type
        if isinstance(source, MemRefType) and all(d >= 0 for d in source.get_shape()):
            count = 1
            for d in source.get_shape():
                count *= d
            return count
        return UNKNOWN
    if op.name == "func.call":
        return UNKNOWN
    work = 1
    for region in op.regions:
        for block in region.blocks:
            inner = block_work(block, limit)
            if inner == UNKNOWN:
                return UNKNOWN
            work += inner
    return work


def parallel_work(op: scf.ParallelOp, limit: int) -> int:
    """Operations the whole loop nest runs, UNKNOWN when not static (or when it carries reductions)."""
    if op.initVals:
        return UNKNOWN
    trips = 1
    for lower, upper, step in zip(op.lowerBound, op.upperBound, op.step, strict=True):
        count = trip_count(lower, upper, step)
        if count is None:
            return UNKNOWN
        trips *= count
    if trips == 0:
        return 0
    body = block_work(op.body.block, limit)
    if body == UNKNOWN:
        return UNKNOWN
    return trips * body


def serialize(op: scf.ParallelOp) -> None:
    """Replace `op` (without reductions) by nested `scf.for` loops over its dimensions, outermost first."""
    body = op.body.block
    terminator = body.last_op
    if not op.lowerBound:
        return
    assert isinstance(terminator, scf.ReduceOp) and not terminator.operands
    Rewriter.erase_op(terminator)
    bounds = list(zip(op.lowerBound, op.upperBound, op.step, strict=True))
    loops: list[scf.ForOp] = []
    for lower, upper, step in bounds:
        loop = scf.ForOp(lower, upper, step, [], Region(Block(arg_types=[IndexType()])))
        if loops:
            loops[-1].body.block.add_op(loop)
        loops.append(loop)
    inner = loops[-1].body.block
    ivs = [loop.body.block.args[0] for loop in loops]
    for arg, iv in zip(body.args, ivs, strict=True):
        arg.replace_all_uses_with(iv)
    for inner_op in list(body.ops):
        inner_op.detach()
        inner.add_op(inner_op)
    for loop in reversed(loops):
        loop.body.block.add_op(scf.YieldOp())
    Rewriter.replace_op(op, loops[0], [])


def outermost_parallels(module: ModuleOp) -> list[scf.ParallelOp]:
    found: list[scf.ParallelOp] = []
    for op in module.walk():
        if isinstance(op, scf.ParallelOp) and not any(isinstance(parent, scf.ParallelOp) for parent in ancestors(op)):
            found.append(op)
    return found


def ancestors(op: Operation) -> list[Operation]:
    out: list[Operation] = []
    parent = op.parent_op()
    while parent is not None:
        out.append(parent)
        parent = parent.parent_op()
    return out


@dataclass(frozen=True)
class SerialSmallLoopsPass(ModulePass):
    """Small parallel loop nests, and parallel loops inside parallel loops, as `scf.for` (module docstring)."""

    name = "serial-small-loops"

    min_work: int = MIN_WORK

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for outer in outermost_parallels(op):
            nested = [inner for inner in outer.walk() if isinstance(inner, scf.ParallelOp) and inner is not outer]
            for inner in reversed(nested):  # innermost first
                if not inner.initVals:
                    serialize(inner)
            work = parallel_work(outer, self.min_work)
            if work != UNKNOWN and work < self.min_work:
                serialize(outer)
