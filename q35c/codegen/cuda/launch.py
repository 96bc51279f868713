"""The host side of an emitted phase: `launch.cu` (one entry function per IR function, launching its kernels in
program order) and `q35c_kernels.h` (their declarations and the workspace each needs).

    cudaError_t q35_main(const int32_t* ids, ..., __half* result, void* workspace, cudaStream_t stream);

Every tensor a function computes (a generic's result, a call's result) lives in the workspace at a fixed offset;
a call's workspace follows its caller's own, so `Q35_WORKSPACE_<fn>` bytes cover a whole forward pass.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from xdsl.dialects import func
from xdsl.dialects.builtin import TensorType
from xdsl.ir import Operation, OpResult, SSAValue

from q35c.codegen.cuda.cexpr import UnsupportedIR, ctype, element_size
from q35c.codegen.cuda.kernel import Kernel, c_identifier
from q35c.codegen.cuda.phases import Buffers
from q35c.codegen.cuda.values import element_type, shape_of

ALIGN = 256


@dataclass(frozen=True)
class Function:
    """An IR function's entry point: its C name, arguments, result and the launches of its body."""

    fn: func.FuncOp
    kernels: tuple[tuple[int, Kernel], ...]  # (position of the first op in the body, kernel)
    linear: Kernel | None = None


def _root(value: SSAValue) -> SSAValue:
    """The buffer a view reads (expand/collapse keep the row-major layout)."""
    while isinstance(value, OpResult) and value.op.name in ("tensor.expand_shape", "tensor.collapse_shape"):
        value = value.op.operands[0]
    return value


def _bytes(value: SSAValue) -> int:
    count = 1
    for d in shape_of(value):
        count *= d
    return count * element_size(element_type(value))


def entry_name(fn: func.FuncOp) -> str:
    return f"q35_{c_identifier(fn.sym_name.data)}"


def _signature(fn: func.FuncOp) -> str:
    args = [f"const {ctype(element_type(a))}* {c_identifier(a.name_hint or f'arg{i}')}" for i, a in enumerate(fn.args)]
    out = fn.function_type.outputs.data[0]
    assert isinstance(out, TensorType)
    args.append(f"{ctype(out.element_type)}* result")
    return f"cudaError_t {entry_name(fn)}({', '.join(args)}, void* workspace, cudaStream_t stream)"


def _launch(kernel: Kernel, pointers: Sequence[str]) -> list[str]:
    args = ", ".join(f"(void*)&p{i}" for i in range(len(pointers)))
    lines = ["  {"]
    for i, (param, pointer) in enumerate(zip(kernel.params, pointers, strict=True)):
        qualifier = "" if param.written else "const "
        lines.append(f"    {qualifier}{param.ctype}* p{i} = ({qualifier}{param.ctype}*)({pointer});")
    lines.append(f"    void* args[] = {{{args}}};")
    lines.append(
        f"    const dim3 grid = q35_grid((const void*){kernel.name}, {kernel.work}LL, {kernel.smem_bytes}, "
        f"{kernel.threads}, {'true' if kernel.kind.startswith('linear.') or kernel.cooperative else 'false'});"
    )
    call = "cudaLaunchCooperativeKernel" if kernel.cooperative else "cudaLaunchKernel"
    lines.append(
        f"    Q35_CHECK({call}((const void*){kernel.name}, grid, dim3({kernel.threads}), args, "
        f"{kernel.smem_bytes}, stream));"
    )
    lines.append("  }")
    return lines


