"""`q35c run MODEL --target h100-sxm|h200|a100-sxm|h100-pcie`: the emitted CUDA kernels on this machine's GPU.

    result = run_on_device(DeviceRequest("tiny", "h200", None))
    print("\\n".join(result.lines()))      # per kernel: measured vs predicted time; per phase: tok/s; numerics

1. Compile each phase (decode step, prefill) with the target's pipeline and emit its kernels (`emit`, as
   `q35c build --emit cuda`); nvcc compiles a phase's kernels as one translation unit to a cubin for the
   device's own architecture (compute capability from the driver), with a one-thread `q35c_hold` kernel beside
   them (below).
2. Load it through the CUDA driver API (`libcuda`, ctypes on libcuda.so.1); walk the launch plan
   (`plan.flatten`: what `launch.cu`'s `q35_main` does, as data) and launch each kernel with the launcher's grid
   (`plan.grid_blocks`, from the driver's occupancy calculator), block and dynamic shared memory sizes;
   cooperative kernels through cuLaunchCooperativeKernel.
3. Data as the host run: weights are seeded random values quantized in each weight's scheme
   (`q35c.verify.model.model_params`, one draw per shape and scheme, each weight in its own device memory),
   token ids, positions and KV caches as `q35c verify` makes them (`model_inputs`).
4. Numerics: the first run's logits against the numpy reference (`q35c.verify.reference.evaluate`) within
   `q35c verify`'s tolerance (rounding depth x 2^-10 x max |logit|) and the same argmax (near ties excepted),
   where the graph is small enough for the reference (`MAX_VERIFY_ELEMENTS`; else the check is skipped, said so).
5. Timing: each timed run of a step first launches `q35c_hold`, which spins on the GPU's global timer until
   the whole step is queued (six times as long as the host took to queue it without events, plus 2 ms; a run
   queued late is repeated with twice the hold, twice at most), so the gaps of Python's launch calls are not
   measured (where the step is held: one of more commands than the driver queues ahead cannot be); an event
   is recorded after every launch, so a kernel's time is the GPU time between the events around it. Per
   launch the median over the runs; per kernel the mean of its launches' medians; per phase the median of the
   step times (first to last event). tok/s = tokens per step / that median.
6. Prediction: the GPU cost model on the same compiled modules (`Target.kernel_cost` per kernel, matched by
   function and order; `Target.estimate` per step).

No GPU (no libcuda.so.1, cuInit fails, no device): Q35Error, exit 2. A driver call that fails later is a
`CudaError` naming the call (an internal error, exit 70). `q35c --debug run ...` (or `Q35C_CUDA_DEBUG=1`)
prints each step, the device, every kernel's registers, shared memory, resident blocks and grid, and syncs
after every launch of the first run so that a faulting kernel is named.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from xdsl.dialects import func
from xdsl.dialects.builtin import DictionaryAttr, ModuleOp, StringAttr, TensorType

from q35c.codegen.cuda.device_result import (
    DeviceRequest,
    DeviceRun,
    KernelTiming,
    PhaseRun,
    compare,
)
from q35c.codegen.cuda.emit import ARCHS, PhaseSources, module_kernels, write_phases
from q35c.codegen.cuda.libcuda import Cuda, CudaError
from q35c.codegen.cuda.plan import Copied, Launched, flatten, grid_blocks
from q35c.codegen.cuda.toolkit import find_toolkit
from q35c.formats import QuantizedTensor
from q35c.ir.attrs import PARAM_ATTR, STORAGE_ATTR
from q35c.util.errors import Q35Error
from q35c.util.limits import MAX_VERIFY_ELEMENTS
from q35c.util.progress import Progress
from q35c.verify.model import count_elements, model_inputs, model_params
from q35c.verify.reference import evaluate, numpy_dtype, rounding_depth

DEBUG_ENV = "Q35C_CUDA_DEBUG"
MEMORY_SHARE = 0.9  # of the device's free memory a run may take
MAX_HOLD_NS = 2_000_000_000
HOLD_SOURCE = r"""
// q35c run: holds the stream while the host queues a timed step (not part of the emitted kernels).
extern "C" __global__ void q35c_hold(unsigned long long ns) {
  unsigned long long start, now;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(start));
  do {
    __nanosleep(1000);
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(now));
  } while (now - start < ns);
}
"""


# --------------------------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Argument:
    """An argument of a phase's entry function: name, shape, dtype, and the weight storage it is, if any."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    param: str | None
    role: str | None


