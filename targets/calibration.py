"""Efficiency constants: the few numbers per target family that are fitted rather than looked up.

Each family has at most three (`Efficiency`): the fraction of its memory bandwidth it achieves (`bandwidth`),
the fraction of its compute peaks (`compute`, matrix and vector units alike), and a fixed overhead per kernel
launch (`kernel_overhead_s`). They are chosen ONLY from the published measurements in `ROWS` (each with its
software and source), by `fit`:

    minimise   sum over the family's rows of  log(predicted_tok_s / measured_tok_s)^2
    subject to each constant within its physical bounds (`BOUNDS`)

by coordinate descent: each constant in turn is set by a golden-section search on its range (the efficiencies
on a log scale), holding the others; ten sweeps. The bounds are what hardware allows, not what fits:

- bandwidth in [0.5, 1]: streaming kernels reach 60-95% of a DRAM/HBM peak (STREAM, vendor bandwidth tests);
  below half the peak a kernel is not bandwidth-bound but bound by something the model should name;
- compute in [0.1, 1]: tuned GEMMs reach 60-90% of a tensor-core peak, small or dequantizing kernels less;
  below a tenth the unit is mostly idle (launch, synchronisation, occupancy), again something to name;
- kernel_overhead_s in [0, 50 us]: a CUDA or Metal launch with its tail is 2-10 us; 50 us allows a
  synchronising launch, not a hidden per-token cost.

How well the rows pin each constant down (leave-one-out errors, constants resting on a single row) is
`targets.identification`, printed by `benchmarks/fidelity.py --loo`. The prediction of a row is the full cost
model on the IR compiled for that row (`benchmarks/fidelity.py` runs the fit again and prints the table).
Families with no rows keep 1.0, 1.0 and 0 s (no fudge):

- apple: rows c1-c6 (M2 Max, llama.cpp Metal: Llama-2-7B fp16, q8_0, q4_0; decode tg128 and prefill pp512).
- gpu: rows c7-c11 (A100 SXM 80 GB: llama.cpp CUDA q4_0 decode and pp512; gpt-fast fp16, int8, int4:g=32
  decode). The gpt-fast rows were measured power-capped at 330 W; the cap is not modelled.
- groq: no rows. Nothing is fitted; the statically scheduled chip is modelled at its derived peak rates.
- host: no rows. Its bandwidth and FLOPS are measured on the machine (already achieved rates).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

GOLDEN = (math.sqrt(5) - 1) / 2
KNOBS = ("bandwidth", "compute", "kernel_overhead_s")
BOUNDS: dict[str, tuple[float, float]] = {
    "bandwidth": (0.5, 1.0),
    "compute": (0.1, 1.0),
    "kernel_overhead_s": (0.0, 50e-6),
}


@dataclass(frozen=True)
class Efficiency:
    """Achieved fractions of peak bandwidth and compute, and the fixed time each kernel launch adds."""

    bandwidth: float = 1.0
    compute: float = 1.0
    kernel_overhead_s: float = 0.0


@dataclass(frozen=True)
class Row:
    """One published measurement (a row of calibration.csv)."""

    id: str
    target: str
    model: str
    scheme: str
    phase: str
    batch: int
    prompt: int
    gen: int
    devices: int
    measured_tok_s: float
    source: str


# Published measurements (batch 1 unless stated), verbatim; software and source abbreviated into one field.
ROWS: tuple[Row, ...] = (
    Row("c1", "m2-max", "llama-2-7b", "fp16", "decode", 1, 0, 128, 1, 24.65, "llama.cpp 8e672ef Metal; disc. 4167"),
    Row("c2", "m2-max", "llama-2-7b", "q8_0", "decode", 1, 0, 128, 1, 41.83, "llama.cpp 8e672ef Metal; disc. 4167"),
    Row("c3", "m2-max", "llama-2-7b", "q4_0", "decode", 1, 0, 128, 1, 65.95, "llama.cpp 8e672ef Metal; disc. 4167"),
    Row("c4", "m2-max", "llama-2-7b", "fp16", "prefill", 1, 512, 0, 1, 755.67, "llama.cpp 8e672ef Metal; disc. 4167"),
    Row("c5", "m2-max", "llama-2-7b", "q8_0", "prefill", 1, 512, 0, 1, 677.91, "llama.cpp 8e672ef Metal; disc. 4167"),
    Row("c6", "m2-max", "llama-2-7b", "q4_0", "prefill", 1, 512, 0, 1, 671.31, "llama.cpp 8e672ef Metal; disc. 4167"),
    Row("c7", "a100-sxm", "llama-2-7b", "q4_0", "decode", 1, 0, 128, 1, 190.88, "llama.cpp CUDA 2025; disc. 15013"),
    Row("c8", "a100-sxm", "llama-2-7b", "q4_0", "prefill", 1, 512, 0, 1, 4850.0, "llama.cpp CUDA 2025; disc. 15013"),
    Row("c9", "a100-sxm", "llama-2-7b", "fp16", "decode", 1, 0, 200, 1, 104.9, "gpt-fast, 330 W cap; README"),
    Row("c10", "a100-sxm", "llama-2-7b", "int8", "decode", 1, 0, 200, 1, 155.58, "gpt-fast int8; README"),
    Row("c11", "a100-sxm", "llama-2-7b", "int4:g=32", "decode", 1, 0, 200, 1, 196.80, "gpt-fast int4; README"),
)

FAMILY_ROWS: dict[str, tuple[str, ...]] = {
    "apple": ("c1", "c2", "c3", "c4", "c5", "c6"),
    "gpu": ("c7", "c8", "c9", "c10", "c11"),
    "groq": (),
    "host": (),
}

# The result of `fit` over FAMILY_ROWS (re-run and compared by benchmarks/fidelity.py).
FITTED: dict[str, Efficiency] = {
    "apple": Efficiency(bandwidth=0.907, compute=0.787, kernel_overhead_s=8.97e-06),
    "gpu": Efficiency(bandwidth=0.629, compute=0.615, kernel_overhead_s=8.89e-07),
}


def efficiency_for(family: str) -> Efficiency:
    """The efficiency constants of a target family (1.0, 1.0, 0 s where no calibration row exists)."""
    return FITTED.get(family, Efficiency())


def rows_for(family: str) -> tuple[Row, ...]:
    return tuple(r for r in ROWS if r.id in FAMILY_ROWS.get(family, ()))


def log_error(predicted: float, measured: float) -> float:
    return math.log(predicted / measured)


def _golden(f: Callable[[float], float], lo: float, hi: float, steps: int = 40) -> float:
    """The minimum of a unimodal f on [lo, hi] by golden-section search."""
    a, b = lo, hi
    c, d = b - GOLDEN * (b - a), a + GOLDEN * (b - a)
    fc, fd = f(c), f(d)
    for _ in range(steps):
        if fc <= fd:
            b, d, fd = d, c, fc
            c = b - GOLDEN * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + GOLDEN * (b - a)
            fd = f(d)
    return (a + b) / 2


def fit(
    rows: Sequence[Row], predict: Callable[[Row, Efficiency], float], start: Efficiency | None = None, sweeps: int = 10
) -> Efficiency:
    """The constants minimising the summed squared log error of `predict(row, efficiency)` (tok/s) over `rows`.

    Coordinate descent, golden-section per constant within `BOUNDS`: efficiencies searched as log(e), the
    overhead linearly. A constant that no row depends on keeps its start value (clamped to its bounds).
    """
    best = clamped(start or Efficiency())
    if not rows:
        return best

    def loss(e: Efficiency) -> float:
        return sum(log_error(predict(r, e), r.measured_tok_s) ** 2 for r in rows)

    for _ in range(sweeps):
        before = loss(best)
        for knob in KNOBS:
            best = _search(best, knob, loss)
        if before - loss(best) < 1e-12:
            break
    return best


def _search(current: Efficiency, knob: str, loss: Callable[[Efficiency], float]) -> Efficiency:
    """`current` with one constant set by golden-section search, kept only if the loss improves."""
    lo, hi = BOUNDS[knob]
    if knob == "kernel_overhead_s":
        x = _golden(lambda v: loss(replace(current, kernel_overhead_s=v)), lo, hi)
        candidate = replace(current, kernel_overhead_s=x)
    else:
        x = _golden(lambda v: loss(replace(current, **{knob: math.exp(v)})), math.log(lo), math.log(hi))
        candidate = replace(current, **{knob: math.exp(x)})
    return _keep_better(current, candidate, loss)


def _keep_better(old: Efficiency, new: Efficiency, loss: Callable[[Efficiency], float]) -> Efficiency:
    return new if loss(new) < loss(old) else old


def clamped(e: Efficiency) -> Efficiency:
    """`e` with each constant moved into its bounds (`BOUNDS`)."""
    return Efficiency(**{k: min(max(getattr(e, k), BOUNDS[k][0]), BOUNDS[k][1]) for k in KNOBS})


def within_bounds(e: Efficiency) -> bool:
    """Whether every constant of `e` lies within its physical bounds (`BOUNDS`)."""
    return all(BOUNDS[k][0] <= getattr(e, k) <= BOUNDS[k][1] for k in KNOBS)


def rounded(e: Efficiency) -> Efficiency:
    """Constants rounded to the precision they are stored with (3 significant digits)."""
    return Efficiency(float(f"{e.bandwidth:.3g}"), float(f"{e.compute:.3g}"), float(f"{e.kernel_overhead_s:.3g}"))
