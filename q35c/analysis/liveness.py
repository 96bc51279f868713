"""Buffer liveness and peak memory per memory level: pure analyses over a func and its alias graph.

Bufferization gives every connected component of `q35c.analysis.opgraph.alias_graph` one buffer. Its root (the op result
or function argument that starts it) says where it lives: `bufferization.alloc_tensor {memory_space = s}` in
space s, everything else in space 0, main memory. A buffer is live from its root to the last use of any value
in its component; a use inside a loop (or any op with regions) keeps the buffer live to the end of that op, so
buffers carried through a loop stay live across all of its iterations, while a buffer allocated in a loop body
dies within each iteration.

Ops are numbered in pre-order over the whole func, nested regions included, so a position is a program point
and `peak` is a sweep over intervals:

    %ring = bufferization.alloc_tensor() {memory_space = 2 : i64} : tensor<2x16x896xi32>   // [3, 40]
    %r:2 = scf.for ... iter_args(%y = ..., %ring_n = %ring) {                             // pos 10..38
      %acc = bufferization.alloc_tensor() {memory_space = 2 : i64} : tensor<1x16xf32>      // [14, 30]
      ...
    }
    ... epilogue reads %r#1 ...                                                            // pos 40

Space 2 peaks at 2x16x896x4 + 64 bytes inside the loop. Values produced by a generic marked `q35.fused` never
reach memory (they stream to their consumer in registers) and are not buffers; what a fused generic reads is
read as its consumer runs, so a buffer read by one stays live as long as the fused value (decoded codes read
staged weight tiles until the matmul that consumes them). A `func.call` adds the callee's own peak (without its
arguments, which are the caller's buffers) at the call.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from xdsl.dialects import func
from xdsl.dialects.bufferization import AllocTensorOp
from xdsl.dialects.builtin import IntegerAttr
from xdsl.ir import Attribute, Block, BlockArgument, Operation, OpResult, Region, SSAValue

from q35c.analysis.opgraph import alias_components, buffer_root, type_bytes
from q35c.ir.attrs import FUSED_ATTR

if TYPE_CHECKING:
    import networkx as nx

"""Unit attribute on an elementwise `linalg.generic` whose result streams into its consumer (no buffer)."""

MAIN_MEMORY = 0


@dataclass(frozen=True)
class Buffer:
    """One buffer: where it lives, its size and the program points [start, end] over which it is live."""

    name: str
    space: int
    bytes: int
    start: int
    end: int
    type: Attribute | str = ""  # the buffer's type (printed only in messages), or what a pseudo-buffer stands for


@dataclass(frozen=True)
class Peak:
    """The most bytes live at once in one memory space, where (position) and which buffers."""

    bytes: int
    position: int
    live: tuple[Buffer, ...]


def peak(buffers: Iterable[Buffer]) -> dict[int, Peak]:
    """The peak of live bytes per memory space (spaces without buffers are absent).

    >>> peak([Buffer("a", 1, 10, 0, 5), Buffer("b", 1, 7, 3, 8), Buffer("c", 1, 9, 6, 9)])[1].bytes
    17
    """
    by_space: dict[int, list[Buffer]] = {}
    for buffer in buffers:
        by_space.setdefault(buffer.space, []).append(buffer)
    result: dict[int, Peak] = {}
    for space, group in sorted(by_space.items()):
        events = sorted([(b.start, b.bytes) for b in group] + [(b.end + 1, -b.bytes) for b in group])
        best, best_at, current = 0, 0, 0
        for index, (position, delta) in enumerate(events):
            current += delta
            last_at_position = index + 1 == len(events) or events[index + 1][0] != position
            if last_at_position and current > best:
                best, best_at = current, position
        live = tuple(b for b in group if b.start <= best_at <= b.end)
        result[space] = Peak(best, best_at, live)
    return result


def positions(fn: func.FuncOp) -> tuple[dict[Operation, int], dict[Operation, int]]:
    """Pre-order position of every op of `fn`'s body and the last position nested inside it."""
    start: dict[Operation, int] = {}
    end: dict[Operation, int] = {}

    def visit(region: Region) -> None:
        for block in region.blocks:
            for op in block.ops:
                start[op] = len(start)
                for inner in op.regions:
                    visit(inner)
                end[op] = len(start) - 1

    visit(fn.body)
    return start, end


def memory_space(root: SSAValue) -> int:
    """The memory space a buffer root is placed in (0 unless an alloc_tensor says otherwise)."""
    if isinstance(root, OpResult) and isinstance(root.op, AllocTensorOp):
        space = root.op.attributes.get("memory_space")
        if isinstance(space, IntegerAttr):
            return space.value.data
    return MAIN_MEMORY


def _defining_block(value: SSAValue) -> Block | None:
    if isinstance(value, BlockArgument):
        return value.owner
    assert isinstance(value, OpResult)
    return value.op.parent_block()


def _ancestor_in(op: Operation, block: Block | None) -> Operation:
    while op.parent_block() is not block and (parent := op.parent_op()) is not None:
        op = parent
    return op


