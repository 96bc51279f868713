"""Re-reads inside one kernel call: how often the schedule reads the same bytes, and what a cache must hold.

`q35c.analysis.workload` hands this module a kernel's *read sites* and gets back the bytes each source costs at
first reading and its re-reads, each with the working set that lies between two reads of the same bytes. Which
memory level serves a re-read is the cost model's business (`targets.levels.serving_level`); this module only
reads the loop nest the `tile` and `schedule-memory` passes built.

A read site is a `linalg.copy` from main memory (space 0) into an on-chip level (a staged tile), or a compute op
reading a source that was not staged. It reads `s` bytes (the slice it copies or sees) once per trip of every
`scf.for` around it in its function. Its slice *moves with* a loop when an offset of a `tensor.extract_slice`
on its way to the source depends on that loop's induction variable; over the other loops it reads the same bytes
again. With `m` the trips of the loops it moves with:

    first reads               = s * m                                                 (distinct bytes)
    re-reads across loop L    = s * m * (trips of non-moving loops outside L) * (trips_L - 1)
    working set of those      = what one iteration of L touches in main memory: over every site of the kernel
                                inside L (reads, and tiles written back), s * (trips of the loops inside L it
                                moves with), at most each source's size

(the re-reads over all non-moving loops add up to s * trips - s * m). A prefill linear tiled T x N x K:

    scf.for %t = 0 to 512 step 64 {                      // the weight slice does not move with t
      %w0 = extract_slice %codes[0, 0] [304, 56]         // prologue: tile 0, re-read once per t
      linalg.copy {q35.src_space = 0, q35.dst_space = 2} ins(%w0) ...
      scf.for %n = 0 to 3952 step 304 {
        %next = arith.addi %n, %c304
        %w = extract_slice %codes[%next, 0] [304, 56]    // moves with n: each n tile once per t
        linalg.copy {q35.src_space = 0, q35.dst_space = 2} ins(%w) ...
        %x = extract_slice %x[%t, 0] [64, 4096]          // moves with t, re-read across n
        linalg.copy {q35.src_space = 0, q35.dst_space = 2} ins(%x) ...

The weight is read once (first reads: its size) and 7 more times (8 t tiles), each re-read across `t` with a
working set of one `t` iteration: the whole weight plus one x tile and one y tile. The x tile is re-read across
`n` (13 n tiles) with the working set of one `n` iteration: one weight row tile, the x tile, one y tile. With
`tile-t=1` the weight is re-read 511 times with the same working set: a cache that holds the weight serves them,
one that does not sends them to main memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from math import prod

from xdsl.dialects import func, scf
from xdsl.ir import BlockArgument, Operation, SSAValue

from q35c.analysis.kernels import tensor_bytes, trip_count

_THROUGH = frozenset(
    {
        "tensor.expand_shape",
        "tensor.collapse_shape",
        "tensor.cast",
        "tensor.reshape",
        "q35_storage.assemble",
        "bufferization.materialize_in_destination",
    }
)


@dataclass(frozen=True)
class Reread:
    """Bytes a kernel call reads again of one kind of source (`weight`, `kv`, `activation`), and the working set
    between two reads of the same bytes: what a memory level must hold to serve them."""

    kind: str
    bytes: float
    working_set: float


@dataclass(frozen=True)
class Site:
    """One place a kernel reads (or writes back) main memory: `slice_bytes` per trip of its `loops` (outermost
    first, within its function), of which it moves with `moving`."""

    source: SSAValue
    slice_bytes: float
    loops: tuple[scf.ForOp, ...]
    moving: frozenset[scf.ForOp]
    written: bool = False

    @property
    def distinct(self) -> float:
        """Bytes read the first time: the slice times the trips of the loops it moves with."""
        return self.slice_bytes * prod(trip_count(loop) for loop in self.loops if loop in self.moving)

    @property
    def total(self) -> float:
        return self.slice_bytes * prod(trip_count(loop) for loop in self.loops)

    def rereads(self) -> list[tuple[scf.ForOp, float]]:
        """(loop, bytes re-read across it) for each loop the slice does not move with."""
        found: list[tuple[scf.ForOp, float]] = []
        outer = 1
        for loop in self.loops:
            if loop in self.moving:
                continue
            trips = trip_count(loop)
            if trips > 1:
                found.append((loop, self.distinct * outer * (trips - 1)))
            outer *= trips
        return found

    def footprint(self, loop: scf.ForOp) -> float:
        """Distinct bytes this site touches in one iteration of `loop` (0 when the site is not inside it)."""
        if loop not in self.loops:
            return 0.0
        inner = self.loops[self.loops.index(loop) + 1 :]
        return self.slice_bytes * prod(trip_count(inner_loop) for inner_loop in inner if inner_loop in self.moving)


def enclosing_loops(op: Operation, fn: func.FuncOp) -> tuple[scf.ForOp, ...]:
    """The `scf.for` loops around `op` inside `fn`, outermost first."""
    loops: list[scf.ForOp] = []
    parent = op.parent_op()
    while parent is not None and parent is not fn:
        if isinstance(parent, scf.ForOp):
            loops.append(parent)
        parent = parent.parent_op()
    return tuple(reversed(loops))


def root(value: SSAValue) -> SSAValue:
    """The tensor a slice is cut from: `value` followed back through `extract_slice` and views."""
    for _ in range(64):
        owner = value.owner
        if not isinstance(owner, Operation) or not (owner.name == "tensor.extract_slice" or owner.name in _THROUGH):
            break
        value = owner.operands[0]
    return value


@dataclass
class LoopDependence:
    """Which loops' induction variables an index value derives from (memoized over one function)."""

    memo: dict[SSAValue, frozenset[scf.ForOp]] = field(default_factory=dict[SSAValue, frozenset[scf.ForOp]])

    def of_index(self, value: SSAValue) -> frozenset[scf.ForOp]:
        if value in self.memo:
            return self.memo[value]
        self.memo[value] = frozenset()
        found: set[scf.ForOp] = set()
        if isinstance(value, BlockArgument):
            parent = value.owner.parent_op()
            if isinstance(parent, scf.ForOp) and value.index == 0:
                found.add(parent)
        elif isinstance(value.owner, Operation) and not isinstance(value.owner, scf.ForOp):
            for operand in value.owner.operands:
                found |= self.of_index(operand)
        self.memo[value] = frozenset(found)
        return self.memo[value]

    def of_slice(self, value: SSAValue, source: SSAValue) -> frozenset[scf.ForOp]:
        """The loops the slice `value` of `source` moves with: those its `extract_slice` offsets, sizes and
        strides derive from, on the way from `value` back through views to `source`."""
        found: set[scf.ForOp] = set()
        stack, seen = [value], set[SSAValue]()
        while stack:
            current = stack.pop()
            if current in seen or current is source:
                continue
            seen.add(current)
            owner = current.owner
            if not isinstance(owner, Operation):
                continue
            if owner.name == "tensor.extract_slice":
                for index in owner.operands[1:]:
                    found |= self.of_index(index)
                stack.append(owner.operands[0])
            elif owner.name in _THROUGH:
                stack.extend(owner.operands)
        return frozenset(found)