def entry_arguments(fn: func.FuncOp) -> list[Argument]:
    attrs = fn.arg_attrs.data if fn.arg_attrs is not None else (None,) * len(fn.args)
    found: list[Argument] = []
    for i, (arg, attr) in enumerate(zip(fn.args, attrs, strict=True)):
        typ = arg.type
        assert isinstance(typ, TensorType)
        param = role = None
        if isinstance(attr, DictionaryAttr):
            p, r = attr.data.get(PARAM_ATTR), attr.data.get(STORAGE_ATTR)
            param = p.data if isinstance(p, StringAttr) else None
            role = r.data if isinstance(r, StringAttr) else None
        name = arg.name_hint or f"arg{i}"
        found.append(Argument(name, tuple(typ.get_shape()), numpy_dtype(typ.element_type), param, role))
    return found


def draw_weights(graph: ModuleOp, seed: int) -> dict[str, QuantizedTensor]:
    """Seeded random weights for every `q35.weight`, drawn as the host run draws them (one draw per shape and
    scheme: `q35c.verify.model.model_params`)."""
    return model_params(graph, np.random.default_rng(seed), per_shape=True)


def argument_arrays(
    arguments: Sequence[Argument], params: Mapping[str, QuantizedTensor], inputs: Sequence[NDArray[Any]]
) -> list[NDArray[Any]]:
    """The entry's arguments: weight storage by parameter and role, the others from `inputs` in order."""
    pending = list(inputs)
    arrays: list[NDArray[Any]] = []
    for a in arguments:
        if a.param is None:
            if not pending:
                raise RuntimeError(f"device run: no input left for the entry's argument {a.name}")
            array = pending.pop(0)
        else:
            qt = params[a.param]
            found = {"codes": qt.packed, "scale": qt.scale, "offset": qt.offset}.get(a.role or "")
            if found is None:
                raise RuntimeError(f"device run: weight {a.param} has no {a.role}")
            array = found
        same = array.dtype == a.dtype or (array.dtype.kind in "iu" and a.dtype.kind in "iu")  # packed words
        if math.prod(array.shape) != math.prod(a.shape) or array.dtype.itemsize != a.dtype.itemsize or not same:
            raise RuntimeError(
                f"device run: argument {a.name} is {a.shape} {a.dtype}, the data {array.shape} {array.dtype}"
            )
        arrays.append(np.ascontiguousarray(array).view(a.dtype).reshape(a.shape))
    if pending:
        raise RuntimeError(f"device run: {len(pending)} input(s) without an argument of the entry")
    return arrays


# --------------------------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------------------------


@dataclass
class _Loaded:
    """A phase's kernels on the device: function handles and grids by kernel name."""

    functions: dict[str, Any]
    grids: dict[str, int]
    hold: Any


def _load(cuda: Cuda, sources: PhaseSources, folder: Path, say: Callable[[str], None]) -> tuple[_Loaded, float]:
    toolkit = find_toolkit()
    files = [folder / k.filename for k in sources.kernels]
    start = time.perf_counter()
    image = toolkit.cubin(files, cuda.info.arch, HOLD_SOURCE)
    seconds = time.perf_counter() - start
    say(f"nvcc -arch={cuda.info.arch}: {len(files)} kernels, cubin {len(image):,} B in {seconds:.1f} s")
    module = cuda.load(image)
    functions: dict[str, Any] = {}
    grids: dict[str, int] = {}
    for kernel in sources.kernels:
        handle = cuda.function(module, kernel.name)
        per_sm = cuda.prepare(handle, kernel.name, kernel.threads, kernel.smem_bytes)
        if kernel.cooperative and per_sm < 1:
            raise RuntimeError(f"{kernel.name}: no block of a cooperative kernel fits on an SM")
        functions[kernel.name] = handle
        grids[kernel.name] = grid_blocks(kernel, cuda.info.multiprocessors, per_sm)
        coop = ", cooperative" if kernel.cooperative else ""
        say(f"{kernel.name}: grid {grids[kernel.name]}, block {kernel.threads}{coop}")
    return _Loaded(functions, grids, cuda.function(module, "q35c_hold")), seconds


