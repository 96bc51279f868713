"""parallel-tiles: a kernel's loops become one parallel loop, one OpenMP region.

The tiled kernels reach the host's loops (after `convert-linalg-to-parallel-loops`, before `serial-small-loops`
and the OpenMP conversion) as an `scf.for` over row tiles whose body stages each tile through buffers of its own:

    scf.for %t = %c0 to %c3696 step %c264 {
      %acc = memref.alloc() : memref<1x264xf32>            // the reduction's initial value, filled with zeros
      scf.for ... { memref.store %zero, %acc[%i, %j] }
      %tile = memref.alloc() : memref<1x264xf16>           // the tile's result
      scf.parallel (%i, %j) = (%c0, %c0) to (%c1, %c264) step (%c1, %c1) {
        %init = memref.load %acc[%i, %j]
        ... row j of the tile ...
        memref.store %sum, %acc[%i, %j]
        memref.store %h, %tile[%i, %j]
      }
      %out = memref.subview %y[0, %t] [1, 264] [1, 1]
      memref.copy %tile, %out
    }

followed by the peeled last tiles, and kernels whose scales are bit fields of their code blocks (q4_1, q8_0)
unpack them with loops of their own first; OpenMP forks and joins once per loop and tile (a 4096-row q3p5 decode
linear: 16 times per call), each fork costing tens of microseconds on shared cores. This pass (after
`serial-small-loops`, so that small loops are `scf.for` already) makes one parallel loop of each kernel:

1. **Forwarding.** A buffer allocated beside a parallel loop, written only inside it and then copied whole into a
   view of another buffer, is replaced by that view (the loop writes its results in place; the copy goes). A
   buffer filled with one value by a loop nest over its whole shape and accessed in the parallel loop only at the
   loop's own indices, loads before stores, has its loads replaced by that value (the stores and the buffer go).
2. **Fusion.** A loop nest right before a parallel loop (a parallel loop or perfect `scf.for` nest of static
   bounds) that only writes a buffer at its own indices, `X[r, g]`, which the parallel loop reads only at
   `X[r, ...]` with r its one dimension of the same bounds (every other of one trip), runs inside the parallel
   loop's iteration r: its other dimensions become `scf.for` loops writing a one-row `memref.alloca` the
   iteration reads instead of X.
3. **Collapse.** An `scf.for` (static bounds, at least two trips, no loop-carried values) whose body is address
   arithmetic (views, `arith`) and one parallel loop becomes one `scf.parallel` over the tile index and the
   parallel loop's dimensions, when its iterations are independent: every buffer the body writes is a slice at the
   tile index (unit stride, at most one step wide) of a buffer defined outside the loop and not read in it.
4. **Concatenation.** Parallel loops of static bounds in one block, with only address arithmetic and
   allocations between, none reading a buffer another writes and their writes to one buffer in disjoint static
   ranges (subview offsets and sizes, a tile index spanning its loop's range), become one loop over all their
   iterations: `scf.if` on the iteration picks the loop, division and remainder recover its indices. Loops whose
   bodies run fewer than `min_body` operations are left alone (the index arithmetic would cost too much).

`convert-scf-to-openmp` then makes the kernel one region whose (collapsed) iterations OpenMP's static schedule
splits into one contiguous range per thread. Each element is computed by the same operations in the same order
as before; only the thread computing it and the buffer it is first stored in change.

A tile's rows stay the innermost parallel dimension: LLVM compiles the row body the same as a parallel loop of its
own. Keeping the tile loop as an `scf.for` around the rows inside the region (the other way to fork once) puts the
row loop two levels deep in the outlined function, where the register allocator spills the kernel's vector
constants (a q3p5 4096x4096 matrix-vector product: 0.75 ms instead of 0.43 on one thread).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import arith, memref, scf
from xdsl.dialects.builtin import IndexType, MemRefType, ModuleOp
from xdsl.ir import Block, BlockArgument, Operation, Region, SSAValue
from xdsl.passes import ModulePass
from xdsl.rewriter import Rewriter

from q35c.passes.serial_small_loops import ancestors, constant_index, trip_count

DYNAMIC = -(2**63)  # MLIR's marker of a dynamic offset, size or stride in a subview
VIEWS = ("memref.subview", "memref.expand_shape", "memref.collapse_shape", "memref.cast", "memref.reinterpret_cast")
PURE_PREFIXES = ("arith.", "math.", "vector.", "index.")
PURE = frozenset({"affine.apply", "memref.dim", "scf.yield", "scf.reduce", "scf.reduce.return", *VIEWS})
VECTOR_MEMORY = ("load", "store", "transfer", "gather", "scatter")  # vector ops that touch memory (name parts)
READS = {"memref.load": 0, "vector.transfer_read": 0, "vector.load": 0}
WRITES = {"memref.store": 1, "vector.transfer_write": 1, "vector.store": 1}
STRUCTURE = frozenset({"scf.for", "scf.if", "scf.parallel", "scf.yield", "scf.reduce", "scf.reduce.return"})


# ----------------------------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------------------------


def defining_op(value: SSAValue) -> Operation | None:
    owner = value.owner
    return owner.parent_op() if isinstance(owner, Block) else owner


def inside(value: SSAValue, op: Operation) -> bool:
    """Whether `value` is defined in `op`'s regions."""
    owner = defining_op(value)
    if owner is None:
        return False
    if owner is op:
        return isinstance(value, BlockArgument)
    return op.is_ancestor(owner)


