"""Where the host's time goes, kernel by kernel: each kernel entry of the compiled library timed on its own,
beside the host cost model's time for the same kernel.

    python benchmarks/host_kernels_breakdown.py [MODEL ...] [--quant SCHEME] [--phase decode|prefill|both]
                                                [--threads 1] [--min-seconds 0.05] [--json FILE]

Default models: `tiny`, `smollm2-135m` (its own GGUF's schemes) and the llama-2-7b-shaped model of
`host_fidelity.py` (2 decoder layers; `7b` names it), in its default scheme or `--quant`.

For each phase, the library `q35c run` times is compiled (`library.compile_phase_modules`, `emit_library`) and
every function it exports -- the step, the `decoder` function, each linear kernel -- is called on its own: weight
storage from the model's weights (its GGUF, else `measure.random_weights`: real codes and scales, no NaN scale),
the rest as `measure.step_inputs` makes them; one warm-up call, then repeated for at least `--min-seconds`; the
figure is the median call. With one thread the clock is the calling thread's CPU time (`time.thread_time`: other
processes on a shared machine do not inflate it), else wall time. Arguments larger than half the last-level
cache rotate through copies, so each call reads its weights from memory, as in a step.

Element-wise kernels (norms, rope, attention, silu, mul, add, embed) are inlined into the functions that hold them
(`main`, `decoder`), so a function is shown exclusive of the functions it calls (its time less theirs, by the
call counts of the module), beside the host cost model's time for the kernels in it (`HostTarget.kernel_cost`
of the `KernelWork`s the cost model derives from the same phase's module, matched by function name). Printed:
calls per step, measured and predicted microseconds per call, their ratio, and the predicted binding resource
(or, for `main` and `decoder`, the predicted microseconds of each kernel in them); then per step the linears and
the rest, measured vs predicted, and the step timed whole. The host's generated-code figures are measured
first when none are cached (`q35c.codegen.host.calibrate`).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from xdsl.dialects.builtin import ModuleOp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from host_fidelity import seven_b_shaped

from q35c.analysis.workload import _call_order, _call_sites, functions_of
from q35c.codegen.host.abi import Entry
from q35c.codegen.host.calibrate import generated
from q35c.codegen.host.library import (
    LibraryRequest,
    compile_phase_modules,
    emit_library,
    manifest_for,
)
from q35c.codegen.host.measure import (
    default_weights,
    random_weights,
    step_arguments,
    step_inputs,
    vocabulary,
)
from q35c.codegen.host.runtime import DTYPES, HostLibrary
from q35c.codegen.host.weights import gguf_params
from q35c.frontend import load_model
from q35c.predict.predictor import Predictor, Scenario
from q35c.targets import host_probe
from q35c.targets.registry import get_target

LLC_BYTES = 32 * 2**20  # rotation is sized from the OS's figure when it reports one (`last_level_cache`)
MAX_COPIES = 8


def last_level_cache() -> int:
    values = host_probe.runtime_values(host_probe.measurement())
    for key in ("os:l3_bytes", "os:l2_bytes"):
        found = values.get(key)
        if found is not None:
            return int(found[0])
    return LLC_BYTES


def clock(threads: int) -> Callable[[], float]:
    return time.thread_time if threads == 1 else time.perf_counter


def time_calls(calls: list[Callable[[], None]], threads: int, min_seconds: float) -> tuple[float, int]:
    """Median seconds per call, rotating through `calls`, and how many calls were timed."""
    now = clock(threads)
    for call in calls:
        call()  # warm-up
    seconds: list[float] = []
    start = time.perf_counter()
    i = 0
    while len(seconds) < 5 or (time.perf_counter() - start < min_seconds and len(seconds) < 100_000):
        call = calls[i % len(calls)]
        t0 = now()
        call()
        seconds.append(now() - t0)
        i += 1
    return statistics.median(seconds), len(seconds)


def kernel_arguments(
    entry: Entry,
    weights: dict[tuple[tuple[int, ...], str], NDArray[Any]],
    vocab: int,
    context: int,
    rng: np.random.Generator,
) -> list[NDArray[Any]]:
    """Arguments of a kernel entry: weight storage of the same shape and element type as a weight of the step
    (`weights`: real codes and scales, so that no NaN or subnormal scale slows the arithmetic), the rest as
    `step_inputs` makes them (ids in the vocabulary, positions from the context, N(0, 1) floats)."""
    plain = Entry(
        entry.symbol,
        entry.phase,
        entry.kind,
        entry.source,
        tuple(type(t)(t.name, t.shape, t.element) for t in entry.args),
        entry.results,
    )
    made = step_inputs(plain, vocab, context, rng)
    return [weights.get((t.shape, t.element), a) for t, a in zip(entry.args, made, strict=True)]


def weight_storage(step: Entry, arrays: list[NDArray[Any]]) -> dict[tuple[tuple[int, ...], str], NDArray[Any]]:
    """The step's weight storage arrays by (shape, element type)."""
    return {(t.shape, t.element): a for t, a in zip(step.args, arrays, strict=True) if t.param is not None}


