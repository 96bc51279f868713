"""Figures of the code q35c generates for this machine, measured on microkernels q35c compiles itself.

    figures = generated(refresh=True)     # measure (about 2-3 s per scheme class) and cache
    figures.matvec_s_per_weight["q4_1"]   # seconds per weight of the generated q4_1 matrix-vector kernel

The microkernel model (`MICRO`): llama-2-7b's published config.json (examples/hf) cut to one decoder layer of
hidden size 512, FFN 1536, 8 heads and a 2,048-token vocabulary. Its linears (512x512, 1536x512, 512x1536,
2048x512: 0.26M to 1M weights) are large enough for the kernels the lowering picks for a 7B model's shapes
(tiny's 64-wide ones take other, slower paths for some schemes) and small enough that their weights stay in
the last-level cache: the figures are the generated code's own rates, the memory system being the probe's
bandwidth, costed separately. For each scheme class of `host_probe.SCHEME_CLASSES` (each at its default group
size) the model is compiled for the host as `q35c run` compiles it (`library.compile_phase_modules`,
`emit_library`: the decode step and a 16-token prefill) and every linear kernel entry is called on its own,
on one thread, with the seeded random weights of `measure.random_weights` (real codes and scales: no NaN or
subnormal scale). Per scheme class:

    decode linears:   t = a + w * matvec_s_per_weight       (least squares over the kernels' weights w)
    prefill linears:  t = b + m * matmul_s_per_mac          (over their MACs m)

The other kernels (norms, rope, attention, silu, mul, add) are timed together: the `decoder` function of each
phase, timed whole, less the linear kernels it calls (timed on their own), against its kernels' ops per call
(ALU ops and MACs, `kernel_ops`): one token (decode) and 16 (prefill) give two sizes of the same
code, and over the points of every scheme's library (least squares; `kernels` is its kernels per call)

    decoder (exclusive) = kernels x elementwise_call + ops x elementwise_s_per_op

The fixed times of a call are tens of microseconds below these kernels' times, so they come from `tiny`
compiled the same way in q8_0 (`CALLS_MODEL`, `CALLS_SCHEME`: 2,048 to 16,384 weights, a kernel call there is
mostly its fixed time): `linear_call_s` is the intercept of its decode linears' fit, `elementwise_call_s` the
median over its phases of (decoder - ops x elementwise_s_per_op) / kernels. Each time is the
median of repeated calls in thread CPU time (`time.thread_time`, which other processes on a shared machine do
not inflate), after one warm-up call.

The figures are cached in `host_probe.generated_path()` (`host-codegen.json`, beside the probe's cache) and
become the host spec's `details.generated_*` values. They describe the code this version of q35c generates:
the cache holds a digest of the code generator's sources (`host_probe.generator_digest`), and figures of
another generator are not used. `q35c run` and `benchmarks/host_fidelity.py` measure them when none are cached
for this machine and generator; `python -m q35c.codegen.host.calibrate` measures again (about 15-30 s on two
cores).
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp

from q35c.analysis.workload import KernelWork
from q35c.codegen.host.abi import Entry, Tensor
from q35c.codegen.host.library import LibraryRequest, compile_phase_modules, emit_library, manifest_for
from q35c.codegen.host.measure import random_weights, step_arguments, step_inputs, vocabulary
from q35c.codegen.host.runtime import HostLibrary
from q35c.frontend import load_model
from q35c.frontend.examples import EXAMPLES_DIR
from q35c.predict.predictor import Predictor, Scenario
from q35c.targets import host_probe
from q35c.targets.host import scheme_class
from q35c.targets.registry import get_target

MICRO = {
    "hidden_size": 512,
    "intermediate_size": 1536,
    "num_attention_heads": 8,
    "num_key_value_heads": 8,
    "num_hidden_layers": 1,
    "vocab_size": 2048,
}
CALLS_MODEL = "tiny"
CALLS_SCHEME = "q8_0"
SCENARIO = Scenario(1, 16, 8)
MIN_SECONDS = 0.02
DECODER = "decoder"


def micro_model(directory: Path) -> str:
    """The microkernel model's config.json (`MICRO` over llama-2-7b's), written into `directory`."""
    config = json.loads((EXAMPLES_DIR / "hf" / "llama-2-7b.json").read_text())
    config.update(MICRO)
    folder = directory / "micro"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return str(folder / "config.json")


def median_seconds(call: Callable[[], None], min_seconds: float = MIN_SECONDS) -> float:
    """The median thread CPU seconds of `call`, after one warm-up, over at least 5 calls and `min_seconds`."""
    call()
    seconds: list[float] = []
    start = time.perf_counter()
    while len(seconds) < 5 or (time.perf_counter() - start < min_seconds and len(seconds) < 10_000):
        t0 = time.thread_time()
        call()
        seconds.append(time.thread_time() - t0)
    return statistics.median(seconds)


def fit_line(points: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """(intercept, slope) of the least-squares line through (x, y) points; slope 0 with fewer than 2 distinct x.
    Both are clamped at 0: a cost is not negative."""
    xs = np.array([p[0] for p in points], dtype=np.float64)
    ys = np.array([p[1] for p in points], dtype=np.float64)
    if len(set(xs.tolist())) < 2:
        return max(0.0, float(np.median(ys))), 0.0
    slope, intercept = np.polyfit(xs, ys, 1)
    return max(0.0, float(intercept)), max(0.0, float(slope))


def _plain(entry: Entry) -> Entry:
    args = tuple(Tensor(t.name, t.shape, t.element) for t in entry.args)
    return Entry(entry.symbol, entry.phase, entry.kind, entry.source, args, entry.results)


def _calls_in(module: ModuleOp, name: str) -> dict[str, int]:
    """The functions one call of `name` calls (straight-line calls), with their counts."""
    counts: dict[str, int] = {}
    for op in module.ops:
        if isinstance(op, func.FuncOp) and op.sym_name.data == name:
            for inner in op.walk():
                if isinstance(inner, func.CallOp):
                    callee = inner.callee.string_value()
                    counts[callee] = counts.get(callee, 0) + 1
    return counts


class _Library:
    """tiny compiled for one scheme, its weights filled, ready to time any entry."""

    def __init__(self, model: str, quant: str, directory: Path) -> None:
        self.model = model
        request = LibraryRequest(model, quant, SCENARIO)
        self.modules, self.keys = compile_phase_modules(request)
        emit_library(self.modules, manifest_for(request, self.keys), directory, "so")
        self.lib = HostLibrary.load(directory)
        self.lib.set_threads(1)
        first = next(iter(self.keys.values()))
        graph = load_model(model, quant=quant, seq=first[2], context=first[3], batch=first[4])
        self.params = random_weights(graph.module, 0)
        self.vocab = vocabulary(graph.module)
        self.rng = np.random.default_rng(1)
        self.quant = quant

    def arguments(self, entry: Entry) -> list[NDArray[Any]]:
        """An entry's arguments: weight storage of the step's weights by shape and element type, the rest as
        `measure.step_inputs` makes them."""
        context = self.keys[entry.phase][3]
        step = self.lib.entries[f"q35_{entry.phase}_step"]
        step_args = step_arguments(step, self.params, step_inputs(step, self.vocab, context, self.rng))
        if entry.kind == "step":
            return step_args
        weights = {(t.shape, t.element): a for t, a in zip(step.args, step_args, strict=True) if t.param}
        made = step_inputs(_plain(entry), self.vocab, context, self.rng)
        return [weights.get((t.shape, t.element), a) for t, a in zip(entry.args, made, strict=True)]

    def seconds(self, entry: Entry) -> float:
        call, _ = self.lib.bind(entry.symbol, self.arguments(entry))
        return median_seconds(call)


def _linear_points(library: _Library, scheme: str) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """(weights, seconds) of the decode linears and (MACs, seconds) of the prefill linears of `scheme`."""
    host = get_target("host")
    decode: list[tuple[float, float]] = []
    prefill: list[tuple[float, float]] = []
    for phase, points in (("decode", decode), ("prefill", prefill)):
        workload = Predictor(library.model, library.quant, SCENARIO).workload(phase, host)
        assert workload is not None
        kernels = {k.function: k for k in workload.kernels if k.name == "linear"}
        for entry in library.lib.entries.values():
            kernel = kernels.get(entry.source)
            if entry.phase != phase or kernel is None or scheme_class(entry.source) != scheme:
                continue
            weights = sum(kernel.weight_elements.values())
            macs = sum(kernel.macs.values())
            points.append((weights if phase == "decode" else macs, library.seconds(entry)))
    return decode, prefill


def kernel_ops(kernel: KernelWork) -> float:
    """The ops of a kernel call as the element-wise rate counts them (`HostTarget.generated_compute`): ALU ops
    and MACs."""
    return kernel.alu_ops + sum(kernel.macs.values())


def _exclusive(library: _Library, phase: str, function: str) -> float | None:
    """Seconds of one call of `function` in `phase`, less the functions it calls (each timed on its own)."""
    entries = {e.source: e for e in library.lib.entries.values() if e.phase == phase}
    if function not in entries:
        return None
    seconds = library.seconds(entries[function])
    for callee, count in _calls_in(library.modules[phase], function).items():
        if callee in entries:
            seconds -= count * library.seconds(entries[callee])
    return seconds


def _decoder_points(library: _Library) -> list[tuple[float, float, float]]:
    """(ops, seconds, kernels) per call of the `decoder` function of each phase, exclusive of the functions it
    calls."""
    host = get_target("host")
    points: list[tuple[float, float, float]] = []
    for phase in library.keys:
        workload = Predictor(library.model, library.quant, SCENARIO).workload(phase, host)
        own = [] if workload is None else [k for k in workload.kernels if k.function == DECODER]
        calls = max((k.calls for k in own), default=0)
        seconds = _exclusive(library, phase, DECODER) if calls else None
        if seconds is None:
            continue
        ops = sum(kernel_ops(k) * k.calls for k in own) / calls
        points.append((ops, seconds, sum(k.calls for k in own) / calls))
    return points


def measure_generated(
    schemes: Sequence[str] = host_probe.SCHEME_CLASSES, on_step: Callable[[str], None] | None = None
) -> host_probe.GeneratedCode:
    """Compile and time the microkernels of every scheme class, then tiny's (see the module docstring)."""
    notify = on_step or (lambda what: None)
    matvec: dict[str, float] = {}
    matmul: dict[str, float] = {}
    decoder: list[tuple[float, float, float]] = []
    with tempfile.TemporaryDirectory(prefix="q35c-calibrate-") as tmp:
        model = micro_model(Path(tmp))
        for scheme in schemes:
            library = _Library(model, scheme, Path(tmp) / scheme)
            decode, prefill = _linear_points(library, scheme)
            if decode:
                matvec[scheme] = fit_line(decode)[1]
            if prefill:
                matmul[scheme] = fit_line(prefill)[1]
            decoder += _decoder_points(library)
            notify(f"{scheme}: {len(decode)} decode and {len(prefill)} prefill linear kernels timed")
        per_op = fit_line([(ops, seconds) for ops, seconds, _ in decoder])[1] if decoder else 0.0
        small = _Library(CALLS_MODEL, CALLS_SCHEME, Path(tmp) / "calls")
        decode, _ = _linear_points(small, CALLS_SCHEME)
        linear_call = fit_line(decode)[0] if decode else 0.0
        calls = [
            max(0.0, seconds - ops * per_op) / kernels for ops, seconds, kernels in _decoder_points(small) if kernels
        ]
        notify(f"{CALLS_MODEL} {CALLS_SCHEME}: call times from {len(decode)} linear kernels and {len(calls)} decoders")
    return host_probe.GeneratedCode(
        measured_at=datetime.now(UTC).isoformat(timespec="seconds"),
        machine=host_probe.current_machine(),
        generator=host_probe.generator_digest(),
        threads=1,
        microkernels=(
            f"rates: the linear kernels and decoder function of a 512-wide llama layer in {', '.join(schemes)}; "
            f"call times: {CALLS_MODEL}'s in {CALLS_SCHEME}"
        ),
        linear_call_s=linear_call,
        elementwise_call_s=statistics.median(calls) if calls else 0.0,
        elementwise_s_per_op=per_op,
        matvec_s_per_weight=matvec,
        matmul_s_per_mac=matmul,
    )


def generated(refresh: bool = False, on_step: Callable[[str], None] | None = None) -> host_probe.GeneratedCode:
    """The cached figures, measuring (and caching) first when there are none or `refresh` is set."""
    cached = None if refresh else host_probe.load_generated()
    if cached is not None:
        return cached
    result = measure_generated(on_step=on_step)
    host_probe.save_generated(result)
    return result


def main() -> None:
    """`python -m q35c.codegen.host.calibrate`: measure again and print the figures."""
    found = generated(refresh=True, on_step=print)
    print(
        f"linear call {found.linear_call_s * 1e6:.2f} us, element-wise call {found.elementwise_call_s * 1e6:.2f} us, "
        f"element-wise {found.elementwise_s_per_op * 1e12:.0f} ps/op; cached in {host_probe.generated_path()}"
    )
    for scheme, seconds in found.matvec_s_per_weight.items():
        matmul = found.matmul_s_per_mac.get(scheme, 0.0)
        print(f"{scheme:<6} matvec {seconds * 1e12:8.1f} ps/weight   matmul {matmul * 1e12:8.1f} ps/MAC")


if __name__ == "__main__":
    main()
