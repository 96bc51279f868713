"""Wall time of the cost comparison on the command line: `q35c build MODEL --quant SPEC --target all`.

    python benchmarks/build.py [--model llama-3.1-405b] [--quant q3p5] [--repeat 3]

Runs the command as a user would (a fresh process each time: imports, spec loading, compiling the decode and
prefill modules for every target family, costing, printing), prints each run's wall time and the best against
the 5 s goal.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time

GOAL_SECONDS = 5.0


def run_once(argv: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="llama-3.1-405b")
    parser.add_argument("--quant", default="q3p5")
    parser.add_argument("--target", default="all")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    q35c = shutil.which("q35c") or sys.exit("q35c is not on PATH (activate the virtual environment)")
    argv = [q35c, "build", args.model, "--quant", args.quant, "--target", args.target]
    times = [run_once(argv) for _ in range(args.repeat)]
    for i, seconds in enumerate(times, start=1):
        print(f"run {i}: {seconds:.2f} s")
    best = min(times)
    verdict = "within" if best <= GOAL_SECONDS else "OVER"
    print(f"{' '.join(argv[1:])}: best {best:.2f} s of {args.repeat} ({verdict} the {GOAL_SECONDS:.0f} s goal)")


if __name__ == "__main__":
    main()
