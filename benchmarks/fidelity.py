"""Fidelity of the cost model: every calibration row through q35c, predicted against measured.

    python benchmarks/fidelity.py [--csv PATH] [--fit] [--loo]

Each row of the calibration table (`q35c.targets.calibration.ROWS`: published measurements, each with its
source) is compiled for its target's pipeline -- the row's model, scheme and phase --
and costed by the target's model with its family's stored efficiency constants. Prints predicted and measured
tok/s and the error, then the largest and the median absolute error (goals: every row within 15%, the median
within 8%).

`--fit` runs the fitting procedure (`q35c.targets.calibration.fit`) again on each family's rows, prints the
constants it finds next to the stored ones, and the table with the fitted constants: this is how the stored
constants were chosen, and how to check that they still are the fit.

`--loo` prints, per family, the leave-one-out error of every row (the constants fitted again without the row,
the row predicted with them), which rows exercise each constant, and flags every constant that rests on a
single row (`q35c.targets.identification` defines both).
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from pathlib import Path

from q35c.predict.predictor import predict_row
from q35c.targets.calibration import FAMILY_ROWS, ROWS, Efficiency, efficiency_for, fit, rounded
from q35c.targets.identification import identify
from q35c.targets.target import get_target

ROW_GOAL, MEDIAN_GOAL = 0.15, 0.08
TEXT_FIELDS = ("target", "model", "scheme", "phase")
NUMBER_FIELDS = ("batch", "prompt", "gen", "devices", "measured_tok_s")


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as f:
        return list(csv.DictReader(line for line in f if not line.startswith("#")))


def check_rows(path: Path) -> None:
    """Stop when a calibration table given with --csv and the rows the constants were fitted on disagree."""
    if not path.is_file():
        sys.exit(f"{path} not found")
    kept = {r.id: r for r in ROWS}
    for raw in read_csv(path):
        row = kept.get(raw["id"])
        same = row is not None and all(getattr(row, f) == raw[f] for f in TEXT_FIELDS)
        same = same and all(float(getattr(row, f)) == float(raw[f]) for f in NUMBER_FIELDS)
        if not same:
            sys.exit(f"calibration row {raw['id']} of {path} differs from q35c.targets.calibration.ROWS")


def table(constants: dict[str, Efficiency]) -> tuple[float, float]:
    """Print every row predicted against measured; return the largest and the median absolute error."""
    print(f"{'id':4} {'target':9} {'scheme':10} {'phase':8} {'predicted':>10} {'measured':>10} {'error':>8}")
    errors: list[float] = []
    for row in ROWS:
        predicted = predict_row(row, constants.get(get_target(row.target).family))
        error = predicted / row.measured_tok_s - 1
        errors.append(abs(error))
        print(
            f"{row.id:4} {row.target:9} {row.scheme:10} {row.phase:8} {predicted:10.2f} {row.measured_tok_s:10.2f} "
            f"{100 * error:+7.1f}%"
        )
    worst, median = max(errors), statistics.median(errors)
    verdict = "within the goals" if worst <= ROW_GOAL and median <= MEDIAN_GOAL else "OUTSIDE the goals"
    print(f"largest |error| {100 * worst:.1f}% (goal 15%), median {100 * median:.1f}% (goal 8%): {verdict}")
    return worst, median


def refit() -> dict[str, Efficiency]:
    """Fit each family's constants again on its rows (families without rows keep theirs)."""
    found: dict[str, Efficiency] = {}
    for family, ids in FAMILY_ROWS.items():
        rows = [r for r in ROWS if r.id in ids]
        stored = efficiency_for(family)
        if not rows:
            print(f"{family}: no calibration rows; constants stay {stored}")
            continue
        start = time.perf_counter()
        found[family] = rounded(fit(rows, predict_row))
        print(f"{family} ({', '.join(ids)}): fitted {found[family]} in {time.perf_counter() - start:.1f} s")
        print(f"{' ' * len(family)}   stored {stored}")
    return found


def _constants(e: Efficiency) -> str:
    return f"{e.bandwidth:9.3g} {e.compute:8.3g} {e.kernel_overhead_s * 1e6:8.3g} us"


def loo(constants: dict[str, Efficiency]) -> list[str]:
    """Print every family's leave-one-out table and flags; return the flags."""
    flags: list[str] = []
    for family, ids in FAMILY_ROWS.items():
        rows = [r for r in ROWS if r.id in ids]
        if not rows:
            print(f"{family}: no calibration rows, nothing fitted\n")
            continue
        found = identify(family, rows, predict_row, constants.get(family, efficiency_for(family)))
        print(f"{family}: constants {_constants(found.fitted)}  (bandwidth, compute, per kernel)")
        print(f"{'id':4} {'scheme':10} {'phase':8} {'in-sample':>9} {'LOO':>8}   refit without the row")
        for lo in found.left_out:
            r = lo.row
            print(
                f"{r.id:4} {r.scheme:10} {r.phase:8} {100 * lo.in_sample_error:+8.1f}% {100 * lo.error:+7.1f}%"
                f"   {_constants(lo.without)}"
            )
        for knob, by in found.exercised.items():
            print(f"  {knob} exercised by: {', '.join(by) or 'no row'}")
        for flag in found.flags:
            print(f"  FLAG {family} {flag}")
        flags += [f"{family} {f}" for f in found.flags]
        print()
    return flags


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--csv", type=Path, help="a calibration table (CSV) to check the kept rows against")
    parser.add_argument("--fit", action="store_true", help="fit the efficiency constants again and use them")
    parser.add_argument("--loo", action="store_true", help="leave-one-out errors and single-row flags per family")
    args = parser.parse_args()
    if args.csv is not None:
        check_rows(args.csv)
    constants = refit() if args.fit else {}
    table(constants)
    if args.loo:
        print()
        loo(constants)


if __name__ == "__main__":
    main()