def launcher(functions: Sequence[Function], order: Mapping[str, Function]) -> tuple[str, str]:
    """(launch.cu, q35c_kernels.h) for the functions of one phase."""
    workspace: dict[str, int] = {}
    bodies: list[str] = []
    decls: list[str] = []
    for entry in reversed(list(functions)):
        fn = entry.fn
        name = fn.sym_name.data
        decls.append(_signature(fn) + ";")
        if entry.linear is not None:
            kernel = entry.linear
            workspace[name] = 0
            pointers = [c_identifier(a.name_hint or f"arg{i}") for i, a in enumerate(fn.args)] + ["result"]
            bodies.append(
                _signature(fn)
                + " {\n  (void)workspace;\n"
                + "\n".join(_launch(kernel, pointers))
                + "\n  return cudaSuccess;\n}\n"
            )
            continue
        buffers = Buffers.of(fn)
        pointer: dict[SSAValue, str] = {}
        for i, a in enumerate(fn.args):
            pointer[a] = c_identifier(a.name_hint or f"arg{i}")
        needed: set[SSAValue] = set()
        for _, kernel in entry.kernels:
            needed.update(_param_value(buffers, p.name) for p in kernel.params)
        for op in fn.walk():
            if isinstance(op, func.CallOp):
                needed.update(_root(v) for v in op.operands)
                needed.update(op.results)
            elif isinstance(op, func.ReturnOp):
                needed.update(_root(v) for v in op.operands)
        offset = 0
        for value in buffers.names:
            if value not in pointer and value in needed:
                pointer[value] = f"(char*)workspace + {offset}LL"
                offset += -(-_bytes(value) // ALIGN) * ALIGN
        callee_space = 0
        steps: list[tuple[int, list[str]]] = []
        ops = list(fn.body.block.ops)
        position = {op: i for i, op in enumerate(ops)}
        produced: set[SSAValue] = set(fn.args)
        for op in ops:
            if isinstance(op, func.CallOp):
                callee = op.callee.string_value()
                if callee not in order:
                    raise UnsupportedIR(f"{name}: call of an unknown function {callee}")
                target = order[callee].fn
                args = [f"(const {ctype(element_type(v))}*)({pointer[_root(v)]})" for v in op.operands]
                out = f"({ctype(element_type(op.results[0]))}*)({pointer[op.results[0]]})"
                call = f"{entry_name(target)}({', '.join(args)}, {out}, (char*)workspace + {offset}LL, stream)"
                steps.append((position[op], [f"  Q35_CHECK({call});"]))
                callee_space = max(callee_space, workspace.get(callee, 0))
        for first, kernel in entry.kernels:
            pointers = [pointer[_param_value(buffers, p.name)] for p in kernel.params]
            steps.append((first, _launch(kernel, pointers)))
        steps.sort(key=lambda s: s[0])
        _check_order(fn, entry, buffers, produced)
        ret = fn.body.block.last_op
        assert isinstance(ret, Operation)
        result = _root(ret.operands[0])
        lines = [_signature(fn) + " {"]
        for _, step in steps:
            lines += step
        lines.append(
            f"  Q35_CHECK(cudaMemcpyAsync(result, {pointer[result]}, {_bytes(result)}, "
            "cudaMemcpyDeviceToDevice, stream));"
        )
        lines += ["  return cudaSuccess;", "}", ""]
        bodies.append("\n".join(lines))
        workspace[name] = offset + callee_space
    header = [
        "// q35c_kernels.h: the kernels of this phase and the entry point of each IR function.",
        "#pragma once",
        "#include <cuda_runtime.h>",
        '#include "q35_cuda.h"',
        "",
    ]
    for entry in functions:
        for _, kernel in entry.kernels:
            header.append(_kernel_decl(kernel))
        if entry.linear is not None:
            header.append(_kernel_decl(entry.linear))
    header.append("")
    for entry in functions:
        header.append(
            f"#define Q35_WORKSPACE_{c_identifier(entry.fn.sym_name.data)} {workspace[entry.fn.sym_name.data]}LL"
        )
    header += ["", *decls, ""]
    source = [
        '#include "q35c_kernels.h"',
        "",
        "#define Q35_CHECK(call) \\",
        "  do { cudaError_t q35_err = (call); if (q35_err != cudaSuccess) return q35_err; } while (0)",
        "",
        "// Blocks to launch: one per unit of work, capped at what the device holds at once when the blocks walk",
        "// several units (linear kernels) or meet at grid barriers (cooperative kernels).",
        "static dim3 q35_grid(const void* kernel, long long work, int smem, int threads, bool resident) {",
        "  long long blocks = resident ? work : (work + threads - 1) / threads;",
        "  if (smem > 48 * 1024) cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);",
        "  int device = 0, sms = 1, per_sm = 1;",
        "  cudaGetDevice(&device);",
        "  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);",
        "  cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, smem);",
        "  const long long most = (long long)sms * (per_sm > 0 ? per_sm : 1);",
        "  if (resident && blocks > most) blocks = most;",
        "  if (blocks > 2147483647LL) blocks = 2147483647LL;",
        "  return dim3((unsigned int)(blocks > 0 ? blocks : 1));",
        "}",
        "",
        *bodies,
    ]
    return "\n".join(source), "\n".join(header)


def _kernel_decl(kernel: Kernel) -> str:
    params = ", ".join(p.declaration() for p in kernel.params)
    return (
        f"// {kernel.kind}: grid {kernel.grid_rule()}, block {kernel.threads}, "
        f"{kernel.smem_bytes} B dynamic shared memory\n"
        f'extern "C" __global__ void {kernel.name}({params});'
    )


def _param_value(buffers: Buffers, name: str) -> SSAValue:
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
        values = [(_param_value(buffers, p.name), p.written) for p in kernel.params]
        events.append((first, [v for v, w in values if not w], [v for v, w in values if w]))
    done = set(produced)
    for _, reads, writes in sorted(events, key=lambda e: e[0]):
        for value in reads:
            if value not in done:
                raise UnsupportedIR(f"{fn.sym_name.data}: a kernel reads {value.name_hint} before it is computed")
        done.update(writes)