def is_pure(op: Operation) -> bool:
    """Whether `op` computes values only (no memory access, no region): reordering it changes nothing."""
    if op.name.startswith("vector.") and any(part in op.name for part in VECTOR_MEMORY):
        return False
    return op.name in PURE or op.name.startswith(PURE_PREFIXES)


def view_chain(value: SSAValue) -> tuple[SSAValue, list[Operation]]:
    """The buffer a view (subview, reshape, cast) is of, and the views from `value` down to it."""
    chain: list[Operation] = []
    while isinstance(owner := value.owner, Operation) and owner.name in VIEWS:
        chain.append(owner)
        value = owner.operands[0]
    return value, chain


def accesses(root: Operation) -> Iterable[tuple[Operation, list[SSAValue], list[SSAValue]]]:
    """Every load, store and copy under `root`: (op, buffers read, buffers written); `known_effects` says
    whether there are no others."""
    for op in root.walk():
        if isinstance(op, memref.CopyOp):
            yield op, [op.source], [op.destination]
        elif op.name in READS:
            yield op, [op.operands[READS[op.name]]], []
        elif op.name in WRITES:
            yield op, [], [op.operands[WRITES[op.name]]]


def known_effects(op: Operation) -> bool:
    """Whether every operation under `op` is pure, a load or store, a copy or a buffer of its own."""
    for inner in op.walk():
        if inner is op:
            continue
        if inner.name in READS or inner.name in WRITES or isinstance(inner, memref.CopyOp):
            continue
        if isinstance(inner, memref.AllocOp | memref.AllocaOp):
            continue
        if isinstance(inner, memref.DeallocOp) and inside(inner.memref, op):
            continue
        if inner.name in STRUCTURE or is_pure(inner):
            continue
        return False
    return True


# ----------------------------------------------------------------------------------------------------------------
# 1. forwarding
# ----------------------------------------------------------------------------------------------------------------