@dataclass(frozen=True)
class Traffic:
    """A kernel call's reads: bytes each source costs at first reading (at most its size), and the re-reads."""

    first: dict[SSAValue, float]
    rereads: tuple[Reread, ...]


def split(sites: Iterable[Site], kind_of: Callable[[SSAValue], str]) -> Traffic:
    """First reads per source and re-reads by (kind, working set) of a kernel's read `sites` (see the module
    docstring). Distinct bytes beyond a source's size (a tile two sites both read) are re-reads with an empty
    working set: the nearest level serves them."""
    sites = list(sites)
    first: dict[SSAValue, float] = {}
    merged: dict[tuple[str, float], float] = {}

    def add(kind: str, amount: float, working_set: float) -> None:
        if amount > 0:
            merged[(kind, working_set)] = merged.get((kind, working_set), 0.0) + amount

    footprints: dict[scf.ForOp, float] = {}

    def footprint(loop: scf.ForOp) -> float:
        if loop not in footprints:
            per_source: dict[SSAValue, float] = {}
            for site in sites:
                per_source[site.source] = per_source.get(site.source, 0.0) + site.footprint(loop)
            footprints[loop] = sum(min(v, tensor_bytes(s.type) or v) for s, v in per_source.items())
        return footprints[loop]

    for site in sites:
        if site.written:
            continue
        first[site.source] = first.get(site.source, 0.0) + site.distinct
        for loop, amount in site.rereads():
            add(kind_of(site.source), amount, footprint(loop))
    for source, amount in list(first.items()):
        whole = tensor_bytes(source.type)
        if whole and amount > whole:
            add(kind_of(source), amount - whole, 0.0)
            first[source] = whole
    rereads = tuple(Reread(kind, amount, ws) for (kind, ws), amount in sorted(merged.items()))
    return Traffic(first, rereads)
