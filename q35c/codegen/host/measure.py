"""`q35c run`: compile a model for the host, fill its weights, time prefill and decode, compare with the
prediction of the host's cost model for the same modules.

    result = run_model(RunRequest("tiny", "q3p5:g=32", prompt=4, gen=8, threads=2))
    print("\n".join(result.lines()))        # measured and predicted tok/s of each phase, and their ratio

The library is built into a temporary directory (`library.build_library`). Weights come from a GGUF file when
one is given or the model is one (`weights.gguf_params`: smollm2-135m runs its own weights); otherwise they are
seeded random values quantized in each weight's own scheme by the numpy reference encoder (`q35c.formats`):
N(0, 1/K) for [N, K] matrices, 1 + N(0, 0.1^2) for vector gains; one matrix is drawn per distinct (shape, scheme)
and copied into every weight of that shape, so each layer still reads its own memory. Token ids are uniform over
the vocabulary, positions follow the cached tokens, KV caches are N(0, 1). Before anything is allocated, the
weights' and caches' bytes are checked against the memory this machine has available.

Timing: the prefill step runs once to warm up, then `prefill_runs` times; the decode step (one token after the
mean context, the module the cost model costs) runs once to warm up, then once per generated token. Each figure
is the median. tok/s = batch x tokens per step / median seconds.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from q35c.codegen.host.abi import Entry
from q35c.codegen.host.library import TARGET, LibraryRequest, build_library
from q35c.codegen.host.runtime import DTYPES, HostLibrary
from q35c.codegen.host.weights import gguf_params
from q35c.codegen.timing import HEADER, PhaseTiming, one_thread_note, row
from q35c.dialects.q35 import EmbedOp, PackedType, WeightOp
from q35c.formats import QuantizedTensor
from q35c.frontend import load_model
from q35c.predict.predictor import Predictor, Scenario
from q35c.util.errors import Q35Error
from q35c.verify.model import model_params


@dataclass(frozen=True)
class RunRequest:
    model: str
    quant: str | None
    prompt: int
    gen: int
    threads: int
    batch: int = 1
    seed: int = 0
    prefill_runs: int = 3
    options: Mapping[str, Any] = field(default_factory=dict[str, Any])
    weights: str | None = None  # a GGUF file (`weights.gguf_params`); by default the model's own when it is one

    def library_request(self) -> LibraryRequest:
        return LibraryRequest(self.model, self.quant, Scenario(self.batch, self.prompt, self.gen), self.options)


@dataclass(frozen=True)
class RunResult:
    request: RunRequest
    model: str
    phases: tuple[PhaseTiming, ...]
    weight_bytes: int
    build_seconds: float
    weights: str | None = None  # the GGUF file the weights came from (None: seeded random values)

    def lines(self) -> list[str]:
        r = self.request
        source = "" if self.weights is None else f" from {Path(self.weights).name}"
        out = [
            f"{self.model}, {r.quant or 'default scheme'} on the host: {r.threads} thread(s), batch {r.batch}, "
            f"prompt {r.prompt}, generate {r.gen}; weights {self.weight_bytes / 1e6:,.1f} MB{source}, "
            f"compiled in {self.build_seconds:.1f} s",
            HEADER,
            *(row(p) for p in self.phases),
        ]
        return out + one_thread_note(r.threads)


def random_weights(module: Any, seed: int) -> dict[str, QuantizedTensor]:
    """Seeded random weights for every `q35.weight` of a graph module, one draw per shape and scheme
    (`q35c.verify.model.model_params`; see the module docstring)."""
    return model_params(module, np.random.default_rng(seed), per_shape=True)


def vocabulary(module: Any) -> int:
    """Rows of the first embedding table (the token ids' range), 1 without one."""
    for op in module.walk():
        if isinstance(op, EmbedOp) and isinstance(op.table.type, PackedType):
            return op.table.type.get_shape()[0]
    return 1


def step_arguments(
    entry: Entry, params: Mapping[str, QuantizedTensor], inputs: list[NDArray[Any]]
) -> list[NDArray[Any]]:
    """The step's arguments: weight storage by its tagged parameter and role, the others from `inputs` in order."""
    pending = list(inputs)
    args: list[NDArray[Any]] = []
    for t in entry.args:
        if t.param is None:
            args.append(pending.pop(0))
            continue
        qt = params[t.param]
        array = {"codes": qt.packed, "scale": qt.scale, "offset": qt.offset}[t.role or ""]
        assert array is not None, f"{t.param} has no {t.role}"
        args.append(array.reshape(t.shape))
    return args


def step_inputs(entry: Entry, vocab: int, context: int, rng: np.random.Generator) -> list[NDArray[Any]]:
    """Token ids (`ids`), positions (`pos`: context, context+1, ... per sequence) and N(0, 1) caches."""
    inputs: list[NDArray[Any]] = []
    for t in entry.args:
        if t.param is not None:
            continue
        dtype = DTYPES[t.element]
        if t.name == "ids":
            inputs.append(rng.integers(0, vocab, t.shape).astype(dtype))
        elif np.issubdtype(dtype, np.integer):
            rows = int(np.prod(t.shape))
            inputs.append((context + np.arange(rows)).reshape(t.shape).astype(dtype))
        else:
            inputs.append(rng.standard_normal(t.shape).astype(dtype))
    return inputs


def available_memory() -> int | None:
    """Bytes of memory available to new allocations (Linux's MemAvailable), None where unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def argument_bytes(entries: Mapping[str, Entry]) -> int:
    """Bytes of every distinct weight storage tensor and of the other arguments of the steps; a weight stored with
    interleaved rows twice (the runtime's interleaved copy beside the array it was filled in)."""
    seen: set[tuple[str | None, str | None, str]] = set()
    total = 0
    for entry in entries.values():
        if entry.kind != "step":
            continue
        for t in entry.args:
            key = (t.param, t.role, t.name if t.param is None else "")
            if key not in seen:
                seen.add(key)
                total += math.prod(t.shape) * DTYPES[t.element].itemsize * (1 if t.interleave is None else 2)
    return total


def graph_weight_bytes(module: Any) -> int:
    """Bytes of every distinct `q35.weight`'s storage in a graph module."""
    sizes: dict[str, int] = {}
    for op in module.walk():
        if isinstance(op, WeightOp) and isinstance(op.result.type, PackedType):
            sizes[op.param_name.data] = op.result.type.storage_bytes()
    return sum(sizes.values())


def check_fits(need: int, model: str) -> None:
    """Q35Error when `need` bytes exceed the memory this machine has available."""
    available = available_memory()
    if available is not None and need > available:
        raise Q35Error(
            f"{model} needs {need / 1e9:,.2f} GB of memory for its weights (and caches); this machine has "
            f"{available / 1e9:,.2f} GB available"
        )


def check_memory(entries: Mapping[str, Entry], model: str) -> int:
    """Q35Error when the steps' arguments (weights, caches, inputs) cannot fit in the memory available; their
    bytes otherwise."""
    need = argument_bytes(entries)
    check_fits(need, model)
    return need


def default_weights(model: str) -> str | None:
    """The GGUF file a model's weights come from by default: the model's own file when it is a GGUF."""
    from q35c.frontend.examples import resolve_model

    path = resolve_model(model)
    return path if path.endswith(".gguf") else None


def run_model(request: RunRequest, on_step: Callable[[str], None] | None = None) -> RunResult:
    """Build, fill, time and predict (see the module docstring); `on_step(what)` after each unit of work."""
    if request.threads < 1:
        raise Q35Error(f"--threads must be at least 1, got {request.threads}")
    notify = on_step or (lambda what: None)
    lib_request = request.library_request()
    keys = lib_request.phase_keys()
    first = next(iter(keys.values()))
    graph = load_model(request.model, quant=request.quant, seq=first[2], context=first[3], batch=first[4])
    check_fits(graph_weight_bytes(graph.module), request.model)  # before compiling anything
    weights = request.weights or default_weights(request.model)
    gguf = None if weights is None else gguf_params(graph.module, weights)  # a file that does not fit: before too
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="q35c-run-") as tmp:
        build_library(lib_request, Path(tmp) / "lib", "so", lambda phase: lambda i, s, m: notify(f"{phase}: {s}"))
        build_seconds = time.perf_counter() - start
        lib = HostLibrary.load(Path(tmp) / "lib")
        entries = lib.entries
        weight_bytes = check_memory(entries, request.model)
        lib.set_threads(request.threads)
        params = random_weights(graph.module, request.seed) if gguf is None else gguf
        vocab = vocabulary(graph.module)
        notify("weights filled")
        measure_generated_code(notify)
        predicted = _predictions(request)
        rng = np.random.default_rng(request.seed + 1)
        timings: list[PhaseTiming] = []
        for phase, key in keys.items():
            entry = entries[f"q35_{phase}_step"]
            args = step_arguments(entry, params, step_inputs(entry, vocab, key[3], rng))
            call, _ = lib.bind(entry.symbol, args)
            runs = request.gen if phase == "decode" else request.prefill_runs
            call()  # warm-up
            seconds: list[float] = []
            for _ in range(runs):
                t0 = time.perf_counter()
                call()
                seconds.append(time.perf_counter() - t0)
                notify(f"{phase} step")
            tokens = key[4] * key[2]
            timings.append(PhaseTiming(phase, tokens, tuple(seconds), predicted.get(phase)))
    return RunResult(request, request.model, tuple(timings), weight_bytes, build_seconds, weights)


def measure_generated_code(notify: Callable[[str], None]) -> None:
    """Measure this machine's generated-code figures (`q35c.codegen.host.calibrate`: microkernels compiled and
    timed, about half a minute on two cores) unless they are cached, so that the prediction beside a run is the
    host cost model with every figure it uses; cached, later runs reuse them."""
    from q35c.codegen.host import calibrate
    from q35c.targets import host_probe

    if host_probe.load_generated() is None:
        notify("measuring this machine's generated code once (cached for later runs)")
        calibrate.generated(on_step=lambda what: notify(f"generated code: {what}"))


def _predictions(request: RunRequest) -> dict[str, float]:
    """Predicted seconds per step of each phase: the host cost model on the same compiled modules."""
    from q35c.targets.registry import get_target

    options = tuple(sorted(request.options.items()))
    scenario = Scenario(request.batch, request.prompt, request.gen)
    result = Predictor(request.model, request.quant, scenario, options).predict(get_target(TARGET), with_ranges=False)
    found: dict[str, float] = {}
    if result.decode is not None:
        found["decode"] = result.decode.seconds
    if result.prefill is not None:
        found["prefill"] = result.prefill.seconds
    return found
