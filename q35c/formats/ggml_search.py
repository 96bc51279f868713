"""Scale search for q35c's K-quant and iq4 encoders: per sub-block, the scale (and min) of least squared error.

llama.cpp's quantizers search each sub-block's scale instead of taking it from the extremes; so do these, more
simply, vectorized over all sub-blocks at once. The candidates are the extreme-based scale times `FACTORS`
(0.6 to 1.1 in steps of 0.05: smaller scales clip the largest weights but resolve the rest better):

- symmetric (q3_k, q6_k, iq4_nl, iq4_xs): s0 = p / c for the value p of largest magnitude and the most negative
  code value c (-4, -32, -127); each candidate s rounds x / s to the nearest code (or table value) and the one
  with the least squared error wins;
- with a min (q2_k, q4_k, q5_k: w = s q - m, s >= 0, m >= 0): each candidate s rounds (x - lo) / s to codes
  q in [0, qmax], then s and m are refitted to those codes by least squares (m clamped at 0, as ggml's mins are
  non-negative), and the pair with the least squared error wins.

The chosen scales are then stored as ggml stores them (a float16 block scale times small integers), and the
codes recomputed against the stored values (`q35c.formats.ggml`).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from q35c.formats.base import F32

FACTORS = np.linspace(0.6, 1.1, 11, dtype=np.float32)  # steps of 0.05


def inverse(d: F32) -> F32:
    """1 / d, 0 where d is 0 (or 1 / d overflows)."""
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        out = np.where(d == 0, np.float32(0), np.float32(1) / d).astype(np.float32)
    return np.where(np.isfinite(out), out, np.float32(0)).astype(np.float32)


def symmetric_scale(x: F32, most_negative: float, lo: int, hi: int, table: NDArray[np.float32] | None) -> F32:
    """x [..., g] -> the scale per sub-block [...] whose rounded codes (table values) fit x best."""
    peak = np.take_along_axis(x, np.abs(x).argmax(axis=-1)[..., None], axis=-1)[..., 0]
    base = (peak / np.float32(most_negative)).astype(np.float32)
    best_s, best_err = base, np.full(base.shape, np.inf, dtype=np.float32)
    for factor in FACTORS:
        s = base * factor
        y = x * inverse(s)[..., None]
        if table is None:
            v = np.clip(np.rint(y), lo, hi)
        else:
            v = table[np.searchsorted((table[1:] + table[:-1]) / np.float32(2), y, side="left")]
        err = np.square(x - s[..., None] * v).sum(axis=-1)
        better = err < best_err
        best_s, best_err = np.where(better, s, best_s), np.where(better, err, best_err)
    return best_s.astype(np.float32)


def scale_and_min(x: F32, qmax: int) -> tuple[F32, F32]:
    """x [..., g] -> (s, m) per sub-block [...] with s, m >= 0, fitting x ~ s q - m for q in [0, qmax]."""
    lo = np.minimum(x.min(axis=-1), np.float32(0))
    span = (x.max(axis=-1) - lo) / np.float32(qmax)
    best_s, best_m = span.astype(np.float32), (-lo).astype(np.float32)
    best_err = np.full(lo.shape, np.inf, dtype=np.float32)
    mean_x = x.mean(axis=-1)
    for factor in FACTORS:
        s = span * factor
        q = np.clip(np.rint((x - lo[..., None]) * inverse(s)[..., None]), 0, qmax).astype(np.float32)
        mean_q = q.mean(axis=-1)
        dq = q - mean_q[..., None]
        var = np.square(dq).sum(axis=-1)
        a = np.where(var > 0, (dq * (x - mean_x[..., None])).sum(axis=-1) * inverse(var), s)
        b = mean_x - a * mean_q
        # The min must be >= 0 (b <= 0): refit the scale alone where it is not.
        sq = np.square(q).sum(axis=-1)
        a = np.where(b > 0, np.where(sq > 0, (q * x).sum(axis=-1) * inverse(sq), s), a)
        b = np.minimum(b, np.float32(0))
        a = np.maximum(a, np.float32(0))
        err = np.square(x - (a[..., None] * q + b[..., None])).sum(axis=-1)
        better = err < best_err
        best_s, best_m = np.where(better, a, best_s), np.where(better, -b, best_m)
        best_err = np.where(better, err, best_err)
    return best_s.astype(np.float32), best_m.astype(np.float32)