def argument_bytes(entry: Entry) -> int:
    return sum(math.prod(t.shape) * DTYPES[t.element].itemsize for t in (*entry.args, *entry.results))


def callees(module: ModuleOp) -> dict[str, dict[str, int]]:
    """For each function of a phase module, the functions one call of it calls, with their counts."""
    out: dict[str, dict[str, int]] = {}
    for name, fn in functions_of(module).items():
        block = fn.body.blocks.first
        counts: dict[str, int] = {}
        for call, trips in _call_sites(block) if block is not None else ():
            callee = call.callee.string_value()
            counts[callee] = counts.get(callee, 0) + trips
        out[name] = counts
    return out


def measure_phase(
    lib: HostLibrary,
    module: ModuleOp,
    phase: str,
    context: int,
    params: dict[str, Any],
    vocab: int,
    predictor: Predictor,
    args: argparse.Namespace,
    llc: int,
) -> dict[str, Any]:
    """Every function of the phase timed whole (inclusive), then less the functions it calls (exclusive), beside
    the predicted seconds of the kernels the cost model puts in it."""
    target = get_target("host")
    workload = predictor.workload(phase, target)
    assert workload is not None, f"no {phase} workload"
    rng = np.random.default_rng(1)
    entries = {e.source: e for e in lib.entries.values() if e.phase == phase}
    inclusive: dict[str, float] = {}
    copies_of: dict[str, int] = {}
    step = next(e for e in entries.values() if e.kind == "step")
    step_args = step_arguments(step, params, step_inputs(step, vocab, context, rng))
    weights = weight_storage(step, step_args)
    for source, entry in entries.items():
        if entry.kind == "step":
            arguments = [step_args]
        else:
            size = argument_bytes(entry)
            copies = 1 if size * 2 <= llc else min(MAX_COPIES, math.ceil(2 * llc / size))
            arguments = [kernel_arguments(entry, weights, vocab, context, rng) for _ in range(copies)]
        calls = [lib.bind(entry.symbol, a)[0] for a in arguments]
        inclusive[source], _ = time_calls(calls, args.threads, args.min_seconds)
        copies_of[source] = len(calls)
    calls_of = callees(module)
    functions = functions_of(module)
    _, per_step = _call_order(functions, "main")
    rows = []
    for source, entry in entries.items():
        own = [k for k in workload.kernels if k.function == source]
        exclusive = inclusive[source] - sum(n * inclusive.get(c, 0.0) for c, n in calls_of.get(source, {}).items())
        per_call = {}
        for k in own:
            cost = target.kernel_cost(k)
            per_call[k.name] = per_call.get(k.name, 0.0) + cost.seconds * k.calls
        calls = per_step.get(source, 0)
        if not calls:
            continue  # not reached from the step
        own_calls = {k.name: k.calls for k in own}
        binding = "-"
        if len(own) == 1:
            limits = target.kernel_cost(own[0]).limits
            binding = max(limits.items(), key=lambda kv: kv[1])[0] if limits else "-"
        rows.append(
            {
                "function": source,
                "kind": entry.kind,
                "calls": calls,
                "inclusive_s": inclusive[source],
                "measured_s": exclusive,
                "predicted_s": sum(per_call.values()) / calls,
                "predicted_by_kernel_s": {k: v / calls for k, v in per_call.items()},
                "kernels_per_call": {k: n / calls for k, n in own_calls.items()},
                "binding": binding,
                "copies": copies_of[source],
            }
        )
    step = next(r for r in rows if r["kind"] == "step")
    return {
        "phase": phase,
        "step_measured_s": step["inclusive_s"],
        "step_predicted_s": float(target.estimate(workload).seconds),
        "functions": rows,
    }