def _execute(cuda: Cuda, loaded: _Loaded, step: Launched | Copied, sync: bool = False) -> None:
    if isinstance(step, Copied):
        cuda.copy(step.destination, step.source, step.bytes)
        what = "a result copy"
    else:
        k = step.kernel
        grid = loaded.grids[k.name]
        cuda.launch(loaded.functions[k.name], k.name, grid, k.threads, k.smem_bytes, step.addresses, k.cooperative)
        what = f"{k.name} in {step.path}"
    if sync:
        cuda.synchronize(what)


def _predictions(request: DeviceRequest, phase: str, sources: PhaseSources) -> tuple[float | None, dict[str, float]]:
    """Predicted seconds of the step and of one launch of each kernel (by name), from the GPU cost model on the
    modules just compiled (the workload cache holds them)."""
    from q35c.predict.predictor import Predictor, Scenario
    from q35c.targets.registry import get_target

    target = get_target(request.target)
    options = tuple(sorted(request.options.items()))
    predictor = Predictor(request.model, request.quant, Scenario(request.batch, request.prompt, request.gen), options)
    workload = predictor.workload(phase, target)
    if workload is None:
        return None, {}
    per_kernel: dict[str, float] = {}
    functions = dict.fromkeys(k.function for k in sources.kernels)
    for function in functions:
        emitted = [k for k in sources.kernels if k.function == function]
        costed = [w for w in workload.kernels if w.function == function]
        if len(emitted) != len(costed):
            continue
        for kernel, work in zip(emitted, costed, strict=True):
            if kernel.kind == work.name or (kernel.kind.startswith("linear.") and work.name == "linear"):
                per_kernel[kernel.name] = target.kernel_cost(work).seconds
    return target.estimate(workload).seconds, per_kernel


def _run_phase(
    cuda: Cuda,
    request: DeviceRequest,
    phase: str,
    key: tuple[str, str | None, int, int, int],
    module: ModuleOp,
    sources: PhaseSources,
    folder: Path,
    params: Mapping[str, QuantizedTensor],
    say: Callable[[str], None],
    debug: bool,
) -> PhaseRun:
    from q35c.frontend import load_model

    _, quant, seq, context, batch = key
    graph = load_model(request.model, quant=quant, seq=seq, context=context, batch=batch).module
    main = next(op for op in module.ops if isinstance(op, func.FuncOp) and op.sym_name.data == "main")
    arguments = entry_arguments(main)
    inputs = model_inputs(graph, np.random.default_rng(request.seed + 1))
    arrays = argument_arrays(arguments, params, inputs)
    out_type = main.function_type.outputs.data[0]
    assert isinstance(out_type, TensorType)
    out_shape, out_dtype = tuple(out_type.get_shape()), numpy_dtype(out_type.element_type)
    out_bytes = math.prod(out_shape) * out_dtype.itemsize
    workspace_bytes = max(sources.plans["main"].workspace, 1)
    need = sum(a.nbytes for a in arrays) + workspace_bytes + out_bytes
    free, _ = cuda.memory()
    if need > MEMORY_SHARE * free:
        raise Q35Error(
            f"{request.model} ({phase}) needs {need / 1e9:,.2f} GB of device memory; the device has "
            f"{free / 1e9:,.2f} GB free"
        )
    loaded, nvcc_seconds = _load(cuda, sources, folder, say)
    allocations: list[int] = []
    try:
        addresses: list[int] = []
        for array in arrays:
            pointer = cuda.alloc(max(array.nbytes, 1))
            allocations.append(pointer)
            cuda.upload(pointer, array)
            addresses.append(pointer)
        workspace = cuda.alloc(workspace_bytes)
        result = cuda.alloc(out_bytes)
        allocations += [workspace, result]
        cuda.fill(workspace, 0, workspace_bytes)
        say(f"{phase}: {need / 1e6:,.1f} MB on the device ({len(arrays)} arguments, workspace {workspace_bytes:,} B)")
        steps = flatten(sources.plans, "main", addresses, result, workspace)
        for step in steps:  # the first run: numerics (and a warm-up)
            _execute(cuda, loaded, step, sync=debug)
        hint = "" if debug else "; `q35c --debug run ...` synchronises after each launch, naming the kernel"
        cuda.synchronize(f"the first run of the {phase} step{hint}")
        y = cuda.download(result, out_shape, out_dtype)
        numerics, skipped = None, ""
        elements = count_elements(graph)
        if not request.check:
            skipped = "numerics not checked (the request's check is off)"
        elif elements > MAX_VERIFY_ELEMENTS:
            skipped = (
                f"numerics not checked: {elements:,} weight and input elements, more than the numpy reference's "
                f"limit of {MAX_VERIFY_ELEMENTS:,}"
            )
        else:
            say(f"{phase}: numpy reference")
            y_ref = evaluate(graph, inputs, params, "main")[0]
            numerics = compare(y, y_ref, rounding_depth(graph, "main"))
        start = time.perf_counter()
        for step in steps:  # warm, and how long the host takes to queue a step
            _execute(cuda, loaded, step)
        queue_s = time.perf_counter() - start
        cuda.synchronize(f"the second run of the {phase} step")
        runs = (request.timed_steps or request.gen) if phase == "decode" else request.prefill_runs
        step_seconds, per_launch, held = _timed(cuda, loaded, steps, runs, queue_s)
        say(f"{phase}: host queued a step in {queue_s * 1e3:.2f} ms; {held} of {runs} timed runs fully held")
    except BaseException:
        _quietly(cuda.free, allocations)  # the first error is the one to see
        raise
    for pointer in allocations:
        cuda.free(pointer)
    total, predicted = _predictions(request, phase, sources)
    return PhaseRun(
        phase=phase,
        tokens=batch * seq,
        launches=sum(1 for s in steps if isinstance(s, Launched)),
        seconds=tuple(step_seconds),
        predicted_seconds=total,
        kernels=_kernel_timings(steps, per_launch, predicted),
        numerics=numerics,
        skipped_check=skipped,
        held=held,
        nvcc_seconds=nvcc_seconds,
    )


