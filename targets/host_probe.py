"""Measure the host CPU, the one figure set q35c cannot look up: memory bandwidth and matmul throughput.

What it measures, and its limits:
- Bandwidth: a STREAM-like copy (`b = a`) and triad (`a = b + s*c`) over float32 arrays much larger than a typical
  last-level cache (128 MiB each by default), split across one thread per available CPU (numpy releases the GIL
  in its ufunc loops). Bytes are counted the STREAM way (copy 2 arrays, triad 3 arrays); within a run the best
  of a few repetitions counts. numpy's triad runs as two passes (`a = s*c`, then `a += b`), which moves more
  bytes than it is credited with, so the triad figure reads low; the spec's bandwidth is the higher of the two.
  Write-allocate traffic is not counted either (as in STREAM), so both are lower bounds on what the memory system
  moves. A machine whose last-level cache exceeds the arrays would report cache bandwidth.
- FLOPS: a float32 matmul (2 n^3 flops, n = 2048 by default) through numpy's BLAS, which uses all cores: the best
  sustained rate numpy can reach, below the vendor's theoretical FMA peak. float16 is not measured: numpy has no
  BLAS path for it (it converts element by element, hundreds of times slower), so its rate says nothing about the
  hardware. Integer matmul likewise has no BLAS path.
- Several runs (5 by default), each timing copy, triad and matmul in turn, so that a burst of load elsewhere hits
  all three alike; each figure is the median over the runs. The spread of a figure is (max - min) / median over
  the runs; above 20% the probe is noisy (the machine was busy): it is measured once more and the quieter of the
  two kept, and a probe still noisy is cached marked as such, with a warning on stderr, never silently.
- The whole probe takes a few seconds at the default sizes on an idle machine.

The result is cached as JSON in `$Q35C_CACHE_DIR/host.json` (else `$XDG_CACHE_HOME/q35c/host.json`, else
`~/.cache/q35c/host.json`) with the date and the machine it was measured on; it is measured again when the file is
absent, unreadable, from another machine, or when asked (`q35c targets --probe`).
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

SCHEMA = 2
DEFAULT_ARRAY_BYTES = 128 * 2**20
DEFAULT_MATMUL_N = 2048
DEFAULT_MIN_SECONDS = 0.02
DEFAULT_RUNS = 5
NOISY = 0.20
"""A figure whose runs spread by more than this share of their median makes the probe noisy."""


@dataclass(frozen=True)
class Machine:
    """What identifies the machine a measurement belongs to."""

    platform: str
    machine: str
    cpu_count: int
    cpu_model: str


@dataclass(frozen=True)
class HostMeasurement:
    """One run of the probe. Rates are bytes/s and flop/s; `measured_at` is ISO 8601 UTC."""

    measured_at: str
    machine: Machine
    copy_bytes_per_s: float
    triad_bytes_per_s: float
    fp32_flops: float
    threads: int
    array_bytes: int
    matmul_n: int
    numpy_version: str
    copy_samples: tuple[float, ...] = ()
    triad_samples: tuple[float, ...] = ()
    fp32_samples: tuple[float, ...] = ()
    """Each run's figure; the fields above are their medians."""

    @property
    def bandwidth_bytes_per_s(self) -> float:
        """The better streaming rate (copy or triad, STREAM-counted, medians over the runs)."""
        return max(self.copy_bytes_per_s, self.triad_bytes_per_s)

    @property
    def runs(self) -> int:
        return len(self.fp32_samples)

    @property
    def spreads(self) -> dict[str, float]:
        """(max - min) / median of each figure over the runs."""
        samples = {"copy": self.copy_samples, "triad": self.triad_samples, "fp32 matmul": self.fp32_samples}
        return {name: _spread(values) for name, values in samples.items()}

    @property
    def spread(self) -> float:
        """The largest spread of any figure."""
        return max(self.spreads.values())

    @property
    def noisy(self) -> bool:
        return self.spread > NOISY

    def describe_spread(self) -> str:
        """`median of 5 runs; spread: copy 3%, triad 4%, fp32 matmul 12%` (and `NOISY` above the threshold)."""
        parts = ", ".join(f"{name} {share:.0%}" for name, share in self.spreads.items())
        noisy = f" - NOISY: runs disagree by more than {NOISY:.0%}" if self.noisy else ""
        return f"median of {self.runs} run(s); spread (max-min)/median: {parts}{noisy}"


