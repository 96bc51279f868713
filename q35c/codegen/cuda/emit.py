"""`q35c build MODEL --target T --emit cuda -o DIR`: CUDA kernels from the final IR of each phase.

    DIR/q35_cuda.h                  helpers every kernel includes (cp.async staging, reductions, barriers)
    DIR/decode/<kernel>.cu          one file per kernel of the decode step's final IR
    DIR/decode/launch.cu            entry points: launch the kernels of each IR function in program order
    DIR/decode/q35c_kernels.h       their declarations, launch geometry and workspace sizes
    DIR/prefill/...                 the same for the prefill

The phases are the modules the cost model costs (`q35c.driver.compile.compile_phases`), so the kernels are
those it counts. The directory is written whole or not at all (`AtomicDirectory`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, StringAttr

from q35c.analysis.kernels import analyse, group
from q35c.analysis.workload import is_kernel_function
from q35c.codegen.cuda.cexpr import UnsupportedIR
from q35c.codegen.cuda.header import HEADER
from q35c.codegen.cuda.kernel import Kernel
from q35c.codegen.cuda.launch import Function, launcher
from q35c.codegen.cuda.linear import linear_kernel
from q35c.codegen.cuda.phases import Buffers, group_kernel
from q35c.codegen.cuda.plan import FunctionPlan, plan_functions
from q35c.ir.attrs import SCHEME_ATTR
from q35c.targets.gpu_occupancy import SmLimits, sm_limits
from q35c.util.errors import Q35Error
from q35c.util.output import AtomicDirectory

ARCHS = {"gpu"}


@dataclass(frozen=True)
class PhaseSources:
    """The emitted files of one phase: kernels, launcher and header; `plans` is the launcher as data
    (`q35c.codegen.cuda.plan`), by IR function."""

    phase: str
    kernels: tuple[Kernel, ...]
    launch: str
    header: str
    plans: Mapping[str, FunctionPlan] = field(default_factory=dict[str, FunctionPlan])


def module_kernels(module: ModuleOp, limits: SmLimits | None = None) -> PhaseSources:
    """The kernels and launcher of one final module (a phase)."""
    functions = [op for op in module.ops if isinstance(op, func.FuncOp)]
    entries: list[Function] = []
    kernels: list[Kernel] = []
    try:
        for fn in functions:
            if is_kernel_function(fn):
                scheme = fn.attributes.get(SCHEME_ATTR)
                if not isinstance(scheme, StringAttr):
                    raise UnsupportedIR(f"{fn.sym_name.data}: a linear kernel without q35.scheme")
                kernel = linear_kernel(fn, scheme.data, limits)
                entries.append(Function(fn, (), kernel))
                kernels.append(kernel)
                continue
            buffers = Buffers.of(fn)
            info = analyse(fn, set())
            ops = list(fn.body.block.ops)
            own: list[tuple[int, Kernel]] = []
            for index, (label, members) in enumerate(group(info)):
                if not members:
                    continue
                member_ops = [node.op for node in members]
                first = min(ops.index(_top(op, fn)) for op in member_ops)
                kernel = group_kernel(fn, buffers, label, index, member_ops)
                own.append((first, kernel))
                kernels.append(kernel)
            entries.append(Function(fn, tuple(own)))
        order = {entry.fn.sym_name.data: entry for entry in entries}
        plans = plan_functions(entries, order)
        launch, header = launcher(entries, order, plans)
    except UnsupportedIR as err:
        raise RuntimeError(f"CUDA emitter: {err}") from err
    return PhaseSources("", tuple(kernels), launch, header, plans)


def _top(op: Any, fn: func.FuncOp) -> Any:
    while op.parent_op() is not fn:
        op = op.parent_op()
    return op


def cuda_phases(
    target: str,
    keys: Mapping[str, tuple[str, str | None, int, int, int]],
    options: Mapping[str, Any] | None = None,
) -> dict[str, PhaseSources]:
    """Compile each phase (by name, its compile key) for `target` and emit its kernels, writing nothing."""
    from q35c.driver.compile import compile_phases
    from q35c.targets.registry import get_target

    chosen = get_target(target)
    if chosen.spec.family not in ARCHS or chosen.spec.vendor != "NVIDIA":
        raise Q35Error(f"--emit cuda needs an NVIDIA GPU target; {target} is {chosen.spec.vendor} {chosen.spec.family}")
    limits = sm_limits(chosen.spec)
    emitted: dict[str, PhaseSources] = {}
    for phase, result in compile_phases(keys, target, options).items():
        sources = module_kernels(result.module, limits)
        emitted[phase] = PhaseSources(phase, sources.kernels, sources.launch, sources.header, sources.plans)
    return emitted


def write_phases(emitted: Mapping[str, PhaseSources], outdir: Path) -> None:
    """Write the emitted phases as `outdir` (whole or not at all)."""
    with AtomicDirectory(outdir) as out:
        (out.tmp / "q35_cuda.h").write_text(HEADER, encoding="utf-8")
        for phase, sources in emitted.items():
            folder = out.tmp / phase
            folder.mkdir()
            for kernel in sources.kernels:
                (folder / kernel.filename).write_text(kernel.source, encoding="utf-8")
            (folder / "launch.cu").write_text(sources.launch, encoding="utf-8")
            (folder / "q35c_kernels.h").write_text(sources.header, encoding="utf-8")
            (folder / "q35_cuda.h").write_text(HEADER, encoding="utf-8")


def emit_cuda(
    target: str,
    keys: Mapping[str, tuple[str, str | None, int, int, int]],
    options: Mapping[str, Any],
    outdir: Path,
) -> dict[str, PhaseSources]:
    """Compile each phase for `target` and write its kernels under `outdir` (atomically)."""
    emitted = cuda_phases(target, keys, options)
    write_phases(emitted, outdir)
    return emitted
