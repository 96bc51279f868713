"""The launch plan of a phase: what each IR function's entry point does, in program order, as data.

`launch.py` prints it as `launch.cu`; `q35c.codegen.cuda.device` walks it to launch the same kernels through
the CUDA driver, one at a time. One plan, two readers, so the kernels a device run times are the launcher's.

    plans = plan_functions(functions, order)      # {"main": FunctionPlan, "decoder": ..., "linear....": ...}
    for step in flatten(plans, "main", args, result, workspace):
        ...                                       # Launched(kernel, addresses) or Copied(dst, src, bytes)

A pointer of a function's frame (`Ref`) is one of its arguments, its result buffer, or its workspace at a byte
offset: every tensor a function computes has a fixed workspace offset (aligned to `ALIGN`), and a callee's
workspace follows its caller's own (`FunctionPlan.workspace` bytes cover the callee's too).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from xdsl.dialects import func
from xdsl.ir import Operation, OpResult, SSAValue

from q35c.codegen.cuda.cexpr import UnsupportedIR, ctype, element_size
from q35c.codegen.cuda.kernel import Kernel, c_identifier
from q35c.codegen.cuda.phases import Buffers
from q35c.codegen.cuda.values import element_type, shape_of

ALIGN = 256
MAX_CALL_DEPTH = 16  # entry -> decoder block -> linear kernel is 3 deep


@dataclass(frozen=True)
class Function:
    """An IR function's entry point: its C name, arguments, result and the launches of its body."""

    fn: func.FuncOp
    kernels: tuple[tuple[int, Kernel], ...]  # (position of the first op in the body, kernel)
    linear: Kernel | None = None


@dataclass(frozen=True)
class Ref:
    """A pointer of a function's frame: `kind` is `arg` (`value` = its index), `result`, or `workspace`
    (`value` = the byte offset); `text` is how the launcher writes it."""

    kind: str
    value: int
    text: str


@dataclass(frozen=True)
class Launch:
    """Launch `kernel` with `pointers` for its parameters, in order."""

    kernel: Kernel
    pointers: tuple[Ref, ...]


@dataclass(frozen=True)
class Call:
    """Call the entry point of `callee`: its arguments, its result buffer, its workspace at `workspace` bytes of
    the caller's; `arg_types` and `result_type` are the C element types the launcher casts to."""

    callee: str
    args: tuple[Ref, ...]
    arg_types: tuple[str, ...]
    result: Ref
    result_type: str
    workspace: int


@dataclass(frozen=True)
class Copy:
    """Copy `bytes` from `source` to the function's result buffer (device to device)."""

    source: Ref
    bytes: int


@dataclass(frozen=True)
class FunctionPlan:
    """What one entry point does: `steps` in program order, then `copy` (None for a linear kernel's entry,
    whose kernel writes the result itself); `workspace` bytes cover its calls' workspaces too."""

    name: str
    symbol: str
    steps: tuple[Launch | Call, ...]
    copy: Copy | None
    workspace: int


@dataclass(frozen=True)
class Launched:
    """A launch with its device addresses, and the function (and call path) it belongs to."""

    kernel: Kernel
    addresses: tuple[int, ...]
    path: str


@dataclass(frozen=True)
class Copied:
    destination: int
    source: int
    bytes: int


def entry_name(fn: func.FuncOp) -> str:
    return f"q35_{c_identifier(fn.sym_name.data)}"


def _root(value: SSAValue) -> SSAValue:
    """The buffer a view reads (expand/collapse keep the row-major layout)."""
    while isinstance(value, OpResult) and value.op.name in ("tensor.expand_shape", "tensor.collapse_shape"):
        value = value.op.operands[0]
    return value


def value_bytes(value: SSAValue) -> int:
    count = 1
    for d in shape_of(value):
        count *= d
    return count * element_size(element_type(value))


def _arg_ref(fn: func.FuncOp, index: int) -> Ref:
    arg = fn.args[index]
    return Ref("arg", index, c_identifier(arg.name_hint or f"arg{index}"))


def _workspace_ref(offset: int) -> Ref:
    return Ref("workspace", offset, f"(char*)workspace + {offset}LL")


def plan_functions(functions: Sequence[Function], order: Mapping[str, Function]) -> dict[str, FunctionPlan]:
    """The plan of every function of a phase, callees first (reverse program order of `functions`)."""
    plans: dict[str, FunctionPlan] = {}

    def planned(name: str, depth: int) -> FunctionPlan:
        if name not in plans:
            if depth > MAX_CALL_DEPTH:
                raise UnsupportedIR(f"calls nest deeper than {MAX_CALL_DEPTH} at {name}")
            plans[name] = _plan(order[name], order, lambda callee: planned(callee, depth + 1))
        return plans[name]

    for entry in reversed(list(functions)):
        planned(entry.fn.sym_name.data, 0)
    return plans


