"""How long the commands a new user types first take, as a user runs them (a fresh process each time).

    python benchmarks/cli_speed.py [--repeat 3] [--profile]

Measures, each as the median of `--repeat` runs:

    python -c pass                                                    the interpreter alone (the peer)
    q35c --help                                                       goal 0.25 s
    q35c formats                                                      goal 0.25 s
    q35c build llama-3.1-405b --quant q3p5 --target all               goal 3 s
    q35c build llama-2-70b --quant q3p5 --target all -o DIR           goal 5 s

and prints each against its goal, as a multiple of the interpreter's own start, and the CPU time it used
(q35c and its worker processes), so that a busy machine (which slows wall time most) can be told from a slow
command. `--profile` also runs the two builds once in this
process under cProfile, their worker processes' work run here too, and prints where the time goes: the
functions with the most cumulative time, and the time per area of the code (a q35c package, xdsl, or anything
else), counted where the time is spent.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

GOALS: dict[str, float] = {"--help": 0.25, "formats": 0.25, "build-405b": 3.0, "build-70b-dir": 5.0}
BUILD_405B = ["build", "llama-3.1-405b", "--quant", "q3p5", "--target", "all"]
BUILD_70B = ["build", "llama-2-70b", "--quant", "q3p5", "--target", "all", "-o"]


def q35c_path() -> str:
    beside = Path(sys.executable).with_name("q35c")
    found = str(beside) if beside.exists() else shutil.which("q35c")
    if found is None:
        sys.exit("q35c is not installed next to this Python nor on PATH (bash scripts/setup)")
    return found


Run = tuple[float, float]  # (wall seconds, CPU seconds of the process and its workers)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_once(argv: Sequence[str]) -> Run:
    cpu, start = _cpu(), time.perf_counter()
    done = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr}")
    return seconds, _cpu() - cpu


def median_of(argv: Sequence[str], repeat: int, fresh_dir: Path | None = None) -> list[Run]:
    """The times of `repeat` runs; with `fresh_dir`, each run writes a new directory under it (`-o DIR`)."""
    times = []
    for i in range(repeat):
        extra = [] if fresh_dir is None else [str(fresh_dir / f"run{i}")]
        times.append(run_once([*argv, *extra]))
    return times


def _area(filename: str) -> str:
    path = filename.replace("\\", "/")
    for marker, name in (
        ("/site-packages/xdsl/", "xdsl"),
        ("/site-packages/networkx/", "networkx"),
        ("/site-packages/matplotlib/", "matplotlib"),
        ("/site-packages/numpy/", "numpy"),
        ("/passes/", "passes"),
        ("/targets/", "targets"),
        ("/dialects/", "dialects"),
    ):
        if marker in path:
            return name
    if "/q35c/" in path:
        return "q35c." + path.rsplit("/q35c/", 1)[1].split("/", 1)[0].removesuffix(".py")
    return "other (python, stdlib, waiting on worker processes)"


def profile(argv: Sequence[str], top: int = 25) -> None:
    """Run `q35c argv` in this process under cProfile, its worker processes' work included (run here: one
    worker), and print the top functions and the time per area."""
    import q35c.driver.tree as tree
    from q35c.cli.main import main

    profiler = cProfile.Profile()
    workers, tree._workers = tree._workers, lambda tasks: 1  # pyright: ignore[reportPrivateUsage]
    start = time.perf_counter()
    try:
        profiler.runcall(main, list(argv))
    finally:
        tree._workers = workers  # pyright: ignore[reportPrivateUsage]
    wall = time.perf_counter() - start
    stats = pstats.Stats(profiler, stream=io.StringIO())
    print(f"\n## q35c {' '.join(argv)}: {wall:.2f} s under cProfile\n")
    by_area: dict[str, float] = {}
    for (filename, _, _), (_, _, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        area = _area(filename)
        by_area[area] = by_area.get(area, 0.0) + tottime
    print("time spent in each area (tottime, summed):")
    for area, seconds in sorted(by_area.items(), key=lambda kv: -kv[1]):
        print(f"  {seconds:8.2f} s  {area}")
    out = io.StringIO()
    stats.stream = out  # type: ignore[attr-defined]
    stats.sort_stats("cumulative").print_stats(top)
    lines = [line for line in out.getvalue().splitlines() if "{built-in method builtins.exec}" not in line]
    print("\nthe functions with the most cumulative time:")
    print("\n".join(line[:160] for line in lines if line.strip()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3, help="runs per command (default 3); the median counts")
    parser.add_argument("--profile", action="store_true", help="also profile the two builds in this process")
    parser.add_argument("--skip-builds", action="store_true", help="time only the interpreter, --help and formats")
    args = parser.parse_args()
    q35c = q35c_path()
    rows: list[tuple[str, list[Run], float | None]] = []
    peer = median_of([sys.executable, "-c", "pass"], args.repeat)
    rows.append(("python -c pass", peer, None))
    rows.append(("q35c --help", median_of([q35c, "--help"], args.repeat), GOALS["--help"]))
    rows.append(("q35c formats", median_of([q35c, "formats"], args.repeat), GOALS["formats"]))
    if not args.skip_builds:
        rows.append((f"q35c {' '.join(BUILD_405B)}", median_of([q35c, *BUILD_405B], args.repeat), GOALS["build-405b"]))
        with tempfile.TemporaryDirectory() as tmp:
            times = median_of([q35c, *BUILD_70B], args.repeat, Path(tmp))
        rows.append((f"q35c {' '.join(BUILD_70B)} DIR", times, GOALS["build-70b-dir"]))
    base = statistics.median(wall for wall, _ in peer)
    width = max(len(name) for name, _, _ in rows)
    print(f"{'command'.ljust(width)}  median    runs (wall s)        x python   cpu s   goal")
    for name, times, goal in rows:
        median = statistics.median(wall for wall, _ in times)
        cpu = statistics.median(c for _, c in times)
        runs = " ".join(f"{wall:.2f}" for wall, _ in times)
        verdict = "" if goal is None else f"{goal:.2f} s {'ok' if median <= goal else 'OVER'}"
        print(f"{name.ljust(width)}  {median:6.2f} s  {runs:<19}  {median / base:7.1f}  {cpu:6.2f}   {verdict}")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nwall: medians of {args.repeat} runs; cpu s: the median CPU time of q35c and its worker processes,")
    print(f"which a busy machine inflates less than wall time; load average at the end: {load:.1f}.")
    if args.profile:
        profile(BUILD_405B)
        with tempfile.TemporaryDirectory() as tmp:
            profile([*BUILD_70B, str(Path(tmp) / "report")])
    return 0


if __name__ == "__main__":
    sys.exit(main())