def forward_output(alloc: memref.AllocOp, loop: scf.ParallelOp) -> bool:
    """The alloc, written only in `loop` then copied whole into a view, becomes that view."""
    buffer = alloc.memref
    copy: memref.CopyOp | None = None
    deallocs: list[Operation] = []
    for use in buffer.uses:
        user = use.operation
        if isinstance(user, memref.DeallocOp):
            deallocs.append(user)
        elif isinstance(user, memref.CopyOp) and user.source is buffer and copy is None:
            copy = user
        elif user.name in WRITES and use.index == WRITES[user.name] and loop.is_ancestor(user):
            continue
        else:
            return False
    if copy is None or copy.parent_block() is not loop.parent_block():
        return False
    # only view arithmetic between the loop and the copy: nothing else sees the result in between
    between: list[Operation] = []
    op = loop.next_op
    while op is not None and op is not copy:
        if not is_pure(op):
            return False
        between.append(op)
        op = op.next_op
    if op is None:
        return False
    target = copy.destination
    source_type, target_type = buffer.type, target.type
    if not isinstance(source_type, MemRefType) or not isinstance(target_type, MemRefType):
        return False
    if source_type.get_shape() != target_type.get_shape() or source_type.element_type != target_type.element_type:
        return False
    base, chain = view_chain(target)
    if any(b is base for b in [view_chain(v)[0] for _, reads, writes in accesses(loop) for v in (*reads, *writes)]):
        return False  # the loop already touches the destination's buffer
    # the views making the destination move before the loop (their operands must be defined before it)
    movable = [v for v in chain if v in between]
    for view in movable:
        for operand in view.operands:
            owner = defining_op(operand)
            if owner is not None and owner in between and owner not in movable:
                return False
    move_before(movable, loop)
    for use in list(buffer.uses):
        if loop.is_ancestor(use.operation):
            use.operation.operands[use.index] = target
    Rewriter.erase_op(copy)
    for dealloc in deallocs:
        Rewriter.erase_op(dealloc)
    Rewriter.erase_op(alloc)
    return True


def move_before(views: list[Operation], loop: Operation) -> None:
    """Place `views` (a chain from the destination down to its base) before `loop`, base side first."""
    block = loop.parent_block()
    assert block is not None
    for view in reversed(views):
        view.detach()
        block.insert_op_before(view, loop)


def fill_value(nest: scf.ForOp, buffer: SSAValue) -> SSAValue | None:
    """The value a perfect loop nest stores at every element of `buffer`, else None."""
    if not isinstance(buffer.type, MemRefType):
        return None
    shape = buffer.type.get_shape()
    ivs: list[SSAValue] = []
    op: Operation = nest
    for extent in shape:
        if not isinstance(op, scf.ForOp) or op.iter_args:
            return None
        if constant_index(op.lb) != 0 or constant_index(op.step) != 1 or constant_index(op.ub) != extent:
            return None
        ops = list(op.body.block.ops)
        if len(ops) != 2 or not isinstance(ops[1], scf.YieldOp):
            return None
        ivs.append(op.body.block.args[0])
        op = ops[0]
    if not isinstance(op, memref.StoreOp) or op.memref is not buffer or list(op.indices) != ivs:
        return None
    if inside(op.value, nest):
        return None
    return op.value


def forward_init(alloc: memref.AllocOp, loop: scf.ParallelOp) -> bool:
    """The alloc, filled with one value and accessed in `loop` only at its own indices (loads first), is gone:
    its loads are that value."""
    buffer = alloc.memref
    body = loop.body.block
    ivs = list(body.args)
    fills: list[scf.ForOp] = []
    loads: list[memref.LoadOp] = []
    stores: list[memref.StoreOp] = []
    deallocs: list[Operation] = []
    for use in buffer.uses:
        user = use.operation
        if isinstance(user, memref.DeallocOp):
            deallocs.append(user)
        elif isinstance(user, memref.LoadOp | memref.StoreOp) and user.parent_block() is body:
            if list(user.indices) != ivs or (isinstance(user, memref.StoreOp) and use.index != 1):
                return False
            (loads if isinstance(user, memref.LoadOp) else stores).append(user)
        elif isinstance(user, memref.StoreOp) and use.index == 1:
            top = user
            while top.parent_block() is not loop.parent_block():
                parent = top.parent_op()
                if parent is None:
                    return False
                top = parent
            if not isinstance(top, scf.ForOp) or not top.is_before_in_block(loop) or fills:
                return False
            fills.append(top)
        else:
            return False
    if len(fills) != 1 or not loads:
        return False
    value = fill_value(fills[0], buffer)
    if value is None or any(store.is_before_in_block(load) for store in stores for load in loads):
        return False
    for load in loads:
        Rewriter.replace_op(load, [], [value])
    for op in (*stores, fills[0], *deallocs, alloc):
        Rewriter.erase_op(op)
    return True


