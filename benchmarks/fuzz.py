"""Fuzz the command line in process: thousands of generated inputs, each of which must end with exit status 0 or
2, no traceback, in under 10 s.

The inputs are tests/fuzz/fuzz_inputs.py's strategies (model-language files from the grammar and mutated,
config.json, GGUF files written with the `gguf` package, quantization specs, command-line values, mutated IR),
split evenly over the categories. Prints, per category, the inputs tried, how they ended, the tracebacks (exit 70
or an exception past the command line) and the hangs (over 10 s), then one example of each distinct failure.
Exit status 1 if there was any.

    python benchmarks/fuzz.py --n 10000            # about 10 minutes on 2 cores
    python benchmarks/fuzz.py --n 700 --seed 1 --save failures/

A case stuck where the alarm cannot interrupt it (inside a C call) for `--kill-after` seconds ends the run,
reporting it. Memory is capped (`--memory-gb`), so an allocation without bound is a MemoryError, a traceback.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "fuzz"))

from fuzz_inputs import CATEGORIES, HANG_SECONDS, Case, Outcome, run_case
from hypothesis import HealthCheck, Phase, given, seed, settings


@dataclass
class Tally:
    tried: int = 0
    codes: Counter[int | None] = field(default_factory=Counter)
    tracebacks: int = 0
    hangs: int = 0
    seconds: list[float] = field(default_factory=list)
    failures: dict[str, Case] = field(default_factory=dict)  # distinct failure summary -> first case

    def add(self, case: Case, outcome: Outcome) -> None:
        self.tried += 1
        self.codes[outcome.code] += 1
        self.seconds.append(outcome.seconds)
        slow = outcome.hang or outcome.seconds > HANG_SECONDS
        self.tracebacks += outcome.traceback
        self.hangs += slow
        if outcome.traceback or slow:
            key = "hang over 10 s" if slow and not outcome.traceback else _signature(outcome)
            self.failures.setdefault(key, case)


def _signature(outcome: Outcome) -> str:
    """The failure without file names: `exit 70: q35c: internal error: TypeError: ...`."""
    text = outcome.summary()
    return " ".join(word for word in text.split() if "q35c-fuzz-" not in word)[:160]


class Watchdog:
    """Ends the run when one case is stuck beyond what the alarm can interrupt, reporting it."""

    def __init__(self, seconds: float, report: callable) -> None:  # type: ignore[valid-type]
        self.seconds, self.report = seconds, report
        self.case: Case | None = None
        self.started = 0.0
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self) -> None:
        while True:
            time.sleep(1.0)
            if self.case is not None and time.monotonic() - self.started > self.seconds:
                print(f"\nstuck for over {self.seconds:.0f} s, uninterruptible: {self.case.describe()}", flush=True)
                self.report()  # type: ignore[misc]
                os._exit(3)


def fuzz(category: str, count: int, tally: Tally, directory: Path, dog: Watchdog, seed_value: int | None) -> None:
    strategy = CATEGORIES[category]()

    @settings(
        max_examples=count,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def one(case: Case) -> None:
        dog.case, dog.started = case, time.monotonic()
        outcome = run_case(case, directory)
        dog.case = None
        tally.add(case, outcome)

    if seed_value is not None:
        one = seed(seed_value)(one)
    one()


def report(tallies: dict[str, Tally], started: float) -> None:
    header = f"{'category':<12} {'tried':>6} {'exit 0':>7} {'exit 2':>7} {'tracebacks':>10} {'hangs>10s':>9}"
    header += f" {'median ms':>9} {'slowest s':>9}"
    print(header)
    total = Tally()
    for name, t in tallies.items():
        median = statistics.median(t.seconds) * 1000 if t.seconds else 0.0
        slowest = max(t.seconds, default=0.0)
        print(
            f"{name:<12} {t.tried:>6} {t.codes[0]:>7} {t.codes[2]:>7} {t.tracebacks:>10} {t.hangs:>9}"
            f" {median:>9.1f} {slowest:>9.2f}"
        )
        total.tried += t.tried
        total.codes.update(t.codes)
        total.tracebacks += t.tracebacks
        total.hangs += t.hangs
        total.failures.update({f"{name}: {k}": v for k, v in t.failures.items()})
    print(
        f"{'total':<12} {total.tried:>6} {total.codes[0]:>7} {total.codes[2]:>7} {total.tracebacks:>10}"
        f" {total.hangs:>9}   ({time.monotonic() - started:.0f} s)"
    )
    for key, case in total.failures.items():
        print(f"\n{key}\n    {case.describe()[:400]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10000, help="inputs in all, split over the categories (10000)")
    parser.add_argument("--seed", type=int, help="hypothesis seed (default: random)")
    parser.add_argument("--categories", default=",".join(CATEGORIES), help="comma-separated (default: all)")
    parser.add_argument("--save", type=Path, help="write each distinct failing case's files and command here")
    parser.add_argument("--memory-gb", type=float, default=8.0, help="address-space cap (8)")
    parser.add_argument("--kill-after", type=float, default=120.0, help="end the run if a case is stuck (120 s)")
    args = parser.parse_args()
    limit = int(args.memory_gb * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    names = [n for n in args.categories.split(",") if n]
    tallies = {name: Tally() for name in names}
    started = time.monotonic()
    dog = Watchdog(args.kill_after, lambda: report(tallies, started))
    warm_up()
    with tempfile.TemporaryDirectory(prefix="q35c-fuzz-") as tmp:
        for index, name in enumerate(names):
            directory = Path(tmp) / name
            directory.mkdir()
            count = max(1, args.n // len(names) + (index < args.n % len(names)))
            fuzz(name, count, tallies[name], directory, dog, args.seed)
            print(f"{name}: {tallies[name].tried} tried", file=sys.stderr, flush=True)
    report(tallies, started)
    if args.save is not None:
        save(tallies, args.save)
    return 1 if any(t.tracebacks or t.hangs for t in tallies.values()) else 0


def warm_up() -> None:
    """One untimed build for every target first, so that no input is charged with the imports, the compile
    cache's first fill or the host's one-time bandwidth probe."""
    with tempfile.TemporaryDirectory(prefix="q35c-fuzz-") as tmp:
        outcome = run_case(Case(("build", "tiny", "--target", "all")), Path(tmp), limit=600.0)
    if outcome.code != 0:
        print(f"warm-up build failed: {outcome.summary()}", file=sys.stderr)


def save(tallies: dict[str, Tally], directory: Path) -> None:
    """Each distinct failing case in its own folder: its files and `command` (with `{dir}` the folder)."""
    by_category: defaultdict[str, int] = defaultdict(int)
    for name, tally in tallies.items():
        for case in tally.failures.values():
            by_category[name] += 1
            folder = directory / f"{name}-{by_category[name]}"
            folder.mkdir(parents=True, exist_ok=True)
            for file_name, data in case.files:
                (folder / file_name).write_bytes(data)
            (folder / "command").write_text(" ".join(case.argv) + "\n")


if __name__ == "__main__":
    sys.exit(main())