def _spread(values: Sequence[float]) -> float:
    return (max(values) - min(values)) / statistics.median(values) if values and min(values) > 0 else 0.0


def cache_path() -> Path:
    """Where the measurement is cached."""
    if os.environ.get("Q35C_CACHE_DIR"):
        return Path(os.environ["Q35C_CACHE_DIR"]) / "host.json"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "q35c" / "host.json"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def current_machine() -> Machine:
    return Machine(platform.platform(), platform.machine(), os.cpu_count() or 1, _cpu_model())


def _best_seconds(work: Callable[[], object], min_seconds: float, min_repeats: int = 2) -> float:
    """The fastest of repeated runs, repeating for at least `min_seconds`."""
    best, start, runs = math.inf, time.perf_counter(), 0
    while runs < min_repeats or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - t0)
        runs += 1
    return best


def measure(
    array_bytes: int = DEFAULT_ARRAY_BYTES,
    matmul_n: int = DEFAULT_MATMUL_N,
    min_seconds: float = DEFAULT_MIN_SECONDS,
    runs: int = DEFAULT_RUNS,
) -> HostMeasurement:
    """Run the probe `runs` times (sizes are parameters so tests can make it tiny); figures are the medians."""
    threads = _threads()
    n = max(array_bytes // 4, threads)
    a, b, c = (np.full(n, v, dtype=np.float32) for v in (1.0, 2.0, 0.5))
    chunks = [slice(i * n // threads, (i + 1) * n // threads) for i in range(threads)]

    def copy(s: slice) -> None:
        np.positive(a[s], out=b[s])

    def triad(s: slice) -> None:
        np.multiply(c[s], np.float32(3.0), out=a[s])
        np.add(a[s], b[s], out=a[s])

    x = np.ones((matmul_n, matmul_n), dtype=np.float32)
    y = np.full((matmul_n, matmul_n), 0.5, dtype=np.float32)
    copies: list[float] = []
    triads: list[float] = []
    flops: list[float] = []
    with ThreadPoolExecutor(threads) as pool:
        works = (lambda: list(pool.map(copy, chunks)), lambda: list(pool.map(triad, chunks)), lambda: x @ y)
        for work in works:  # warm-up: page in the arrays, start the threads and BLAS
            work()
        for _ in range(max(1, runs)):
            copies.append(2 * a.nbytes / _best_seconds(works[0], min_seconds))
            triads.append(3 * a.nbytes / _best_seconds(works[1], min_seconds))
            flops.append(2 * matmul_n**3 / _best_seconds(works[2], min_seconds, min_repeats=1))
    return HostMeasurement(
        measured_at=datetime.now(UTC).isoformat(timespec="seconds"),
        machine=current_machine(),
        copy_bytes_per_s=statistics.median(copies),
        triad_bytes_per_s=statistics.median(triads),
        fp32_flops=statistics.median(flops),
        threads=threads,
        array_bytes=int(a.nbytes),
        matmul_n=matmul_n,
        numpy_version=np.__version__,
        copy_samples=tuple(copies),
        triad_samples=tuple(triads),
        fp32_samples=tuple(flops),
    )


def save(result: HostMeasurement) -> Path:
    """Write the measurement to the cache (atomically: a temporary file renamed into place)."""
    path = cache_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"schema": SCHEMA, **asdict(result)}, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return path


def load_cached() -> HostMeasurement | None:
    """The cached measurement, or None when there is none for this machine."""
    try:
        data = json.loads(cache_path().read_text())
        if data.pop("schema") != SCHEMA:
            return None
        samples = {k: tuple(float(v) for v in data[k]) for k in ("copy_samples", "triad_samples", "fp32_samples")}
        result = HostMeasurement(**{**data, **samples, "machine": Machine(**data["machine"])})
    except (OSError, ValueError, TypeError, KeyError):
        return None
    return result if result.machine == current_machine() else None


def _warn(message: str) -> None:
    print(f"q35c: warning: {message}", file=sys.stderr)


def measurement(refresh: bool = False, warn: Callable[[str], None] = _warn) -> HostMeasurement:
    """The cached measurement, measuring (and caching) first when there is none or `refresh` is set. A noisy
    probe is measured once more and the quieter kept; one still noisy is cached with a `warn`ing."""
    cached = None if refresh else load_cached()
    if cached is not None:
        return cached
    result = measure()
    if result.noisy:
        result = min(result, measure(), key=lambda m: m.spread)
    path = save(result)
    if result.noisy:
        worst = max(result.spreads.items(), key=lambda kv: kv[1])
        warn(
            f"host probe: runs disagree by {worst[1]:.0%} ({worst[0]}; more than {NOISY:.0%}): the machine looks "
            f"busy, so host predictions may be off; cached in {path} marked noisy (`q35c targets host --probe` "
            "measures again)"
        )
    return result


def _cache_bytes() -> dict[str, float]:
    """Total bytes per cache level from Linux sysfs (each shared instance counted once); empty elsewhere."""
    totals: dict[str, float] = {}
    seen: set[tuple[str, str, str]] = set()
    for index in Path("/sys/devices/system/cpu").glob("cpu[0-9]*/cache/index[0-9]*"):
        try:
            level, kind, size, shared = (
                (index / f).read_text().strip() for f in ("level", "type", "size", "shared_cpu_list")
            )
        except OSError:
            continue
        if kind == "Instruction" or (level, kind, shared) in seen:
            continue
        seen.add((level, kind, shared))
        scale = {"K": 2**10, "M": 2**20, "G": 2**30}.get(size[-1:], 1)
        key = "l1d_bytes" if level == "1" else f"l{level}_bytes"
        totals[key] = totals.get(key, 0) + int(size.rstrip("KMG")) * scale
    return totals


def _physical_memory_bytes() -> float | None:
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def runtime_values(result: HostMeasurement) -> dict[str, tuple[float, str, str] | None]:
    """The values a spec can name with `from = "probe:..."` or `from = "os:..."`: (value, source, what) or None
    where this machine does not report it."""
    noisy = f", NOISY (runs spread {result.spread:.0%})" if result.noisy else ""
    probe = (
        f"host probe (numpy {result.numpy_version}, {result.threads} threads, median of {result.runs} runs{noisy}), "
        f"measured {result.measured_at} on {result.machine.cpu_model}"
    )
    caches = _cache_bytes()
    os_source = "read from the OS when the spec is loaded"
    values: dict[str, tuple[float, str, str] | None] = {
        "probe:bandwidth_bytes_per_s": (
            result.bandwidth_bytes_per_s,
            probe,
            f"best of STREAM-like copy ({result.copy_bytes_per_s / 1e9:.1f} GB/s) and triad "
            f"({result.triad_bytes_per_s / 1e9:.1f} GB/s) over {result.array_bytes / 2**20:.0f} MiB arrays",
        ),
        "probe:fp32_flops": (result.fp32_flops, probe, f"float32 matmul n={result.matmul_n} through numpy's BLAS"),
        "os:cpu_count": (float(result.machine.cpu_count), os_source, "os.cpu_count()"),
        "os:physical_memory_bytes": None,
    }
    memory = _physical_memory_bytes()
    if memory is not None:
        values["os:physical_memory_bytes"] = (memory, os_source, "sysconf page size x physical pages")
    for key in ("l1d_bytes", "l2_bytes", "l3_bytes"):
        found = caches.get(key)
        values[f"os:{key}"] = None if found is None else (found, os_source, "sum over cache instances in sysfs")
    return values
