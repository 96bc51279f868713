"""The host cost model against the clock: `q35c run` on this machine, predicted vs measured tok/s.

    python benchmarks/host_fidelity.py [--threads 1] [--gen 8] [--prompt 16] [--quick]
                                       [--json benchmarks/results/host_fidelity.json]

For each model and scheme, `q35c.codegen.host.measure.run_model` compiles the decode step and the prefill for the
host (the modules `q35c build --target host` costs), fills seeded random weights, times them (medians) and asks
the host cost model for the same modules. The host's constants come from its probe of this machine and from microkernels
q35c compiles itself (`q35c.codegen.host.calibrate`: tiny's linear kernels and decoder function, timed on their
own; measured first when none are cached; `q35c targets host` shows them), never from these runs: this
benchmark reports their error, it does not fit anything. tiny's own kernels are those microkernels, so tiny's
rows check the composition (step = kernels + calls); the 7B-shaped rows are the independent check.

Models: `tiny`, and a llama-2-7b-shaped model (the published config.json's dimensions: hidden 4096, 32 heads,
FFN 11008, vocabulary 32000) cut to 2 decoder layers so that one run stays within minutes on two cores; its
kernels are the full-size ones. `--quick` runs tiny only.

Printed per run: phase, measured and predicted tok/s, measured/predicted; then the median and the largest
|log ratio| per model. On a shared machine, run it with `--threads 1`: other processes inflate wall time.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import MappingProxyType
from typing import Any

from q35c.codegen.host.calibrate import generated
from q35c.codegen.host.measure import RunRequest, run_model
from q35c.predict.predictor import Predictor, Scenario
from q35c.targets import host_probe
from q35c.targets.host import HostTarget
from q35c.targets.registry import get_target

ROOT = Path(__file__).resolve().parents[1]
TINY_SCHEMES = ("q3p5:g=32", "int4:g=32", "q4_0", "q8_0", "int8", "fp16")
SEVEN_B_SCHEMES = ("q3p5", "int4", "q4_0", "int8")
SEVEN_B_LAYERS = 2


def seven_b_shaped(directory: Path) -> Path:
    """llama-2-7b's published config.json with `SEVEN_B_LAYERS` decoder layers, written into `directory`."""
    config = json.loads((ROOT / "examples" / "hf" / "llama-2-7b.json").read_text())
    config["num_hidden_layers"] = SEVEN_B_LAYERS
    folder = directory / f"llama-2-7b-{SEVEN_B_LAYERS}-layers"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.json"
    path.write_text(json.dumps(config, indent=2) + "\n")
    return path


def engine_only(model: str, scheme: str, args: argparse.Namespace) -> dict[str, float]:
    """Predicted seconds per step of each phase by the shared engine alone (the host without its measured
    generated-code figures and call overheads: the model before they were added), for comparison."""
    host = get_target("host")
    bare = HostTarget(dataclasses.replace(host.spec, details=MappingProxyType({})), host.efficiency)
    result = Predictor(model, scheme, Scenario(1, args.prompt, args.gen)).predict(bare, with_ranges=False)
    found = {}
    if result.decode is not None:
        found["decode"] = result.decode.seconds
    if result.prefill is not None:
        found["prefill"] = result.prefill.seconds
    return found


def run_one(model: str, label: str, scheme: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    request = RunRequest(model, scheme, prompt=args.prompt, gen=args.gen, threads=args.threads, prefill_runs=3)
    start = time.perf_counter()
    result = run_model(request)
    engine = engine_only(model, scheme, args)
    rows = []
    for phase in result.phases:
        engine_tok_s = phase.tokens / engine[phase.phase] if engine.get(phase.phase) else None
        rows.append(
            {
                "model": label,
                "scheme": scheme,
                "phase": phase.phase,
                "tokens_per_step": phase.tokens,
                "measured_tok_s": phase.tok_s,
                "predicted_tok_s": phase.predicted_tok_s,
                "ratio": phase.ratio,
                "engine_only_tok_s": engine_tok_s,
                "engine_only_ratio": None if not engine_tok_s else phase.tok_s / engine_tok_s,
                "steps": len(phase.seconds),
                "build_s": result.build_seconds,
                "total_s": time.perf_counter() - start,
            }
        )
    return rows


def summary(rows: list[dict[str, Any]]) -> list[str]:
    out = []
    for model in dict.fromkeys(r["model"] for r in rows):
        for key, what in (("ratio", "host model"), ("engine_only_ratio", "engine only (before)")):
            logs = [abs(math.log(r[key])) for r in rows if r["model"] == model and r.get(key)]
            if not logs:
                continue
            median, worst = statistics.median(logs), max(logs)
            out.append(
                f"{model}, {what}: median |error| x{math.exp(median):.2f}, largest x{math.exp(worst):.2f} "
                f"(measured/predicted between {min(r[key] for r in rows if r['model'] == model and r.get(key)):.3f}"
                f" and {max(r[key] for r in rows if r['model'] == model and r.get(key)):.3f})"
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--gen", type=int, default=8, help="decode steps timed (8)")
    parser.add_argument("--prompt", type=int, default=16, help="prompt tokens (16)")
    parser.add_argument("--quick", action="store_true", help="tiny only")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "host_fidelity.json")
    args = parser.parse_args()
    figures = generated(on_step=lambda what: print(f"calibrating generated code: {what}", file=sys.stderr))
    print(
        f"generated code ({figures.measured_at}): linear call {figures.linear_call_s * 1e6:.2f} us, other kernel "
        f"call {figures.elementwise_call_s * 1e6:.2f} us; ps/weight "
        + ", ".join(f"{k} {v * 1e12:.0f}" for k, v in figures.matvec_s_per_weight.items())
    )
    rows: list[dict[str, Any]] = []
    header = (
        f"{'model':<22} {'scheme':<10} {'phase':<8} {'measured':>10} {'predicted':>10} {'meas/pred':>9} "
        f"{'engine only':>11} {'meas/engine':>11}"
    )
    print(header)
    with tempfile.TemporaryDirectory(prefix="q35c-host-fidelity-") as tmp:
        models = [("tiny", "tiny", TINY_SCHEMES)]
        if not args.quick:
            seven = seven_b_shaped(Path(tmp))
            models.append((str(seven), f"llama-2-7b ({SEVEN_B_LAYERS} layers)", SEVEN_B_SCHEMES))
        for model, label, schemes in models:
            for scheme in schemes:
                for row in run_one(model, label, scheme, args):
                    rows.append(row)
                    predicted = "-" if row["predicted_tok_s"] is None else f"{row['predicted_tok_s']:,.1f}"
                    ratio = "-" if row["ratio"] is None else f"{row['ratio']:.3f}"
                    engine = "-" if row["engine_only_tok_s"] is None else f"{row['engine_only_tok_s']:,.1f}"
                    engine_ratio = "-" if row["engine_only_ratio"] is None else f"{row['engine_only_ratio']:.3f}"
                    print(
                        f"{label:<22} {scheme:<10} {row['phase']:<8} {row['measured_tok_s']:>10,.1f} "
                        f"{predicted:>10} {ratio:>9} {engine:>11} {engine_ratio:>11}",
                        flush=True,
                    )
    for line in summary(rows):
        print(line)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    probe = host_probe.load_cached()
    document = {
        "threads": args.threads,
        "gen": args.gen,
        "prompt": args.prompt,
        "probe": None if probe is None else dataclasses.asdict(probe),
        "generated_code": dataclasses.asdict(figures),
        "summary": summary(rows),
        "runs": rows,
    }
    args.json.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
