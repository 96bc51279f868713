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
- Parallel region: the fork/join of one OpenMP `parallel for` on one thread -- what every parallel loop nest of
  a host library pays per call, whatever its size (a q35c kernel lowers to one or more). A C microkernel
  (`REGION_C`) is compiled once per process with the toolchain host libraries are built with (clang-22 and
  LLVM 22's libomp, in `/usr/lib/llvm-22`); the figure is the median over the runs of (a call with the region - the
  same call without it), the ctypes call itself cancelling out. Without a compiler or OpenMP it is `None`
  (documented fallback: no per-region time; the library then has no parallel regions either).
- The whole probe takes a few seconds at the default sizes on an idle machine.

Figures of the code q35c generates (`GeneratedCode`: the time per weight of the generated matrix-vector and
matrix kernels per scheme class, the fixed time of a kernel call) are measured by `q35c.codegen.host.calibrate`,
which compiles microkernels with q35c itself (this module cannot: `targets` does not import the compiler), and
cached next to the probe in `host-codegen.json`; `load_generated` reads them, `runtime_values` offers them to
the spec (`probe:generated:...`), and an absent or stale file means "not measured" (value 0: the cost model
falls back to the op-count model for that figure).

The result is cached as JSON in `$Q35C_CACHE_DIR/host.json` (else `$XDG_CACHE_HOME/q35c/host.json`, else
`~/.cache/q35c/host.json`) with the date and the machine it was measured on; it is measured again when the file is
absent, unreadable, from another machine, or when asked (`q35c targets --probe`).
"""

from __future__ import annotations

import ctypes
import functools
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

SCHEMA = 3
DEFAULT_ARRAY_BYTES = 128 * 2**20
DEFAULT_MATMUL_N = 2048
DEFAULT_MIN_SECONDS = 0.02
DEFAULT_RUNS = 5
NOISY = 0.20
"""A figure whose runs spread by more than this share of their median makes the probe noisy."""
LLVM = Path("/usr/lib/llvm-22")
REGION_C = """
void q35p_region(float *a, long n) {
#pragma omp parallel for
  for (long i = 0; i < n; i++) a[i] += 1.0f;
}
void q35p_plain(float *a, long n) {
  for (long i = 0; i < n; i++) a[i] += 1.0f;
}
"""
REGION_CALLS = 2000
GENERATED_SCHEMA = 5
GENERATED_FILE = "host-codegen.json"
SCHEME_CLASSES = ("q3p5", "int4", "q4_0", "q4_1", "q8_0", "int8", "fp16")
"""The scheme classes whose generated kernels `q35c.codegen.host.calibrate` times (a class: the scheme without
its group size)."""


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
    parallel_region_s: float | None = None
    """Seconds one OpenMP parallel region's fork/join adds to a call on one thread (None: no compiler/OpenMP)."""
    region_samples: tuple[float, ...] = ()

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
    def region_spread(self) -> float:
        """(max - min) / median of the parallel-region figure (reported, not part of `noisy`: a microsecond
        figure on a shared machine spreads more than the streaming ones)."""
        return _spread(self.region_samples)

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


_REGION_LIBRARY: list[ctypes.CDLL | None] = []


def _openmp_compiler() -> tuple[str, tuple[str, ...]] | None:
    """(clang, link flags) of the toolchain the host libraries are built with (clang-22 and LLVM 22's libomp),
    or None: another compiler's OpenMP runtime loaded beside a library's would be a second runtime in the
    process."""
    clang = shutil.which("clang-22") or shutil.which("clang", path=str(LLVM / "bin"))
    lib = LLVM / "lib"
    if clang is None or not (lib / "libomp.so").exists():
        return None
    return clang, (f"-L{lib}", f"-Wl,-rpath,{lib}")


def region_library() -> ctypes.CDLL | None:
    """`REGION_C` compiled with OpenMP and loaded (once per process); None without a compiler or OpenMP."""
    if _REGION_LIBRARY:
        return _REGION_LIBRARY[0]
    found: ctypes.CDLL | None = None
    compiler = _openmp_compiler()
    if compiler is not None:
        clang, link = compiler
        with tempfile.TemporaryDirectory(prefix="q35c-probe-") as tmp:
            source, library = Path(tmp) / "region.c", Path(tmp) / "region.so"
            source.write_text(REGION_C)
            args = [clang, "-O2", "-fopenmp", "-shared", "-fPIC", str(source), *link, "-o", str(library)]
            try:
                done = subprocess.run(args, capture_output=True, timeout=60, check=False)
                if done.returncode == 0:
                    found = ctypes.CDLL(str(library))  # loaded before the file is removed
            except (OSError, subprocess.TimeoutExpired):
                found = None
    _REGION_LIBRARY.append(found)
    return found