def forward_buffers(loop: scf.ParallelOp) -> None:
    block = loop.parent_block()
    if block is None or loop.initVals:
        return
    allocs = [op for op in block.ops if isinstance(op, memref.AllocOp) and op.is_before_in_block(loop)]
    for alloc in allocs:
        if not forward_output(alloc, loop):
            forward_init(alloc, loop)


# ----------------------------------------------------------------------------------------------------------------
# 2. fusion
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class Nest:
    """A loop nest of static bounds: an `scf.parallel` or a perfect nest of `scf.for`; its innermost body."""

    op: Operation
    ivs: list[SSAValue]
    bounds: list[tuple[SSAValue, SSAValue, SSAValue]]
    body: Block


def loop_nest(op: Operation) -> Nest | None:
    if isinstance(op, scf.ParallelOp):
        if op.initVals:
            return None
        bounds = list(zip(op.lowerBound, op.upperBound, op.step, strict=True))
        return Nest(op, list(op.body.block.args), bounds, op.body.block)
    if not isinstance(op, scf.ForOp):
        return None
    ivs: list[SSAValue] = []
    bounds: list[tuple[SSAValue, SSAValue, SSAValue]] = []
    level: Operation = op
    while True:
        assert isinstance(level, scf.ForOp)
        if level.iter_args:
            return None
        ivs.append(level.body.block.args[0])
        bounds.append((level.lb, level.ub, level.step))
        ops = list(level.body.block.ops)
        if len(ops) == 2 and isinstance(ops[0], scf.ForOp):
            level = ops[0]
            continue
        return Nest(op, ivs, bounds, level.body.block)


def static(bounds: tuple[SSAValue, SSAValue, SSAValue]) -> tuple[int, int, int] | None:
    values = tuple(constant_index(v) for v in bounds)
    if any(v is None for v in values):
        return None
    lo, hi, st = values
    assert lo is not None and hi is not None and st is not None
    return lo, hi, st


def produced_buffer(producer: Nest) -> memref.AllocOp | None:
    """The buffer a producer nest writes, each iteration at its own indices and nothing else, if any."""
    if not known_effects(producer.op) or any(static(b) is None for b in producer.bounds):
        return None
    written: SSAValue | None = None
    for op, _, writes in accesses(producer.op):
        if not writes:
            continue
        if not isinstance(op, memref.StoreOp) or list(op.indices) != producer.ivs:
            return None
        if written is not None and op.memref is not written:
            return None
        written = op.memref
    if written is None or not isinstance(written.owner, memref.AllocOp):
        return None
    if any(view_chain(v)[0] is written for _, reads, _ in accesses(producer.op) for v in reads):
        return None
    return written.owner


def consumer_row(consumer: Nest, rows: tuple[int, int, int]) -> SSAValue | None:
    """The consumer's index over the producer's rows: its one dimension of those bounds, every other dimension
    of one trip."""
    row: SSAValue | None = None
    for iv, bounds in zip(consumer.ivs, consumer.bounds, strict=True):
        known = static(bounds)
        if known is None:
            return None
        if known == rows and row is None:
            row = iv
        elif trip_count(*bounds) != 1:
            return None
    return row