RETRIES = 2  # timed runs repeated with a longer hold when the host queued them too late


def _timed(
    cuda: Cuda, loaded: _Loaded, steps: Sequence[Launched | Copied], runs: int, queue_s: float
) -> tuple[list[float], list[list[float]], int]:
    """`runs` timed runs of the step: (step seconds, seconds of each step's launch per run, runs queued within
    the hold). A run the host did not finish queueing within the hold (the GPU may have waited for a launch) is
    repeated with twice the hold, RETRIES times at most; after that runs count held or not. (A step of more
    commands than the driver queues ahead, about a thousand launches and events, cannot be held: the host
    launches while the GPU runs it.)"""
    events = [cuda.event() for _ in range(len(steps) + 1)]
    hold_ns = min(MAX_HOLD_NS, int(queue_s * 6e9) + 2_000_000)
    totals: list[float] = []
    per_step: list[list[float]] = [[] for _ in steps]
    held = 0
    retries = RETRIES
    try:
        while len(totals) < runs:
            start = time.perf_counter()
            cuda.launch(loaded.hold, "q35c_hold", 1, 1, 0, [hold_ns], False)
            cuda.record(events[0])
            for i, step in enumerate(steps):
                _execute(cuda, loaded, step)
                cuda.record(events[i + 1])
            in_time = (time.perf_counter() - start) * 1e9 < hold_ns
            cuda.synchronize("a timed run")
            if not in_time and retries:
                retries -= 1
                hold_ns = min(MAX_HOLD_NS, 2 * hold_ns)
                continue
            held += in_time
            for i in range(len(steps)):
                per_step[i].append(cuda.elapsed_ms(events[i], events[i + 1]) / 1e3)
            totals.append(cuda.elapsed_ms(events[0], events[-1]) / 1e3)
    except BaseException:
        _quietly(cuda.destroy, events)
        raise
    for event in events:
        cuda.destroy(event)
    return totals, per_step, held


def _quietly(release: Callable[[Any], None], handles: Sequence[Any]) -> None:
    """Release device resources after an error without hiding it (a faulted context fails every later call)."""
    for handle in handles:
        with contextlib.suppress(CudaError):
            release(handle)


def _kernel_timings(
    steps: Sequence[Launched | Copied], per_step: Sequence[Sequence[float]], predicted: Mapping[str, float]
) -> tuple[KernelTiming, ...]:
    medians: dict[str, list[float]] = {}
    first: dict[str, Launched] = {}
    for step, seconds in zip(steps, per_step, strict=True):
        if isinstance(step, Launched):
            medians.setdefault(step.kernel.name, []).append(statistics.median(seconds))
            first.setdefault(step.kernel.name, step)
    return tuple(
        KernelTiming(
            name,
            first[name].kernel.kind,
            first[name].kernel.function,
            len(values),
            sum(values) / len(values),
            predicted.get(name),
        )
        for name, values in medians.items()
    )