def report(label: str, result: dict[str, Any]) -> list[str]:
    out = [f"\n== {label}, {result['phase']} (one thread: CPU time) =="]
    out.append(
        f"{'function (exclusive of its callees)':<44} {'calls':>5} {'meas us':>10} {'pred us':>10} {'m/p':>7}  "
        "predicted binding / kernels"
    )
    rows = sorted(result["functions"], key=lambda r: -r["calls"] * r["measured_s"])
    for r in rows:
        ratio = r["measured_s"] / r["predicted_s"] if r["predicted_s"] else math.inf
        what = r["binding"]
        if len(r["predicted_by_kernel_s"]) > 1 or r["kind"] in ("step", "function"):
            what = ", ".join(
                f"{k} {v * 1e6:.2f}" for k, v in sorted(r["predicted_by_kernel_s"].items(), key=lambda kv: -kv[1])
            )
        out.append(
            f"{r['function'][:44]:<44} {r['calls']:>5} {r['measured_s'] * 1e6:>10.2f} {r['predicted_s'] * 1e6:>10.2f} "
            f"{ratio:>7.2f}  {what}"
        )
    groups: dict[str, list[float]] = {}
    for r in rows:
        group = "linear (matvec/matmul)" if r["kind"] == "linear" else "element-wise, norms, attention, embed"
        acc = groups.setdefault(group, [0.0, 0.0])
        acc[0] += r["calls"] * r["measured_s"]
        acc[1] += r["calls"] * r["predicted_s"]
    total_m = sum(v[0] for v in groups.values())
    out.append(f"{'per step':<44} {'':>5} {'meas ms':>10} {'pred ms':>10} {'m/p':>7} {'share':>7}")
    for group, (m, p) in groups.items():
        out.append(
            f"{group:<44} {'':>5} {m * 1e3:>10.3f} {p * 1e3:>10.3f} {m / p if p else math.inf:>7.2f} "
            f"{m / total_m if total_m else 0:>7.1%}"
        )
    step_m, step_p = result["step_measured_s"], result["step_predicted_s"]
    out.append(f"{'step (whole)':<44} {'':>5} {step_m * 1e3:>10.3f} {step_p * 1e3:>10.3f} {step_m / step_p:>7.2f}")
    return out


def run(model: str, label: str, quant: str | None, args: argparse.Namespace, llc: int) -> list[dict[str, Any]]:
    scenario = Scenario(1, args.prompt, args.gen)
    request = LibraryRequest(model, quant, scenario)
    keys = request.phase_keys()
    first = next(iter(keys.values()))
    graph = load_model(model, quant=quant, seq=first[2], context=first[3], batch=first[4])
    weights = default_weights(model)
    params = random_weights(graph.module, 0) if weights is None else gguf_params(graph.module, weights)
    vocab = vocabulary(graph.module)
    predictor = Predictor(model, quant, scenario)
    results = []
    with tempfile.TemporaryDirectory(prefix="q35c-kernels-") as tmp:
        modules, _ = compile_phase_modules(request)
        emit_library(modules, manifest_for(request, keys), Path(tmp) / "lib", "so")
        lib = HostLibrary.load(Path(tmp) / "lib")
        lib.set_threads(args.threads)
        for phase, key in keys.items():
            if args.phase not in ("both", phase):
                continue
            result = measure_phase(lib, modules[phase], phase, key[3], params, vocab, predictor, args, llc)
            result |= {"model": label, "quant": quant}
            print("\n".join(report(f"{label} {quant or '(own scheme)'}", result)), flush=True)
            results.append(result)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", default=["tiny", "smollm2-135m", "7b"])
    parser.add_argument("--quant", default=None, help="scheme (default: the model's own)")
    parser.add_argument("--phase", choices=("decode", "prefill", "both"), default="decode")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--prompt", type=int, default=16)
    parser.add_argument("--gen", type=int, default=8)
    parser.add_argument("--min-seconds", type=float, default=0.05)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    generated(on_step=lambda what: print(f"calibrating generated code: {what}", file=sys.stderr))
    llc = last_level_cache()
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="q35c-7b-") as tmp:
        for model in args.models:
            if model == "7b":
                path, label = str(seven_b_shaped(Path(tmp))), "llama-2-7b (2 layers)"
            else:
                path, label = model, model
            results += run(path, label, args.quant, args, llc)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"threads": args.threads, "results": results}, indent=2) + "\n")
        print(f"wrote {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
