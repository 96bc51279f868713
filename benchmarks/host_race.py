"""The host race: q35c's generated linear kernels (the decode step's and the prefill's) against llama.cpp's CPU
kernels, numpy and MLX on this machine's CPU, in one run.

    python benchmarks/host_race.py [--shapes 4096x4096,11008x4096,4096x11008] [--batch 1,8,512] [--threads 2]
                                   [--reps 15] [--llama-lib DIR] [--json benchmarks/results/host_race.json]

Each case is Y = X W^T for M token rows (`--batch`: 1 is the batch-1 decode's matrix-vector product, 8 a decode
step of 8 sequences, 512 a prompt's prefill), W of shape N x K (the linears of a llama-2-7b layer: q/k/v/o
4096x4096, gate/up 11008x4096, down 4096x11008):

- q35c: `q35c.codegen.host` libraries compiled from the host pipeline's kernels (`linear_module`, the same
  passes as `q35c build --target host --emit so`), for q3p5 (dense and byte), int4, q4_0, q8_0, int8 and fp16;
- numpy: float32 W x (X W^T for several rows: BLAS) on the dequantized weights (what a framework without
  quantized kernels does);
- llama.cpp: `ggml_mul_mat` of its CPU backend through ctypes on `libggml` (the `llama-cpp-python` sdist built
  outside this repository; `--llama-lib` names its `lib/` directory, or `import llama_cpp` finds it), for
  Q4_0, Q8_0, Q4_K and Q3_K in the plain layout, with the activations a float32 [K, M] tensor (ggml quantizes
  them to its dot-product type inside the call, as in llama.cpp's decode and prefill); and for Q4_0 and Q4_K
  in the CPU_REPACK buffer type that llama.cpp's loader picks for them on x86 (weights repacked at load into
  the interleaved layout of its AVX2/AVX-512 kernels, run by the CPU backend; "Q4_0 repack", "Q4_K repack";
  listed as skipped where the repack does not apply on the CPU);
- MLX (`mlx[cpu]`, when importable): `mx.quantized_matmul` at 3 and 4 bits, group 64, float32 activations.

The peers live outside this repository (never in CI): `--site DIR` adds the site-packages of a virtual
environment where `llama-cpp-python` (built from its sdist) and `mlx[cpu]` are installed.

Warm: one weight matrix, called repeatedly (in cache where it fits). Cold: a cycle through copies of the weights
totalling at least 4x the L3 size (32 MiB here unless `--l3-mib`), so every call streams its weights from DRAM.
Each figure is the median of `--reps` calls (a third of them, at least 3, for more than 8 rows, which are timed
warm only: a GEMM computes long enough per weight byte that streaming them costs little), in wall time or
(`--clock cpu`, with `--threads 1`) in this process's CPU time, which other processes on a shared machine do not
inflate. Printed: milliseconds, GB/s of weight bytes (cold) and its ratio to the stream bandwidth measured in the
same run (`stream_bandwidth`: a one-thread float32 dot product over 256 MiB, at the start and the end, median),
GFLOP/s (2 M N K flops, warm), and each peer's time over q35c's q3p5 (dense) time for the same batch, shape and
warmth (> 1: q35c is faster).
"""

from __future__ import annotations

import argparse
import ctypes
import importlib.util
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
Q35C_SCHEMES = ("q3p5", "q3p5:container=byte", "int4", "q4_0", "q8_0", "int8", "fp16")
GGML_TYPES = {"Q4_0": 2, "Q8_0": 8, "Q3_K": 11, "Q4_K": 12}
GGML_F32 = 0


