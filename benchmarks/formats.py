"""Throughput of the numpy reference formats: quantize, pack, unpack and dequantize of one weight matrix.

    python benchmarks/formats.py [--n 4096 --k 4096 --repeat 3]

Prints MB of float32 weights processed per second (N * K * 4 bytes / best time of --repeat runs) for every
format, the relative RMS error of the round trip, and the q3p5 dense quantize+pack time against its 1 s target.
`quantize` is the whole path from float weights to the packed QuantizedTensor (packing included); `pack` and
`unpack` convert between int8 codes and the stored array; `dequantize` unpacks and decodes.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from q35c import formats

SPECS = (
    "fp16",
    "int8",
    "int8:g=128",
    "int4:g=128",
    "q3p5",
    "q3p5:g=64",
    "q3p5:container=byte",
    "q4_0",
    "q8_0",
)
TARGET_SPEC = "q3p5"
TARGET_SECONDS = 1.0


def best_time(fn: Callable[[], Any], repeat: int) -> float:
    """The fastest of `repeat` runs, in seconds (the least disturbed by other work on the machine)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bench(spec: str, w: np.ndarray, repeat: int) -> tuple[list[float | None], float]:
    """Seconds for quantize, pack, unpack, dequantize (None where it does not apply) and the relative RMS error."""
    fmt = formats.get(spec)
    qt = fmt.quantize(w)
    t_quant = best_time(lambda: fmt.quantize(w), repeat)
    t_pack: float | None = None
    t_unpack: float | None = None
    if fmt.scheme.is_quantized:
        codes = fmt.codes(qt)
        scale = qt.scale if fmt.scheme.block_scales else None  # q4_0/q8_0 embed their scales in the blocks
        t_pack = best_time(lambda: fmt.pack(codes, scale), repeat)
        t_unpack = best_time(lambda: fmt.unpack(qt.packed), repeat)
    t_dequant = best_time(lambda: fmt.dequantize(qt), repeat)
    w_hat = fmt.dequantize(qt)
    rel_rms = float(np.sqrt(np.mean((w_hat - w) ** 2) / np.mean(w**2)))
    return [t_quant, t_pack, t_unpack, t_dequant], rel_rms


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=4096, help="rows (out_features), default 4096")
    parser.add_argument("--k", type=int, default=4096, help="columns (in_features), default 4096")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; the best is kept")
    args = parser.parse_args()
    w = (np.random.default_rng(0).standard_normal((args.n, args.k)) * 0.02).astype(np.float32)
    megabytes = w.nbytes / 1e6
    print(f"weights: {args.n} x {args.k} float32 = {megabytes:.1f} MB; MB/s of float32 weights, best of {args.repeat}")
    print()
    header = (
        f"{'format':<28} {'bits/w':>7} {'quantize':>10} {'pack':>10} {'unpack':>10} {'dequantize':>10} {'rel RMS':>9}"
    )
    print(header)
    print("-" * len(header))
    target_time = 0.0
    for spec in SPECS:
        fmt = formats.get(spec)
        times, rel_rms = bench(spec, w, args.repeat)
        cells = [f"{megabytes / t:10.0f}" if t is not None else f"{'-':>10}" for t in times]
        print(f"{fmt.name:<28} {fmt.bits_per_weight(args.k):7.3f} {' '.join(cells)} {rel_rms:9.2e}")
        if spec == TARGET_SPEC:
            target_time = times[0] or 0.0
    verdict = "OK" if target_time < TARGET_SECONDS else "TOO SLOW"
    print()
    print(
        f"{formats.get(TARGET_SPEC).name} quantize+pack of {args.n} x {args.k}: {target_time:.3f} s "
        f"(target < {TARGET_SECONDS:g} s): {verdict}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