def nvidia_targets() -> list[str]:
    """The NVIDIA targets of the specs (read from the files: loading the host's spec would probe the machine)."""
    import tomllib

    from q35c.targets.spec import SPEC_DIR, spec_names

    def vendor(name: str) -> object:
        return tomllib.loads((SPEC_DIR / f"{name}.toml").read_text(encoding="utf-8")).get("vendor")

    return [n for n in spec_names() if vendor(n) == "NVIDIA"]


def run_on_device(
    request: DeviceRequest, notify: Callable[[str], None] | None = None, debug: Callable[[str], None] | None = None
) -> DeviceRun:
    """Compile, load, run, check and time each phase of `request` on GPU 0 (see the module docstring)."""
    from q35c.driver.compile import compile_phases
    from q35c.frontend import load_model
    from q35c.predict.predictor import Predictor, Scenario
    from q35c.targets.gpu_occupancy import sm_limits
    from q35c.targets.registry import get_target

    step = notify or (lambda what: None)
    say = debug or (lambda line: None)
    target = get_target(request.target)
    if target.spec.family not in ARCHS or target.spec.vendor != "NVIDIA":
        raise Q35Error(
            f"q35c run runs on this machine: --target host, or an NVIDIA GPU through CUDA: --target "
            f"{'|'.join(nvidia_targets())}; {request.target} is {target.spec.vendor} {target.spec.family}"
        )
    cuda = Cuda.open(0, say)
    find_toolkit()  # a setup error before compiling anything
    scenario = Scenario(request.batch, request.prompt, request.gen)
    keys = {p: k for p, k in Predictor(request.model, request.quant, scenario, ()).phase_keys().items()}
    keys = {p: k for p, k in keys.items() if p in request.phases}
    if not keys:
        raise Q35Error(f"nothing to run: the scenario has no {' or '.join(request.phases)} phase")
    first = next(iter(keys.values()))
    graph = load_model(request.model, quant=request.quant, seq=first[2], context=first[3], batch=first[4])
    start = time.perf_counter()
    step("compiling")
    compiled = compile_phases(keys, request.target, dict(request.options))
    limits = sm_limits(target.spec)
    emitted = {phase: module_kernels(result.module, limits) for phase, result in compiled.items()}
    build_seconds = time.perf_counter() - start
    step("drawing weights")
    params = draw_weights(graph.module, request.seed)
    weight_bytes = sum(
        qt.packed.nbytes + (0 if qt.scale is None else qt.scale.nbytes) + (0 if qt.offset is None else qt.offset.nbytes)
        for qt in params.values()
    )
    runs: list[PhaseRun] = []
    with tempfile.TemporaryDirectory(prefix="q35c-cuda-run-") as tmp:
        folder = Path(tmp) / "cuda"
        write_phases(emitted, folder)
        for phase in keys:
            step(f"{phase}: nvcc, run, time")
            runs.append(
                _run_phase(
                    cuda,
                    request,
                    phase,
                    keys[phase],
                    compiled[phase].module,
                    emitted[phase],
                    folder / phase,
                    params,
                    say,
                    debug is not None,
                )
            )
    cuda.close()
    return DeviceRun(request, cuda.info, graph.name, weight_bytes, build_seconds, tuple(runs))


def run_command(args: argparse.Namespace, options: Mapping[str, Any]) -> int:
    """`q35c run MODEL --target <NVIDIA GPU>` (`options`: the parsed `--option`s): run, print the result, and
    return the exit status: 0, or 1 when the numerics do not match the reference."""
    debug = bool(getattr(args, "debug", False)) or os.environ.get(DEBUG_ENV) == "1"
    host_only = [f"--{name.replace('_', '-')}" for name in ("prompt_text", "weights") if getattr(args, name, None)]
    if host_only:
        raise Q35Error(f"{' and '.join(host_only)}: with --target host only (a GPU run uses random weights)")
    request = DeviceRequest(
        args.model,
        args.target,
        args.quant,
        prompt=args.prompt,
        gen=args.gen,
        batch=args.batch,
        seed=args.seed,
        options=options,
    )

    def say(line: str) -> None:
        print(f"q35c run: {line}", file=sys.stderr, flush=True)

    progress = Progress.for_stream(sys.stderr, total=2 + len(request.phases))
    with progress:

        def step(what: str) -> None:
            progress.step(args.model, what)
            if debug:
                say(what)

        result = run_on_device(request, step, say if debug else None)
    print("\n".join(result.lines()))
    return 0 if result.ok else 1