@dataclass(frozen=True)
class Case:
    runner: str  # q35c, numpy, llama.cpp, mlx
    scheme: str
    m: int  # token rows
    n: int
    k: int
    warm_s: float
    cold_s: float | None  # not timed above COLD_MAX_BATCH rows
    weight_bytes: int

    def gflop_s(self, seconds: float) -> float:
        return 2 * self.m * self.n * self.k / seconds / 1e9

    def to_json(self) -> dict[str, Any]:
        return {
            "runner": self.runner,
            "scheme": self.scheme,
            "batch": self.m,
            "shape": f"{self.n}x{self.k}",
            "warm_ms": self.warm_s * 1e3,
            "cold_ms": None if self.cold_s is None else self.cold_s * 1e3,
            "weight_bytes": self.weight_bytes,
            "warm_gb_s": self.weight_bytes / self.warm_s / 1e9,
            "cold_gb_s": None if self.cold_s is None else self.weight_bytes / self.cold_s / 1e9,
            "warm_gflop_s": self.gflop_s(self.warm_s),
            "cold_gflop_s": None if self.cold_s is None else self.gflop_s(self.cold_s),
        }


CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}
CLOCK = CLOCKS["wall"]


def median_time(calls: list[Callable[[], None]], reps: int) -> float:
    """Median seconds of one call, cycling through `calls` (one per weight copy), after one warm-up cycle."""
    for call in calls:
        call()
    times: list[float] = []
    for i in range(max(reps, len(calls))):
        call = calls[i % len(calls)]
        start = CLOCK()
        call()
        times.append(CLOCK() - start)
    return statistics.median(times)


STREAM_BYTES = 256 << 20


def stream_bandwidth(reps: int = 5) -> float:
    """Bytes per second one thread streams from DRAM: a float32 dot product of two vectors of 128 MiB each (BLAS;
    run with OPENBLAS_NUM_THREADS=1 for one thread), the median of `reps` after a warm-up, on the race's clock."""
    half = STREAM_BYTES // 2 // 4
    a, b = np.ones(half, np.float32), np.full(half, 0.5, np.float32)
    float(np.dot(a, b))
    times = []
    for _ in range(reps):
        start = CLOCK()
        float(np.dot(a, b))
        times.append(CLOCK() - start)
    return STREAM_BYTES / statistics.median(times)


