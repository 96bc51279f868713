"""The host side of an emitted phase: `launch.cu` (one entry function per IR function, launching its kernels in
program order) and `q35c_kernels.h` (their declarations and the workspace each needs).

    cudaError_t q35_main(const int32_t* ids, ..., __half* result, void* workspace, cudaStream_t stream);

Every tensor a function computes (a generic's result, a call's result) lives in the workspace at a fixed offset;
a call's workspace follows its caller's own, so `Q35_WORKSPACE_<fn>` bytes cover a whole forward pass.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from xdsl.dialects import func
from xdsl.dialects.builtin import TensorType

from q35c.codegen.cuda.cexpr import ctype
from q35c.codegen.cuda.kernel import Kernel, c_identifier
from q35c.codegen.cuda.plan import Call, Function, FunctionPlan, Launch, entry_name, plan_functions
from q35c.codegen.cuda.values import element_type

__all__ = ["Function", "entry_name", "launcher"]


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
    linear = kernel.kind.startswith("linear.")
    blocks = kernel.work if linear else -(-kernel.work // kernel.threads)
    lines.append(
        f"    const dim3 grid = q35_grid((const void*){kernel.name}, {blocks}LL, {kernel.smem_bytes}, "
        f"{kernel.threads}, {'true' if linear or kernel.cooperative else 'false'});"
    )
    call = "cudaLaunchCooperativeKernel" if kernel.cooperative else "cudaLaunchKernel"
    lines.append(
        f"    Q35_CHECK({call}((const void*){kernel.name}, grid, dim3({kernel.threads}), args, "
        f"{kernel.smem_bytes}, stream));"
    )
    lines.append("  }")
    return lines


def _body(fn: func.FuncOp, plan: FunctionPlan, order: Mapping[str, Function]) -> str:
    if plan.copy is None:  # a linear kernel's entry: its kernel writes the result
        (step,) = plan.steps
        assert isinstance(step, Launch)
        return (
            _signature(fn)
            + " {\n  (void)workspace;\n"
            + "\n".join(_launch(step.kernel, [r.text for r in step.pointers]))
            + "\n  return cudaSuccess;\n}\n"
        )
    lines = [_signature(fn) + " {"]
    for step in plan.steps:
        if isinstance(step, Launch):
            lines += _launch(step.kernel, [r.text for r in step.pointers])
            continue
        lines.append(f"  Q35_CHECK({_call(step, order)});")
    lines.append(
        f"  Q35_CHECK(cudaMemcpyAsync(result, {plan.copy.source.text}, {plan.copy.bytes}, "
        "cudaMemcpyDeviceToDevice, stream));"
    )
    lines += ["  return cudaSuccess;", "}", ""]
    return "\n".join(lines)


def _call(step: Call, order: Mapping[str, Function]) -> str:
    args = [f"(const {t}*)({r.text})" for t, r in zip(step.arg_types, step.args, strict=True)]
    out = f"({step.result_type}*)({step.result.text})"
    target = entry_name(order[step.callee].fn)
    return f"{target}({', '.join(args)}, {out}, (char*)workspace + {step.workspace}LL, stream)"


def launcher(
    functions: Sequence[Function], order: Mapping[str, Function], plans: Mapping[str, FunctionPlan] | None = None
) -> tuple[str, str]:
    """(launch.cu, q35c_kernels.h) for the functions of one phase (`plans`: theirs, if already made)."""
    plans = plans if plans is not None else plan_functions(functions, order)
    bodies: list[str] = []
    decls: list[str] = []
    for entry in reversed(list(functions)):
        fn = entry.fn
        decls.append(_signature(fn) + ";")
        bodies.append(_body(fn, plans[fn.sym_name.data], order))
    workspace = {name: plan.workspace for name, plan in plans.items()}
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
        "// Blocks to launch: one per tile (linear kernels) or per `threads` elements (the others), capped at what",
        "// the device holds at once when the blocks walk several tiles or meet at grid barriers (cooperative).",
        "static dim3 q35_grid(const void* kernel, long long blocks, int smem, int threads, bool resident) {",
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