def fuse_producer(producer: Nest, consumer: Nest) -> bool:
    """Run the producer's iterations for row r at the start of the consumer's iteration r, into a buffer of
    one row of its own (module docstring)."""
    alloc = produced_buffer(producer)
    first = static(producer.bounds[0])
    if alloc is None or first is None:
        return False
    row = consumer_row(consumer, first)
    if row is None:
        return False
    buffer = alloc.memref
    reads_in_consumer: list[Operation] = []
    others: list[Operation] = []
    for use in buffer.uses:
        user = use.operation
        if producer.op.is_ancestor(user):
            continue
        if isinstance(user, memref.DeallocOp):
            others.append(user)
        elif consumer.op.is_ancestor(user) and user.name in READS and use.index == 0 and user.operands[1] is row:
            reads_in_consumer.append(user)
        else:
            return False
    consumer_writes = {view_chain(v)[0] for _, _, writes in accesses(consumer.op) for v in writes}
    producer_reads = {view_chain(v)[0] for _, reads, _ in accesses(producer.op) for v in reads}
    if consumer_writes & producer_reads or not reads_in_consumer:
        return False
    kind = buffer.type
    assert isinstance(kind, MemRefType)
    body = consumer.body
    zero = arith.ConstantOp.from_int_and_width(0, IndexType())
    private = memref.AllocaOp.get(kind.element_type, 64, [1, *kind.get_shape()[1:]])
    start = body.first_op
    assert start is not None
    body.insert_ops_before([zero, private], start)
    # the producer's other dimensions as scf.for loops, its body inside
    target = body
    anchor: Operation | None = start
    producer.ivs[0].replace_all_uses_with(row)
    for iv, (lower, upper, step) in zip(producer.ivs[1:], producer.bounds[1:], strict=True):
        loop = scf.ForOp(lower, upper, step, [], Region(Block(arg_types=[IndexType()])))
        if anchor is not None:
            target.insert_op_before(loop, anchor)
        else:
            target.add_op(loop)
        iv.replace_all_uses_with(loop.body.block.args[0])
        loop.body.block.add_op(scf.YieldOp())
        target, anchor = loop.body.block, loop.body.block.first_op
    for op in list(producer.body.ops):
        if op is producer.body.last_op:
            continue
        op.detach()
        if anchor is not None:
            target.insert_op_before(op, anchor)
        else:
            target.add_op(op)
    for user in [u.operation for u in buffer.uses if u.operation not in others]:
        user.operands[1 if user.name in READS else 2] = zero.result
        user.operands[READS[user.name] if user.name in READS else WRITES[user.name]] = private.memref
    Rewriter.erase_op(producer.op)
    for op in others:
        Rewriter.erase_op(op)
    Rewriter.erase_op(alloc)
    return True


def fuse_producers(loop: scf.ParallelOp) -> None:
    """Fuse the loop nests right before `loop` (only pure operations and allocations between) that produce
    buffers it reads by rows, nearest first."""
    consumer = loop_nest(loop)
    if consumer is None:
        return
    op = loop.prev_op
    while op is not None:
        if is_pure(op) or isinstance(op, memref.AllocOp):
            op = op.prev_op
            continue
        producer = loop_nest(op)
        if producer is None or not fuse_producer(producer, consumer):
            return
        op = loop.prev_op  # the producer and its buffer are gone


# ----------------------------------------------------------------------------------------------------------------
# 3. collapse
# ----------------------------------------------------------------------------------------------------------------


def row_slice(view: Operation, loop: scf.ForOp) -> bool:
    """Whether `view` is a subview at the loop index along one dimension, of unit stride and at most a step's
    extent there, every other offset, size and stride the same in every iteration."""
    if not isinstance(view, memref.SubviewOp) or inside(view.source, loop):
        return False
    step = constant_index(loop.step)
    offsets = iter(view.offsets)
    found = False
    for dim, offset in enumerate(view.static_offsets.get_values()):
        if offset != DYNAMIC:
            continue
        value = next(offsets)
        if value is loop.body.block.args[0]:
            size = view.static_sizes.get_values()[dim]
            stride = view.static_strides.get_values()[dim]
            found = found or (step is not None and size != DYNAMIC and 0 < size <= step and stride == 1)
        elif inside(value, loop):
            return False
    return found and not any(inside(v, loop) for v in (*view.sizes, *view.strides))