def _plan(entry: Function, order: Mapping[str, Function], planned: Callable[[str], FunctionPlan]) -> FunctionPlan:
    fn = entry.fn
    name = fn.sym_name.data
    if entry.linear is not None:
        pointers = (*(_arg_ref(fn, i) for i in range(len(fn.args))), Ref("result", 0, "result"))
        return FunctionPlan(name, entry_name(fn), (Launch(entry.linear, pointers),), None, 0)
    buffers = Buffers.of(fn)
    pointer: dict[SSAValue, Ref] = {a: _arg_ref(fn, i) for i, a in enumerate(fn.args)}
    needed: set[SSAValue] = set()
    for _, kernel in entry.kernels:
        needed.update(param_value(buffers, p.name) for p in kernel.params)
    for op in fn.walk():
        if isinstance(op, func.CallOp):
            needed.update(_root(v) for v in op.operands)
            needed.update(op.results)
        elif isinstance(op, func.ReturnOp):
            needed.update(_root(v) for v in op.operands)
    offset = 0
    for value in buffers.names:
        if value not in pointer and value in needed:
            pointer[value] = _workspace_ref(offset)
            offset += -(-value_bytes(value) // ALIGN) * ALIGN
    callee_space = 0
    steps: list[tuple[int, Launch | Call]] = []
    ops = list(fn.body.block.ops)
    position = {op: i for i, op in enumerate(ops)}
    for op in ops:
        if isinstance(op, func.CallOp):
            callee = op.callee.string_value()
            if callee not in order:
                raise UnsupportedIR(f"{name}: call of an unknown function {callee}")
            callee_space = max(callee_space, planned(callee).workspace)
            call = Call(
                callee,
                tuple(pointer[_root(v)] for v in op.operands),
                tuple(ctype(element_type(v)) for v in op.operands),
                pointer[op.results[0]],
                ctype(element_type(op.results[0])),
                offset,
            )
            steps.append((position[op], call))
    for first, kernel in entry.kernels:
        steps.append((first, Launch(kernel, tuple(pointer[param_value(buffers, p.name)] for p in kernel.params))))
    steps.sort(key=lambda s: s[0])
    _check_order(fn, entry, buffers, set(fn.args))
    ret = fn.body.block.last_op
    assert isinstance(ret, Operation)
    result = _root(ret.operands[0])
    copy = Copy(pointer[result], value_bytes(result))
    return FunctionPlan(name, entry_name(fn), tuple(step for _, step in steps), copy, offset + callee_space)


def param_value(buffers: Buffers, name: str) -> SSAValue:
    for value, text in buffers.names.items():
        if text == name:
            return value
    raise UnsupportedIR(f"kernel parameter {name} is no buffer of its function")


def _check_order(fn: func.FuncOp, entry: Function, buffers: Buffers, produced: set[SSAValue]) -> None:
    """Every kernel reads only buffers that arguments, earlier kernels or earlier calls produced."""
    events: list[tuple[int, list[SSAValue], list[SSAValue]]] = []
    ops = list(fn.body.block.ops)
    for i, op in enumerate(ops):
        if isinstance(op, func.CallOp):
            events.append((i, [], list(op.results)))
    for first, kernel in entry.kernels:
        values = [(param_value(buffers, p.name), p.written) for p in kernel.params]
        events.append((first, [v for v, w in values if not w], [v for v, w in values if w]))
    done = set(produced)
    for _, reads, writes in sorted(events, key=lambda e: e[0]):
        for value in reads:
            if value not in done:
                raise UnsupportedIR(f"{fn.sym_name.data}: a kernel reads {value.name_hint} before it is computed")
        done.update(writes)


# --------------------------------------------------------------------------------------------------------------
# Walking a plan with concrete addresses (a device run)
# --------------------------------------------------------------------------------------------------------------


def _address(ref: Ref, args: Sequence[int], result: int, workspace: int) -> int:
    if ref.kind == "arg":
        return args[ref.value]
    if ref.kind == "result":
        return result
    return workspace + ref.value


def flatten(
    plans: Mapping[str, FunctionPlan],
    name: str,
    args: Sequence[int],
    result: int,
    workspace: int,
    path: str = "",
    depth: int = 0,
) -> list[Launched | Copied]:
    """What calling entry point `name` with these device addresses does, in order: every kernel launch with
    its parameters' addresses, and the copies of results (what `launch.cu`'s `q35_<name>` does)."""
    if depth > MAX_CALL_DEPTH:
        raise RuntimeError(f"launch plan: calls nest deeper than {MAX_CALL_DEPTH} at {path}")
    plan = plans[name]
    here = f"{path}/{name}" if path else name
    out: list[Launched | Copied] = []
    for step in plan.steps:
        if isinstance(step, Launch):
            addresses = tuple(_address(r, args, result, workspace) for r in step.pointers)
            out.append(Launched(step.kernel, addresses, here))
            continue
        callee_args = [_address(r, args, result, workspace) for r in step.args]
        callee_result = _address(step.result, args, result, workspace)
        out += flatten(plans, step.callee, callee_args, callee_result, workspace + step.workspace, here, depth + 1)
    if plan.copy is not None:
        out.append(Copied(result, _address(plan.copy.source, args, result, workspace), plan.copy.bytes))
    return out


def grid_blocks(kernel: Kernel, multiprocessors: int, per_multiprocessor: int) -> int:
    """Blocks to launch (the launcher's `q35_grid`): one per tile (a linear kernel's work) or per `threads`
    elements (the others'), capped at what the device holds at once when the blocks walk several tiles (linear
    kernels) or meet at grid barriers (cooperative kernels)."""
    linear = kernel.kind.startswith("linear.")
    resident = linear or kernel.cooperative
    blocks = kernel.work if linear else -(-kernel.work // kernel.threads)
    most = multiprocessors * (per_multiprocessor if per_multiprocessor > 0 else 1)
    if resident and blocks > most:
        blocks = most
    return max(1, min(blocks, 2**31 - 1))