def region_seconds(library: ctypes.CDLL, calls: int = REGION_CALLS) -> float:
    """Seconds a one-thread OpenMP parallel region adds to a call: the median of three batches of `calls`
    calls with the region, less the same calls without it (thread CPU time)."""
    a = np.zeros(8, dtype=np.float32)
    pointer, n = ctypes.c_void_p(a.ctypes.data), ctypes.c_long(4)
    with_region, without = library.q35p_region, library.q35p_plain
    previous = library.omp_get_max_threads()
    library.omp_set_num_threads(1)
    try:
        with_region(pointer, n)  # start the OpenMP runtime

        def batch(f: Callable[[ctypes.c_void_p, ctypes.c_long], None]) -> float:
            t0 = time.thread_time()
            for _ in range(calls):
                f(pointer, n)
            return (time.thread_time() - t0) / calls

        extra = [batch(with_region) - batch(without) for _ in range(3)]
    finally:
        library.omp_set_num_threads(previous)
    return max(0.0, statistics.median(extra))


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
    regions: list[float] = []
    library = region_library()
    with ThreadPoolExecutor(threads) as pool:
        works = (lambda: list(pool.map(copy, chunks)), lambda: list(pool.map(triad, chunks)), lambda: x @ y)
        for work in works:  # warm-up: page in the arrays, start the threads and BLAS
            work()
        for _ in range(max(1, runs)):
            copies.append(2 * a.nbytes / _best_seconds(works[0], min_seconds))
            triads.append(3 * a.nbytes / _best_seconds(works[1], min_seconds))
            flops.append(2 * matmul_n**3 / _best_seconds(works[2], min_seconds, min_repeats=1))
            if library is not None:
                regions.append(region_seconds(library))
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
        parallel_region_s=statistics.median(regions) if regions else None,
        region_samples=tuple(regions),
    )


def _write_cache(path: Path, data: dict[str, Any]) -> Path:
    """Write a cache file atomically: a temporary file renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return path


def save(result: HostMeasurement) -> Path:
    """Write the measurement to the cache."""
    return _write_cache(cache_path(), {"schema": SCHEMA, **asdict(result)})


def load_cached() -> HostMeasurement | None:
    """The cached measurement, or None when there is none for this machine."""
    try:
        data = json.loads(cache_path().read_text())
        if data.pop("schema") != SCHEMA:
            return None
        keys = ("copy_samples", "triad_samples", "fp32_samples", "region_samples")
        samples = {k: tuple(float(v) for v in data[k]) for k in keys}
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


@dataclass(frozen=True)
class GeneratedCode:
    """Figures of the code q35c generates for this machine, measured on microkernels q35c compiled itself
    (`q35c.codegen.host.calibrate`), on one thread, thread CPU time, medians. Zero or absent: not measured."""

    measured_at: str
    machine: Machine
    generator: str
    """`generator_digest()` when measured: figures of another code generator are measured again."""
    threads: int
    microkernels: str
    """What was compiled and timed (model, schemes, kernels), for the source line."""
    linear_call_s: float
    """Fixed seconds of one call of a generated linear kernel (the intercept of time against weights)."""
    elementwise_call_s: float
    """Fixed seconds of one call of a generated element-wise kernel (norm, rope, attention, add, ...)."""
    elementwise_s_per_op: float
    """Seconds per op (ALU op or MAC) of the generated element-wise kernels, data in cache."""
    matvec_s_per_weight: dict[str, float]
    """Seconds per weight of a generated one-row linear (matrix-vector), weights in cache, by scheme class."""
    matmul_s_per_mac: dict[str, float]
    """Seconds per MAC of a generated many-row linear (prefill), weights in cache, by scheme class."""


def generated_path() -> Path:
    return cache_path().with_name(GENERATED_FILE)


GENERATOR_PACKAGES = ("q35c.passes", "q35c.codegen.host", "q35c.targets.pipeline", "q35c.targets.pass_options")
"""The packages and modules whose sources make the host's generated code: the passes (the pipeline's and the
native stage's), the host code generator (its mlir-opt pipeline and toolchain flags) and the target pipeline's
stage list and options."""


@functools.cache
def generator_digest() -> str:
    """A digest of the sources of `GENERATOR_PACKAGES` (their .py files, names and bytes): cached figures of the
    generated code hold only while it is the same (read as text only; nothing is imported)."""
    import hashlib
    import importlib.util

    digest = hashlib.sha256()
    for package in GENERATOR_PACKAGES:
        spec = importlib.util.find_spec(package)
        if spec is not None and spec.submodule_search_locations is None and spec.origin:  # a module
            digest.update(f"{package}\0".encode())
            digest.update(Path(spec.origin).read_bytes())
            continue
        for folder in sorted(spec.submodule_search_locations or ()) if spec else ():
            for path in sorted(Path(folder).rglob("*.py")):
                digest.update(f"{package}/{path.relative_to(folder).as_posix()}\0".encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def save_generated(result: GeneratedCode) -> Path:
    """Write the generated-code figures next to the probe's cache (atomically)."""
    return _write_cache(generated_path(), {"schema": GENERATED_SCHEMA, **asdict(result)})


