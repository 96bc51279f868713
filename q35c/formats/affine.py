"""The group-affine formats: int8 (symmetric) and int4 (min-max, 8 codes per uint32), and the group machinery
they share with q3p5 (`GroupFormat`: per-group float16 scale and offset, round to nearest).

Every one of these schemes decodes an integer code q of weight (n, k) as w = offset + step * q, with one
float16 scale (and, for the asymmetric ones, one float16 offset) per group of g consecutive weights along K.
q3p5 has two slots per pair, the odd one with twice the step (`Scheme.slot_steps`); int4 and int8 have a single
slot. So quantizing is: pick scale/offset per group, round them to float16, then
q = clip(round((w - offset) / step), lo, hi), with q = 0 in groups whose scale is 0.
Ties round to even (numpy's rint); docs/formats.md only asks for round to nearest.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from q35c.formats.base import (
    F16,
    F32,
    FP16_MAX,
    I8,
    U32,
    CodeRange,
    Format,
    QuantizedTensor,
    bytes_to_words,
    first_index,
    sign_extend,
    words_to_bytes,
)

# -- encoders and decoders --


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


# -- int4 nibbles --


def pack_nibbles(codes: I8) -> U32:
    """int4: codes [N, K] in [-8, 7] -> [N, K/8] uint32, code j of a word in bits [4j, 4j+4).

    Two nibbles per byte (the even code low) and little-endian bytes give exactly that word layout.
    """
    nib = np.ascontiguousarray(codes, dtype=np.int8).view(np.uint8) & np.uint8(0xF)
    return bytes_to_words(nib[:, 0::2] | (nib[:, 1::2] << np.uint8(4)))


def unpack_nibbles(words: U32) -> I8:
    """int4: [N, M] uint32 words -> codes [N, 8M] in [-8, 7]."""
    data = words_to_bytes(words)
    nib = np.empty((data.shape[0], data.shape[1] * 2), dtype=np.uint8)
    nib[:, 0::2] = data & np.uint8(0xF)
    nib[:, 1::2] = data >> np.uint8(4)
    return sign_extend(nib, 4)


# -- formats --


@dataclass(frozen=True)
class GroupFormat(Format):
    """Schemes with float16 scale (and offset) arrays per group along K: int8, int4, q3p5.

    Per slot (`Scheme.slot_steps`: q3p5 the even and the odd weight of a pair, others one slot) a step
    multiplier and a code range (`code_ranges`)."""

    def _encode(self, groups: F32) -> tuple[F16, F16 | None]:
        return minmax_scale_offset(groups)

    def _patterns(self, g: int) -> tuple[F32, F32, F32]:
        """Step multiplier and code range at each position of a group (positions alternate slots)."""
        steps = self.scheme.slot_steps
        ranges = self.code_ranges[: len(steps)]
        lo = slot_pattern([r[0] for r in ranges], g)
        hi = slot_pattern([r[1] for r in ranges], g)
        return slot_pattern(steps, g), lo, hi

    def quantize(self, w: NDArray[Any]) -> QuantizedTensor:
        a = self._weights(w)
        n, k = a.shape
        g = self.scheme.group_size(k)
        groups = a.reshape(n, k // g, g)
        scale, offset = self._encode(groups)
        codes = round_to_grid(groups, scale, offset, *self._patterns(g))
        return QuantizedTensor(self._pack_raw(codes.reshape(n, k)), scale, offset, (n, k), self.scheme)

    def dequantize(self, qt: QuantizedTensor) -> F32:
        self._check_tensor(qt)
        assert qt.scale is not None
        n, k = qt.shape
        g = self.scheme.group_size(k)
        codes = self.unpack(qt.packed).reshape(n, k // g, g)
        step = self._patterns(g)[0]
        return decode_grid(codes, qt.scale, qt.offset, step).reshape(n, k)

    def pack(self, codes: NDArray[Any], scale: NDArray[Any] | None = None) -> NDArray[Any]:
        self._no_scale(self.name, scale)
        return self._pack_raw(self._codes(codes))

    @abstractmethod
    def _pack_raw(self, codes: I8) -> NDArray[Any]:
        """Pack codes already known to be valid."""


@dataclass(frozen=True)
class Int8Format(GroupFormat):
    """int8: symmetric, w = scale * q with q in [-127, 127]; the codes are stored as they are."""

    @property
    def code_ranges(self) -> tuple[CodeRange, CodeRange]:
        return (-127, 127), (-127, 127)

    def _encode(self, groups: F32) -> tuple[F16, F16 | None]:
        return absmax_scale(groups), None

    def _pack_raw(self, codes: I8) -> NDArray[Any]:
        return codes.copy()

    def unpack(self, packed: NDArray[Any]) -> I8:
        p = self._packed(packed)
        bad = p == -128
        if bad.any():
            i, j = first_index(bad)
            raise ValueError(f"{self.name}: {int(bad.sum())} codes are -128 (valid: [-127, 127]); first at [{i}, {j}]")
        return p.copy()


@dataclass(frozen=True)
class Int4Format(GroupFormat):
    """int4: asymmetric min-max, w = offset + scale * q, q in [-8, 7], 8 codes per uint32 (LSB first)."""

    @property
    def code_ranges(self) -> tuple[CodeRange, CodeRange]:
        return (-8, 7), (-8, 7)

    def _pack_raw(self, codes: I8) -> NDArray[Any]:
        return pack_nibbles(codes)

    def unpack(self, packed: NDArray[Any]) -> I8:
        return unpack_nibbles(self._packed(packed))