def independent(loop: scf.ForOp) -> bool:
    """Whether the iterations of `loop` touch disjoint memory: every buffer the body writes is defined in the
    body, or is defined outside it, written only through `row_slice` subviews and not read in the body; the body
    runs no operations of other effects."""
    if not known_effects(loop):
        return False
    written: set[SSAValue] = set()
    read: set[SSAValue] = set()
    for _, reads, writes in accesses(loop):
        for value in reads:
            base, _ = view_chain(value)
            if not inside(base, loop):
                read.add(base)
        for value in writes:
            base, chain = view_chain(value)
            if inside(base, loop):
                continue
            if not any(row_slice(v, loop) for v in chain):
                return False
            written.add(base)
    return not (written & read)


def tile_nest(loop: scf.ForOp) -> scf.ParallelOp | None:
    """The parallel loop of a tile loop that collapses with it (module docstring), else None."""
    if loop.iter_args or not (trip_count(loop.lb, loop.ub, loop.step) or 0) >= 2:
        return None
    inner: list[scf.ParallelOp] = []
    for op in loop.body.block.ops:
        if isinstance(op, scf.ParallelOp):
            inner.append(op)
        elif not is_pure(op):
            return None
    if len(inner) != 1 or inner[0].initVals:
        return None
    nest = inner[0]
    if any(inside(v, loop) for v in (*nest.lowerBound, *nest.upperBound, *nest.step)):
        return None
    return nest if independent(loop) else None


def collapse(loop: scf.ForOp, nest: scf.ParallelOp) -> scf.ParallelOp:
    """One `scf.parallel` over the tile index and `nest`'s dimensions, running the tile loop's body."""
    dims = len(nest.lowerBound)
    block = Block(arg_types=[IndexType()] * (1 + dims))
    loop.body.block.args[0].replace_all_uses_with(block.args[0])
    for arg, new in zip(nest.body.block.args, block.args[1:], strict=True):
        arg.replace_all_uses_with(new)
    for op in list(loop.body.block.ops):
        if op is nest or isinstance(op, scf.YieldOp):
            continue
        op.detach()
        block.add_op(op)
    for op in list(nest.body.block.ops):
        op.detach()
        block.add_op(op)
    merged = scf.ParallelOp(
        [loop.lb, *nest.lowerBound], [loop.ub, *nest.upperBound], [loop.step, *nest.step], Region(block)
    )
    Rewriter.replace_op(loop, merged, [])
    return merged


# ----------------------------------------------------------------------------------------------------------------
# 4. concatenation
# ----------------------------------------------------------------------------------------------------------------

Ranges = list[tuple[int, int]] | None  # the half-open index ranges a write may touch per dimension; None: anywhere


def write_ranges(nest: Nest, value: SSAValue) -> tuple[SSAValue, Ranges]:
    """The buffer a write in `nest` goes to and the ranges it may touch there: a subview's static offsets and
    sizes, an offset that is one of the nest's indices spanning that index's range."""
    base, chain = view_chain(value)
    if len(chain) != 1 or not isinstance(chain[0], memref.SubviewOp):
        return base, None
    view = chain[0]
    sizes = view.static_sizes.get_values()
    if DYNAMIC in sizes or any(stride != 1 for stride in view.static_strides.get_values()):
        return base, None
    dynamic = iter(view.offsets)
    ranges: list[tuple[int, int]] = []
    for offset, size in zip(view.static_offsets.get_values(), sizes, strict=True):
        if offset != DYNAMIC:
            ranges.append((offset, offset + size))
            continue
        index = next(dynamic)
        known = constant_index(index)
        if known is not None:
            ranges.append((known, known + size))
            continue
        if index not in nest.ivs:
            return base, None
        bounds = static(nest.bounds[nest.ivs.index(index)])
        trips = trip_count(*nest.bounds[nest.ivs.index(index)])
        if bounds is None or not trips:
            return base, None
        ranges.append((bounds[0], bounds[0] + (trips - 1) * bounds[2] + size))
    return base, ranges