def _is_fused(value: SSAValue) -> bool:
    return isinstance(value, OpResult) and FUSED_ATTR in value.op.attributes


def _last_reads(components: Sequence[Collection[SSAValue]], end: Mapping[Operation, int]) -> Callable[[int], int]:
    """The last position at which component `index` of the alias graph is read, found when asked (once); a read by
    a fused generic lasts until the fused value's own last read."""
    component_of = {value: i for i, component in enumerate(components) for value in component}
    found: dict[int, int] = {}

    def last(index: int) -> int:
        if index not in found:
            found[index] = 0  # a fused chain never reads itself; this only guards the recursion
            finish = 0
            for value in components[index]:
                block = _defining_block(value)
                for use in value.uses:
                    finish = max(finish, end[_ancestor_in(use.operation, block)])
                    if FUSED_ATTR in use.operation.attributes:
                        fused = [last(component_of[r]) for r in use.operation.results if r in component_of]
                        finish = max([finish, *fused])
            found[index] = finish
        return found[index]

    return last


def func_buffers(
    fn: func.FuncOp,
    callee_peaks: Mapping[str, Mapping[int, int]] | None = None,
    graph: nx.Graph | None = None,
    include_arguments: bool = False,
) -> list[Buffer]:
    """The buffers of `fn` with their live ranges; arguments only if `include_arguments` (an entry function's
    inputs and weights); plus, at each call, one pseudo-buffer per memory space of the callee's peak."""
    if graph is None:
        components = alias_components(fn)
    else:
        from networkx import connected_components

        components = list(connected_components(graph))
    start, end = positions(fn)
    last = max(end.values(), default=0)
    last_read = _last_reads(components, end)
    sizes: dict[int, tuple[Attribute, int]] = {}  # by type: many buffers (an entry's weights) share a few

    def size(typ: Attribute) -> int:
        known = sizes.get(id(typ))
        if known is None:
            known = sizes[id(typ)] = (typ, type_bytes(typ))
        return known[1]

    buffers: list[Buffer] = []
    for index, component in enumerate(components):
        if any(_is_fused(v) for v in component):
            continue
        roots = [v for v in component if buffer_root(v)]
        if not roots or (not include_arguments and all(isinstance(r, BlockArgument) for r in roots)):
            continue
        for root in roots:
            if isinstance(root, BlockArgument):
                if not include_arguments:
                    continue
                first, finish_root = 0, last
            else:
                assert isinstance(root, OpResult)
                first, finish_root = start[root.op], max(last_read(index), start[root.op])
            name = root.name_hint or (root.op.name if isinstance(root, OpResult) else f"arg{root.index}")
            buffers.append(Buffer(name, memory_space(root), size(root.type), first, finish_root, root.type))
    for op in start:
        if isinstance(op, func.CallOp) and callee_peaks is not None:
            for space, size in callee_peaks.get(op.callee.string_value(), {}).items():
                name = f"@{op.callee.string_value()}"
                buffers.append(Buffer(name, space, size, start[op], start[op], "call"))
    return buffers


def module_peaks(functions: Iterable[func.FuncOp]) -> dict[str, dict[int, Peak]]:
    """Peak per memory space of every function, callees first so that calls add their callee's peak.

    An uncalled function (an entry point) counts its arguments, which its caller, the runtime, provides.
    """
    fns = {fn.sym_name.data: fn for fn in functions if not fn.is_declaration}
    callees: dict[str, dict[str, None]] = {name: {} for name in fns}  # each function's callees, in call order
    for name, fn in fns.items():
        for op in fn.body.walk():
            if isinstance(op, func.CallOp) and (callee := op.callee.string_value()) in fns:
                callees[name][callee] = None
    callers = dict.fromkeys(fns, 0)
    for called in callees.values():
        for callee in called:
            callers[callee] += 1
    entries = {name for name, count in callers.items() if count == 0}
    internal: dict[str, dict[int, int]] = {}
    result: dict[str, dict[int, Peak]] = {}
    for name in reversed(callers_first(callees)):
        # An entry is called by no function here, so only its peak with arguments is needed.
        own = peak(func_buffers(fns[name], internal, include_arguments=name in entries))
        internal[name] = {space: p.bytes for space, p in own.items()}
        result[name] = own
    return result


def callers_first(callees: Mapping[str, Iterable[str]]) -> list[str]:
    """The functions of a call graph (each function's callees), every caller before its callees: those no one
    calls, then those only they call, and so on (Kahn's generations, in the order given). ValueError for
    recursive calls.

    >>> callers_first({"main": ["layer", "head"], "layer": ["linear"], "head": ["linear"], "linear": []})
    ['main', 'layer', 'head', 'linear']
    """
    waiting = dict.fromkeys(callees, 0)
    for called in callees.values():
        for callee in called:
            waiting[callee] += 1
    order = [name for name, count in waiting.items() if count == 0]
    for name in order:  # grows as callees become ready
        for callee in callees[name]:
            waiting[callee] -= 1
            if waiting[callee] == 0:
                order.append(callee)
    if len(order) != len(waiting):
        raise ValueError("recursive calls: no function order puts every caller before its callees")
    return order
