"""Compile time per pass and per target pipeline, for tiny, Llama 2 70B and Llama 3.1 405B.

Each target's pipeline runs on a freshly loaded model (the import is not counted); the table gives the seconds of
each stage (best of RUNS) and the whole pipeline, one row per model and target family representative. Identical
decoder layers are one function, so a stage's time must not grow with the number of layers beyond the per-layer
calls and weight arguments of main; the script checks that every pipeline finishes Llama 3.1 405B within
LIMIT_S.

    python benchmarks/passes.py              # the default targets
    python benchmarks/passes.py h100-sxm     # one target
"""

from __future__ import annotations

import sys
import time

from q35c.driver.pipeline import make_context, run_stages
from q35c.frontend import load_model
from q35c.targets.registry import get_target

MODELS = ("tiny", "llama-2-70b", "llama-3.1-405b")
TARGETS = ("host", "h100-sxm", "mi300x", "m2-max", "groq-lpu")
RUNS = 3
LIMIT_S = 3.0


def stage_times(model: str, target: str) -> dict[str, float]:
    """Best-of-RUNS seconds per stage of `target`'s pipeline on `model`."""
    stages = get_target(target).pipeline()
    best: dict[str, float] = {}
    for _ in range(RUNS):
        module = load_model(model).module
        ctx = make_context()
        for stage in stages:
            start = time.perf_counter()
            run_stages(module, (stage,), ctx)
            elapsed = time.perf_counter() - start
            best[stage.name] = min(best.get(stage.name, elapsed), elapsed)
    return best


def main(argv: list[str]) -> int:
    targets = tuple(argv) or TARGETS
    names = [s.name for s in get_target(targets[0]).pipeline()]
    header = f"{'model':<16} {'target':<10} " + " ".join(f"{n:>11}" for n in names) + f" {'total':>8}"
    print(header)
    print("-" * len(header))
    failures: list[str] = []
    for model in MODELS:
        for target in targets:
            times = stage_times(model, target)
            total = sum(times.values())
            cells = " ".join(f"{times[n]:>10.3f}s" for n in names)
            print(f"{model:<16} {target:<10} {cells} {total:>7.3f}s")
            if model == "llama-3.1-405b" and total > LIMIT_S:
                failures.append(f"{target}: {total:.2f} s")
    if failures:
        print(f"over {LIMIT_S} s for llama-3.1-405b: {', '.join(failures)}")
        return 1
    print(f"every pipeline compiles llama-3.1-405b in under {LIMIT_S} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