def disjoint(a: Ranges, b: Ranges) -> bool:
    if a is None or b is None:
        return False
    return any(a_hi <= b_lo or b_hi <= a_lo for (a_lo, a_hi), (b_lo, b_hi) in zip(a, b, strict=True))


def effects(nest: Nest) -> tuple[set[SSAValue], list[tuple[SSAValue, Ranges]]]:
    """The buffers outside `nest` it reads, and where it writes outside it."""
    reads: set[SSAValue] = set()
    writes: list[tuple[SSAValue, Ranges]] = []
    for _, read, written in accesses(nest.op):
        reads.update(base for base in (view_chain(v)[0] for v in read) if not inside(base, nest.op))
        for value in written:
            base, ranges = write_ranges(nest, value)
            if not inside(base, nest.op):
                writes.append((base, ranges))
    return reads, writes


def concatenable(nest: Nest, min_body: int) -> bool:
    return (
        bool(nest.bounds)
        and all(static(b) is not None for b in nest.bounds)
        and known_effects(nest.op)
        and block_size(nest.body) >= min_body
    )


MIN_BODY = 64
"""Operations per iteration below which loops are not concatenated: the concatenated loop recovers each loop's
indices with a division and a remainder per dimension and per iteration."""


def block_size(block: Block) -> int:
    return sum(1 for _ in block.walk())


def independent_loops(nests: list[Nest]) -> bool:
    """Whether no loop reads what another writes, and their writes to one buffer touch disjoint ranges."""
    found = [effects(n) for n in nests]
    for i, (_, writes) in enumerate(found):
        for j, (other_reads, other_writes) in enumerate(found):
            if i == j:
                continue
            if any(base in other_reads for base, _ in writes):
                return False
            if j > i and any(
                base is other and not disjoint(ranges, other_ranges)
                for base, ranges in writes
                for other, other_ranges in other_writes
            ):
                return False
    return True


def index_constant(value: int, ops: list[Operation]) -> SSAValue:
    op = arith.ConstantOp.from_int_and_width(value, IndexType())
    ops.append(op)
    return op.result


def delinearize(nest: Nest, index: SSAValue, ops: list[Operation]) -> list[SSAValue]:
    """The nest's indices of its `index`-th iteration (row-major), computed by `ops`."""
    ivs: list[SSAValue] = [index] * len(nest.bounds)
    rest = index
    for d in reversed(range(len(nest.bounds))):
        bounds = static(nest.bounds[d])
        trips = trip_count(*nest.bounds[d])
        assert bounds is not None and trips is not None
        lower, _, step = bounds
        if trips == 1:
            ivs[d] = index_constant(lower, ops)
            continue
        position = rest
        if d > 0:
            rem = arith.RemUIOp(rest, index_constant(trips, ops))
            div = arith.DivUIOp(rest, index_constant(trips, ops))
            ops.extend((rem, div))
            position, rest = rem.result, div.result
        if step != 1:
            mul = arith.MuliOp(position, index_constant(step, ops))
            ops.append(mul)
            position = mul.result
        if lower != 0:
            add = arith.AddiOp(position, index_constant(lower, ops))
            ops.append(add)
            position = add.result
        ivs[d] = position
    return ivs


def iterations(nest: Nest) -> int:
    total = 1
    for bounds in nest.bounds:
        total *= trip_count(*bounds) or 0
    return total