def load_generated() -> GeneratedCode | None:
    """The cached generated-code figures of this machine and code generator, or None (absent, unreadable,
    another machine, or measured on code another version of the generator made)."""
    try:
        data = json.loads(generated_path().read_text())
        if data.pop("schema") != GENERATED_SCHEMA:
            return None
        rates = {k: {str(s): float(v) for s, v in data[k].items()} for k in ("matvec_s_per_weight", "matmul_s_per_mac")}
        result = GeneratedCode(**{**data, **rates, "machine": Machine(**data["machine"])})
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None
    return result if result.machine == current_machine() and result.generator == generator_digest() else None


def _generated_values(found: GeneratedCode | None) -> dict[str, tuple[float, str, str] | None]:
    """`probe:generated:...` values: measured figures, or 0 with a source saying they were not measured."""
    if found is None:
        source = (
            "not measured: no generated-code figures cached for this machine (`python -m "
            "q35c.codegen.host.calibrate` or benchmarks/host_fidelity.py measures them); 0: the cost model's "
            "fallback"
        )
    else:
        source = (
            f"q35c microkernels ({found.microkernels}), {found.threads} thread, thread CPU time, medians; "
            f"measured {found.measured_at} on {found.machine.cpu_model}"
        )
    values: dict[str, tuple[float, str, str] | None] = {
        "probe:generated:linear_call_s": (
            0.0 if found is None else found.linear_call_s,
            source,
            "fixed time of one call of a generated linear kernel (intercept of time against weights)",
        ),
        "probe:generated:elementwise_call_s": (
            0.0 if found is None else found.elementwise_call_s,
            source,
            "fixed time of one call of a generated element-wise kernel (intercept of the decoder function's time, "
            "less its linears, against its ops, per kernel)",
        ),
        "probe:generated:elementwise_per_op": (
            0.0 if found is None else found.elementwise_s_per_op * 1e12,
            source,
            "picoseconds per op (token-side ALU op or MAC) of the generated element-wise kernels (the slope of the "
            "same fit)",
        ),
    }
    for scheme in SCHEME_CLASSES:
        matvec = 0.0 if found is None else found.matvec_s_per_weight.get(scheme, 0.0)
        matmul = 0.0 if found is None else found.matmul_s_per_mac.get(scheme, 0.0)
        values[f"probe:generated:matvec:{scheme}"] = (
            matvec * 1e12,
            source,
            f"picoseconds per weight of the generated {scheme} matrix-vector kernel, weights in cache",
        )
        values[f"probe:generated:matmul:{scheme}"] = (
            matmul * 1e12,
            source,
            f"picoseconds per MAC of the generated {scheme} many-row (prefill) linear kernel, weights in cache",
        )
    return values


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
    region = result.parallel_region_s
    values["probe:parallel_region_s"] = (
        0.0 if region is None else region,
        probe if region is not None else "not measured: no clang with OpenMP found (fallback 0)",
        f"fork/join of one OpenMP parallel-for on one thread, C microkernel (median of {len(result.region_samples)}"
        f" runs, spread {result.region_spread:.0%})",
    )
    values.update(_generated_values(load_generated()))
    memory = _physical_memory_bytes()
    if memory is not None:
        values["os:physical_memory_bytes"] = (memory, os_source, "sysconf page size x physical pages")
    for key in ("l1d_bytes", "l2_bytes", "l3_bytes"):
        found = caches.get(key)
        values[f"os:{key}"] = None if found is None else (found, os_source, "sum over cache instances in sysfs")
    return values