def copies_for(weight_bytes: int, l3_bytes: int) -> int:
    return max(2, -(-4 * l3_bytes // weight_bytes))


COLD_MAX_BATCH = 8


def reps_for(m: int, args: argparse.Namespace) -> int:
    """`--reps`, or a third of it (at least 3) for more than 8 rows (a GEMM: milliseconds to seconds a call)."""
    return args.reps if m <= COLD_MAX_BATCH else max(3, args.reps // 3)


def cold_time(calls: list[Callable[[], None]], m: int, args: argparse.Namespace) -> float | None:
    """The median time cycling through the copies, or None above COLD_MAX_BATCH rows."""
    return median_time(calls, reps_for(m, args)) if m <= COLD_MAX_BATCH else None


# ----------------------------------------------------------------------------------------------------------------
# q35c
# ----------------------------------------------------------------------------------------------------------------


def q35c_cases(n: int, k: int, w: np.ndarray, x: np.ndarray, args: argparse.Namespace, out: Path) -> list[Case]:
    from q35c import formats
    from q35c.codegen.host.abi import c_identifier
    from q35c.codegen.host.library import emit_library
    from q35c.codegen.host.runtime import HostLibrary
    from q35c.verify.linear import linear_module, lower_for_host

    m = x.shape[0]
    modules = {c_identifier(s): lower_for_host(linear_module(m, n, k, s, codes=False)) for s in Q35C_SCHEMES}
    emit_library(modules, {"model": f"linear {m}x{n}x{k}"}, out, "so")
    lib = HostLibrary.load(out)
    lib.set_threads(args.threads)
    cases: list[Case] = []
    for scheme in Q35C_SCHEMES:
        qt = formats.get(scheme).quantize(w)
        by_role = {"codes": qt.packed, "scale": qt.scale, "offset": qt.offset}
        entry = next(e for e in lib.entries.values() if e.phase == c_identifier(scheme) and e.kind == "linear")
        arrays = [by_role[a.role or ""] for a in entry.args[1:]]
        nbytes = sum(a.nbytes for a in arrays if a is not None)
        copies = copies_for(nbytes, args.l3_mib << 20)
        calls = []
        for i in range(copies):
            own = [a if i == 0 else a.copy() for a in arrays]
            call, _ = lib.bind(entry.symbol, [x.astype(np.float16), *own])
            calls.append(call)
        warm = median_time(calls[:1], reps_for(m, args))
        cold = cold_time(calls, m, args)
        cases.append(Case("q35c", scheme, m, n, k, warm, cold, nbytes))
    return cases


# ----------------------------------------------------------------------------------------------------------------
# numpy
# ----------------------------------------------------------------------------------------------------------------


def numpy_case(n: int, k: int, w: np.ndarray, x: np.ndarray, args: argparse.Namespace) -> Case:
    nbytes = w.nbytes
    mats = [w] + [w.copy() for _ in range(copies_for(nbytes, args.l3_mib << 20) - 1)]
    rows = x.shape[0]
    xv = x.reshape(-1) if rows == 1 else np.ascontiguousarray(x.T)
    calls = [lambda m=m: np.dot(m, xv) for m in mats]  # type: ignore[misc]
    warm = median_time(calls[:1], reps_for(rows, args))
    return Case("numpy", "fp32", rows, n, k, warm, cold_time(calls, rows, args), nbytes)


# ----------------------------------------------------------------------------------------------------------------
# llama.cpp (ggml through ctypes)
# ----------------------------------------------------------------------------------------------------------------


LogCallback = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)


class InitParams(ctypes.Structure):
    _fields_ = [("mem_size", ctypes.c_size_t), ("mem_buffer", ctypes.c_void_p), ("no_alloc", ctypes.c_bool)]


def find_ggml(explicit: str | None) -> Path | None:
    if explicit:
        return Path(explicit)
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or spec.origin is None:
        return None
    lib = Path(spec.origin).parent / "lib"
    return lib if (lib / "libggml-cpu.so").exists() else None


@dataclass
class Ggml:
    base: ctypes.CDLL
    cpu: ctypes.CDLL

    @classmethod
    def load(cls, directory: Path) -> Ggml:
        mode = ctypes.RTLD_GLOBAL
        ctypes.CDLL(str(directory / "libggml-base.so"), mode=mode)
        base = ctypes.CDLL(str(directory / "libggml-base.so"), mode=mode)
        cpu = ctypes.CDLL(str(directory / "libggml-cpu.so"), mode=mode)
        p, i64, sz = ctypes.c_void_p, ctypes.c_int64, ctypes.c_size_t
        base.ggml_init.argtypes, base.ggml_init.restype = [InitParams], p
        base.ggml_free.argtypes = [p]
        base.ggml_new_tensor_2d.argtypes, base.ggml_new_tensor_2d.restype = [p, ctypes.c_int, i64, i64], p
        base.ggml_get_data.argtypes, base.ggml_get_data.restype = [p], p
        base.ggml_nbytes.argtypes, base.ggml_nbytes.restype = [p], sz
        base.ggml_row_size.argtypes, base.ggml_row_size.restype = [ctypes.c_int, i64], sz
        base.ggml_mul_mat.argtypes, base.ggml_mul_mat.restype = [p, p, p], p
        base.ggml_new_graph.argtypes, base.ggml_new_graph.restype = [p], p
        base.ggml_build_forward_expand.argtypes = [p, p]
        base.ggml_quantize_chunk.argtypes = [ctypes.c_int, p, p, i64, i64, i64, p]
        base.ggml_quantize_chunk.restype = sz
        # The backend API: the CPU backend runs every case, and the CPU_REPACK buffer type repacks weights at load.
        base.ggml_tensor_overhead.restype = sz
        base.ggml_graph_overhead.restype = sz
        base.ggml_backend_reg_dev_get.argtypes, base.ggml_backend_reg_dev_get.restype = [p, sz], p
        base.ggml_backend_reg_get_proc_address.argtypes = [p, ctypes.c_char_p]
        base.ggml_backend_reg_get_proc_address.restype = p
        base.ggml_backend_buft_name.argtypes, base.ggml_backend_buft_name.restype = [p], ctypes.c_char_p
        base.ggml_backend_cpu_buffer_type.restype = p
        base.ggml_backend_alloc_ctx_tensors_from_buft.argtypes = [p, p]
        base.ggml_backend_alloc_ctx_tensors_from_buft.restype = p
        base.ggml_backend_buffer_free.argtypes = [p]
        base.ggml_backend_tensor_set.argtypes = [p, p, sz, sz]
        base.ggml_backend_dev_supports_op.argtypes = [p, p]
        base.ggml_backend_dev_supports_op.restype = ctypes.c_bool
        base.ggml_backend_graph_compute.argtypes, base.ggml_backend_graph_compute.restype = [p, p], ctypes.c_int
        base.ggml_backend_free.argtypes = [p]
        base.ggml_log_set.argtypes = [LogCallback, p]
        cpu.ggml_backend_cpu_reg.restype = p
        cpu.ggml_backend_cpu_init.restype = p
        cpu.ggml_backend_cpu_set_n_threads.argtypes = [p, ctypes.c_int]
        if hasattr(cpu, "ggml_cpu_init"):
            cpu.ggml_cpu_init()
        return cls(base, cpu)


def llama_cases(ggml: Ggml, n: int, k: int, w: np.ndarray, x: np.ndarray, args: argparse.Namespace) -> list[Case]:
    b = ggml.base
    # The CPU backend keeps one work buffer across calls (ggml_graph_compute_with_ctx would take a new one from
    # the context on every call, outgrowing it at high --reps).
    backend = ggml.cpu.ggml_backend_cpu_init()
    ggml.cpu.ggml_backend_cpu_set_n_threads(backend, args.threads)
    cases: list[Case] = []
    m = x.shape[0]
    xf = np.ascontiguousarray(x, dtype=np.float32)
    for name, typ in GGML_TYPES.items():
        nbytes = int(b.ggml_row_size(typ, k)) * n
        copies = copies_for(nbytes, args.l3_mib << 20)
        slack = (copies + 1) * (4 << 20)  # tensor and graph headers
        ctx = b.ggml_init(InitParams(nbytes * copies + 4 * k * m + 4 * n * m * copies + slack, None, False))
        xt = b.ggml_new_tensor_2d(ctx, GGML_F32, k, m)  # [K, M]: M rows of K
        ctypes.memmove(b.ggml_get_data(xt), xf.ctypes.data, 4 * k * m)
        wf = np.ascontiguousarray(w, dtype=np.float32)
        graphs = []
        first = None
        for _ in range(copies):
            wt = b.ggml_new_tensor_2d(ctx, typ, k, n)
            if first is None:
                b.ggml_quantize_chunk(typ, wf.ctypes.data, b.ggml_get_data(wt), 0, n, k, None)
                first = wt
            else:
                ctypes.memmove(b.ggml_get_data(wt), b.ggml_get_data(first), nbytes)
            graph = b.ggml_new_graph(ctx)
            b.ggml_build_forward_expand(graph, b.ggml_mul_mat(ctx, wt, xt))
            graphs.append(graph)
        calls = [lambda g=g: b.ggml_backend_graph_compute(backend, g) for g in graphs]
        warm = median_time(calls[:1], reps_for(m, args))
        cold = cold_time(calls, m, args)
        b.ggml_free(ctx)
        cases.append(Case("llama.cpp", name, m, n, k, warm, cold, nbytes))
    b.ggml_backend_free(backend)
    return cases


REPACK_TYPES = ("Q4_0", "Q4_K")
GetExtraBufts = ctypes.CFUNCTYPE(ctypes.POINTER(ctypes.c_void_p), ctypes.c_void_p)


@LogCallback
def quiet_repack_log(level: int, text: bytes, _user: int) -> None:
    """ggml's log, less the one line per repacked tensor."""
    if not text.startswith(b"repack: "):
        sys.stderr.write(text.decode(errors="replace"))


def repack_buffer_type(ggml: Ggml) -> tuple[int, int] | None:
    """The CPU device and its extra buffer type named CPU_REPACK (None when this build has none), found as
    llama.cpp's model loader finds it: the CPU registry's `ggml_backend_dev_get_extra_bufts` proc address."""
    b = ggml.base
    reg = ggml.cpu.ggml_backend_cpu_reg()
    dev = b.ggml_backend_reg_dev_get(reg, 0)
    addr = b.ggml_backend_reg_get_proc_address(reg, b"ggml_backend_dev_get_extra_bufts")
    if not addr:
        return None
    bufts = GetExtraBufts(addr)(dev)
    i = 0
    while bufts[i]:
        if b.ggml_backend_buft_name(bufts[i]) == b"CPU_REPACK":
            return dev, int(bufts[i])
        i += 1
    return None


def llama_repack_cases(
    ggml: Ggml, n: int, k: int, w: np.ndarray, x: np.ndarray, args: argparse.Namespace, skipped: list[str]
) -> list[Case]:
    """Q4_0 and Q4_K with the weights in the CPU_REPACK buffer type: `ggml_backend_tensor_set` repacks them into
    the interleaved layout of ggml's AVX2/AVX-512 GEMV kernels, and the CPU backend runs the graph. Where the
    repack does not apply (no such buffer type, or this CPU/shape has no repacked kernel) the case is skipped
    and said so in `skipped`, rather than timing the plain layout again."""
    b = ggml.base
    found = repack_buffer_type(ggml)
    if found is None:
        skipped += [f"llama.cpp {t} repack: no CPU_REPACK buffer type in this build" for t in REPACK_TYPES]
        return []
    dev, repack = found
    backend = ggml.cpu.ggml_backend_cpu_init()
    ggml.cpu.ggml_backend_cpu_set_n_threads(backend, args.threads)
    cases: list[Case] = []
    wf = np.ascontiguousarray(w, dtype=np.float32)
    xf = np.ascontiguousarray(x, dtype=np.float32)
    m = x.shape[0]
    for name in REPACK_TYPES:
        typ = GGML_TYPES[name]
        nbytes = int(b.ggml_row_size(typ, k)) * n
        copies = copies_for(nbytes, args.l3_mib << 20)
        plain = np.empty(nbytes, dtype=np.uint8)
        b.ggml_quantize_chunk(typ, wf.ctypes.data, plain.ctypes.data, 0, n, k, None)
        overhead = int(b.ggml_tensor_overhead())
        wctx = b.ggml_init(InitParams(overhead * (copies + 1), None, True))
        cctx = b.ggml_init(InitParams(overhead * (copies + 2) + int(b.ggml_graph_overhead()) * copies, None, True))
        weights = [b.ggml_new_tensor_2d(wctx, typ, k, n) for _ in range(copies)]
        xt = b.ggml_new_tensor_2d(cctx, GGML_F32, k, m)
        outs = [b.ggml_mul_mat(cctx, wt, xt) for wt in weights]
        wbuf = b.ggml_backend_alloc_ctx_tensors_from_buft(wctx, repack)
        cbuf = b.ggml_backend_alloc_ctx_tensors_from_buft(cctx, b.ggml_backend_cpu_buffer_type())
        # The loader's test (`weight_buft_supported`): the device takes the op with its weight in this buffer.
        if not wbuf or not b.ggml_backend_dev_supports_op(dev, outs[0]):
            skipped.append(f"llama.cpp {name} repack {m}x{n}x{k}: no repacked kernel for this type and shape here")
        else:
            b.ggml_log_set(quiet_repack_log, None)
            for wt in weights:
                b.ggml_backend_tensor_set(wt, plain.ctypes.data, 0, nbytes)
            b.ggml_log_set(LogCallback(), None)
            b.ggml_backend_tensor_set(xt, xf.ctypes.data, 0, 4 * k * m)
            graphs = []
            for out in outs:
                graph = b.ggml_new_graph(cctx)
                b.ggml_build_forward_expand(graph, out)
                graphs.append(graph)
            calls = [lambda g=g: b.ggml_backend_graph_compute(backend, g) for g in graphs]
            warm = median_time(calls[:1], reps_for(m, args))
            cold = cold_time(calls, m, args)
            y = np.ctypeslib.as_array(ctypes.cast(b.ggml_get_data(outs[0]), ctypes.POINTER(ctypes.c_float)), (m, n))
            ref = xf @ wf.T
            error = float(np.linalg.norm(y - ref) / np.linalg.norm(ref))
            if not error < 0.2:  # 4-bit weights and 8-bit activations: under 10% on these random weights
                raise RuntimeError(f"llama.cpp {name} repack {m}x{n}x{k}: result off by {error:.0%} from X W^T")
            cases.append(Case("llama.cpp", f"{name} repack", m, n, k, warm, cold, nbytes))
        for buf in (wbuf, cbuf):
            if buf:
                b.ggml_backend_buffer_free(buf)
        b.ggml_free(wctx)
        b.ggml_free(cctx)
    b.ggml_backend_free(backend)
    return cases


# ----------------------------------------------------------------------------------------------------------------
# MLX
# ----------------------------------------------------------------------------------------------------------------


def mlx_cases(n: int, k: int, w: np.ndarray, x: np.ndarray, args: argparse.Namespace) -> list[Case]:
    import mlx.core as mx  # type: ignore[import-not-found]

    mx.set_default_device(mx.cpu)
    cases: list[Case] = []
    # float32: MLX's CPU quantized_matmul is about 30x slower with float16 activations.
    xm = mx.array(x.astype(np.float32))
    for bits in (3, 4):
        wq, scales, biases = mx.quantize(mx.array(w.astype(np.float32)), group_size=64, bits=bits)
        mx.eval(wq, scales, biases)
        nbytes = sum(int(a.nbytes) for a in (wq, scales, biases))
        copies = copies_for(nbytes, args.l3_mib << 20)
        sets = [(wq, scales, biases)] + [(mx.array(wq), mx.array(scales), mx.array(biases)) for _ in range(copies - 1)]

        def call(s: tuple[Any, Any, Any] = sets[0], bits: int = bits) -> None:
            mx.eval(mx.quantized_matmul(xm, s[0], s[1], s[2], transpose=True, group_size=64, bits=bits))

        calls = [lambda s=s: call(s) for s in sets]
        warm, cold = median_time(calls[:1], reps_for(x.shape[0], args)), cold_time(calls, x.shape[0], args)
        cases.append(Case("mlx", f"{bits}-bit g64", x.shape[0], n, k, warm, cold, nbytes))
    return cases


# ----------------------------------------------------------------------------------------------------------------


def table(cases: list[Case], stream: float) -> list[str]:
    lines = [
        f"{'batch':>5} {'shape':<11} {'runner':<10} {'scheme':<20} {'warm ms':>9} {'cold ms':>9} {'cold GB/s':>10} "
        f"{'/stream':>8} {'GFLOP/s':>8} {'warm/q35c':>10} {'cold/q35c':>10}"
    ]
    ours = {(c.m, c.n, c.k): c for c in cases if c.runner == "q35c" and c.scheme == "q3p5"}
    for c in cases:
        base = ours.get((c.m, c.n, c.k))
        warm = f"{c.warm_s / base.warm_s:.2f}" if base else "-"
        cold, cold_ms, cold_gb_s, of_stream = "-", "-", "-", "-"
        if c.cold_s is not None:
            cold_ms, cold_gb_s = f"{c.cold_s * 1e3:.3f}", f"{c.weight_bytes / c.cold_s / 1e9:.2f}"
            of_stream = f"{c.weight_bytes / c.cold_s / stream:.2f}"
            if base is not None and base.cold_s is not None:
                cold = f"{c.cold_s / base.cold_s:.2f}"
        lines.append(
            f"{c.m:>5} {c.n}x{c.k:<6} {c.runner:<10} {c.scheme:<20} {c.warm_s * 1e3:>9.3f} {cold_ms:>9} "
            f"{cold_gb_s:>10} {of_stream:>8} {c.gflop_s(c.warm_s):>8.1f} {warm:>10} {cold:>10}"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", default="4096x4096,11008x4096,4096x11008", help="NxK,... (out x in)")
    parser.add_argument("--batch", default="1,8,512", help="token rows M,... (1: matrix-vector; more: GEMM)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--l3-mib", type=int, default=32, help="L3 size for the cold cycle (default 32)")
    parser.add_argument("--llama-lib", help="the lib/ directory of an installed llama-cpp-python")
    parser.add_argument(
        "--site", help="a site-packages directory holding the peers (llama_cpp, mlx), searched after this one's"
    )
    parser.add_argument("--json", help="write the cases to this JSON file")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--clock",
        choices=tuple(CLOCKS),
        default="wall",
        help="wall (default) or cpu: this process's CPU time, steadier on a machine shared with other work; "
        "meaningful with --threads 1 (every runner then computes on the calling thread)",
    )
    args = parser.parse_args()
    global CLOCK
    CLOCK = CLOCKS[args.clock]
    if args.site:
        sys.path.append(args.site)

    ggml_dir = find_ggml(args.llama_lib)
    ggml = Ggml.load(ggml_dir) if ggml_dir is not None else None
    if ggml is None:
        print(
            "llama.cpp: skipped (llama-cpp-python is not installed; build its sdist outside the repo and pass "
            "--llama-lib DIR/llama_cpp/lib)",
            file=sys.stderr,
        )
    has_mlx = importlib.util.find_spec("mlx") is not None
    if not has_mlx:
        print("mlx: skipped (mlx[cpu] is not importable)", file=sys.stderr)
    rng = np.random.default_rng(args.seed)
    cases: list[Case] = []
    skipped: list[str] = []
    import tempfile

    streams = [stream_bandwidth()]
    with tempfile.TemporaryDirectory(prefix="q35c-race-") as tmp:
        for m in (int(v) for v in args.batch.split(",")):
            for text in args.shapes.split(","):
                n, k = (int(v) for v in text.lower().split("x"))
                w = (rng.standard_normal((n, k)) / np.sqrt(k)).astype(np.float32)
                x = rng.standard_normal((m, k)).astype(np.float32)
                print(f"{m} x {n}x{k}: q35c ...", file=sys.stderr)
                cases += q35c_cases(n, k, w, x, args, Path(tmp) / f"lib{m}x{n}x{k}")
                cases.append(numpy_case(n, k, w, x, args))
                if ggml is not None:
                    print(f"{m} x {n}x{k}: llama.cpp ...", file=sys.stderr)
                    cases += llama_cases(ggml, n, k, w, x, args)
                    cases += llama_repack_cases(ggml, n, k, w, x, args, skipped)
                if has_mlx:
                    print(f"{m} x {n}x{k}: mlx ...", file=sys.stderr)
                    cases += mlx_cases(n, k, w, x, args)
    streams.append(stream_bandwidth())
    stream = statistics.median(streams)
    print(
        f"linear layers Y = X W^T of batch {args.batch} on this CPU ({os.cpu_count()} logical CPUs), "
        f"{args.threads} thread(s), median of {args.reps} ({max(3, args.reps // 3)} above 8 rows), {args.clock} clock"
    )
    print(
        f"stream: a float32 dot product over {STREAM_BYTES >> 20} MiB, {stream / 1e9:.1f} GB/s "
        f"(start and end of the run: {', '.join(f'{v / 1e9:.1f}' for v in streams)}); /stream: cold GB/s over it"
    )
    print("\n".join(table(cases, stream)))
    for line in skipped:
        print(f"skipped: {line}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        meta = {
            "threads": args.threads,
            "reps": args.reps,
            "clock": args.clock,
            "l3_mib": args.l3_mib,
            "cpu_count": os.cpu_count(),
            "batch": [int(v) for v in args.batch.split(",")],
            "load_average": list(os.getloadavg()),
            "stream_gb_s": stream / 1e9,
            "stream_gb_s_start_end": [v / 1e9 for v in streams],
        }
        record = {**meta, "cases": [c.to_json() for c in cases], "skipped": skipped}
        Path(args.json).write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