def nest_block(nest: Nest, index: SSAValue, terminator: Operation) -> list[Operation]:
    """The ops running iteration `index` of `nest` (its body moved out of it), ending with `terminator`."""
    ops: list[Operation] = []
    for arg, iv in zip(nest.ivs, delinearize(nest, index, ops), strict=True):
        arg.replace_all_uses_with(iv)
    for op in list(nest.body.ops):
        if op is nest.body.last_op:
            continue
        op.detach()
        ops.append(op)
    ops.append(terminator)
    return ops


def concatenate(nests: list[Nest]) -> scf.ParallelOp:
    """One one-dimensional `scf.parallel` over the iterations of `nests` in order, each range running its
    loop's body, in place of the last loop."""
    starts: list[int] = []
    total = 0
    for nest in nests:
        starts.append(total)
        total += iterations(nest)
    block = Block(arg_types=[IndexType()])
    u = block.args[0]

    def branch(k: int, terminator: Operation) -> list[Operation]:
        ops: list[Operation] = []
        index = u
        if starts[k]:
            sub = arith.SubiOp(u, index_constant(starts[k], ops))
            ops.append(sub)
            index = sub.result
        if k == len(nests) - 1:
            return ops + nest_block(nests[k], index, terminator)
        cond = arith.CmpiOp(u, index_constant(starts[k + 1], ops), "ult")
        then = nest_block(nests[k], index, scf.YieldOp())
        other = branch(k + 1, scf.YieldOp())
        return [*ops, cond, scf.IfOp(cond, [], Region(Block(then)), Region(Block(other))), terminator]

    block.add_ops(branch(0, scf.ReduceOp()))
    last = nests[-1].op
    bounds: list[Operation] = []
    lower, upper, one = (index_constant(v, bounds) for v in (0, total, 1))
    merged = scf.ParallelOp([lower], [upper], [one], Region(block))
    parent = last.parent_block()
    assert parent is not None
    parent.insert_ops_before([*bounds, merged], last)
    for nest in nests:
        Rewriter.erase_op(nest.op)
    return merged


def concatenate_block(block: Block, min_body: int) -> None:
    """Concatenate each run of independent parallel loops in `block` with only pure operations (and allocations)
    between, each loop's body of at least `min_body` operations."""
    run: list[Nest] = []
    for op in [*block.ops, None]:
        if op is not None and (is_pure(op) or isinstance(op, memref.AllocOp)):
            continue
        nest = loop_nest(op) if isinstance(op, scf.ParallelOp) else None
        if nest is not None and concatenable(nest, min_body) and independent_loops([*run, nest]):
            run.append(nest)
            continue
        if len(run) > 1:
            concatenate(run)
        run = [nest] if nest is not None and concatenable(nest, min_body) else []


def outermost_fors(module: ModuleOp) -> list[scf.ForOp]:
    """The `scf.for` loops inside no other loop (sequential or parallel)."""
    return [
        op
        for op in module.walk()
        if isinstance(op, scf.ForOp) and not any(isinstance(a, scf.ForOp | scf.ParallelOp) for a in ancestors(op))
    ]


@dataclass(frozen=True)
class ParallelTilesPass(ModulePass):
    """A kernel's loops as one parallel loop: forwarding, fusion, collapse, concatenation (module docstring)."""

    name = "parallel-tiles"

    min_body: int = MIN_BODY

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for loop in [p for p in op.walk() if isinstance(p, scf.ParallelOp)]:
            forward_buffers(loop)
        for loop in reversed([p for p in op.walk() if isinstance(p, scf.ParallelOp)]):
            if loop.parent_op() is not None:  # not fused into a later loop
                fuse_producers(loop)
        for tile in outermost_fors(op):
            nest = tile_nest(tile)
            if nest is not None:
                collapse(tile, nest)
        for block in [b for b in op.walk_blocks() if any(isinstance(o, scf.ParallelOp) for o in b.ops)]:
            concatenate_block(block, self.min_body)
