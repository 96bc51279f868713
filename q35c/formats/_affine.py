"""Group-wise round-to-nearest encoders shared by int8, int4 and q3p5 (DESIGN section 3).

Every one of these schemes decodes an integer code q of weight (n, k) as w = offset + step * q, with one
float16 scale (and, for the asymmetric ones, one float16 offset) per group of g consecutive weights along K.
q3p5 has two slots per pair, the odd one with twice the step; int4 and int8 have a single slot.
So quantizing is: pick scale/offset per group, round them to float16, then
q = clip(round((w - offset) / step), lo, hi), with q = 0 in groups whose scale is 0.
Ties round to even (numpy's rint); DESIGN only asks for round to nearest.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

F16 = NDArray[np.float16]
F32 = NDArray[np.float32]
I8 = NDArray[np.int8]

FP16_MAX = float(np.finfo(np.float16).max)


def to_fp16(values: NDArray[np.float64], what: str, groups_lo: NDArray[np.float32]) -> F16:
    """Round metadata to float16; ValueError, naming the first group, if any of it overflows."""
    with np.errstate(over="ignore"):
        out = values.astype(np.float16)
    bad = ~np.isfinite(out)
    if bad.any():
        n, j = (int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"{int(bad.sum())} group {what}s overflow float16 (max {FP16_MAX:g}); first in row {n}, "
            f"group {j}: {what} {float(values[n, j]):.6g} (group minimum {float(groups_lo[n, j]):.6g}); "
            "weights must lie within the float16 range"
        )
    return out


def minmax_scale_offset(groups: F32) -> tuple[F16, F16]:
    """Asymmetric min-max: s = (hi - lo) / 15, o = lo + 8 s per group of [N, G, g], both as float16.

    Computed in float64 from the exact float32 min and max, so the only rounding is the float16 one.
    """
    lo = groups.min(axis=-1)
    hi = groups.max(axis=-1)
    s = (hi.astype(np.float64) - lo) / 15
    o = lo + 8 * s
    return to_fp16(s, "scale", lo), to_fp16(o, "offset", lo)


def absmax_scale(groups: F32) -> F16:
    """Symmetric: s = max |w| / 127 per group of [N, G, g], as float16."""
    peak = np.abs(groups).max(axis=-1)
    return to_fp16(peak.astype(np.float64) / 127, "scale", groups.min(axis=-1))


def slot_pattern(values: Sequence[float], g: int) -> F32:
    """A per-slot value repeated across a group of g: (1, 2) -> [1, 2, 1, 2, ...] (length g)."""
    return np.tile(np.asarray(values, dtype=np.float32), g // len(values))


def round_to_grid(groups: F32, scale: F16, offset: F16 | None, step: F32, lo: F32, hi: F32) -> I8:
    """Codes for weights `groups` [N, G, g] with scale and offset [N, G].

    Position i of a group has step scale * step[i] and code range [lo[i], hi[i]] (see `slot_pattern`).
    Dividing by scale and then by step[i] (1 or 2) rounds exactly like dividing by their product.
    """
    s = scale.astype(np.float32)[:, :, None]
    zero = s == 0
    q = groups.copy() if offset is None else groups - offset.astype(np.float32)[:, :, None]
    q /= np.where(zero, np.float32(1), s)
    if np.any(step != 1):
        q /= step
    np.rint(q, out=q)
    np.clip(q, lo, hi, out=q)
    if zero.any():
        np.copyto(q, np.float32(0), where=zero)
    return q.astype(np.int8)


def decode_grid(codes: I8, scale: F16, offset: F16 | None, step: F32) -> F32:
    """w = offset + scale * step[i] * code for codes [N, G, g]; returns float32 [N, G, g].

    scale * step * code is exact in float32 (11-bit scale times a small integer), so the result is the
    exactly rounded float32 of the decode rule whatever the evaluation order.
    """
    w = codes.astype(np.float32)
    if np.any(step != 1):
        w *= step
    w *= scale.astype(np.float32)[:, :, None]
    if offset is not None:
        w += offset.astype(np.float32)[:, :, None]
    return w
