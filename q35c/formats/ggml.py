"""llama.cpp's q4_1, q5_0, q5_1, K-quants and iq4 formats as q35c `Format`s, and the opaque ggml types.

The layouts are in `q35c.formats.ggml_blocks`; this module adds the encoders and the `Format` interface.

Encoders. q4_1, q5_0 and q5_1 follow ggml's reference quantizer (and gguf-py's port) operation by operation in
float32, so their bytes equal `gguf.quants.quantize`:
  - q4_1 / q5_1: d = (max - min) / 15 (31), m = min; q = trunc((x - min) / d + 0.5) clipped to [0, 15] ([0, 31]);
  - q5_0: d = p / -16 where p is the value of largest magnitude; q = trunc(x / d + 16.5) clipped to [0, 31], less 16.
The K-quants and iq4 have no encoder in gguf-py (llama.cpp searches scales iteratively); q35c's search each
sub-block's scale (and min) among a few candidates for the least squared error (`q35c.formats.ggml_search`),
store them as ggml does (a float16 block scale d, and dmin, times small integers: sub-scale = round(s / d)
clipped to the stored range, d = the largest sub-block scale over that range), and round the codes against the
stored values (d * sub-scale in float32), so that what decodes is what they aimed at. iq4 picks the nearest of
the 16 table values. docs/formats.md states them exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from q35c.formats.affine import to_fp16
from q35c.formats.base import F16, F32, I8, CodeRange, Format, QuantizedTensor
from q35c.formats.ggml_blocks import (
    CODE_RANGES,
    IQ4_VALUES,
    SUB_SCALE_RANGES,
    Fields,
    decode,
    pack_fields,
    unpack_fields,
)
from q35c.formats.ggml_search import inverse as _inverse
from q35c.formats.ggml_search import scale_and_min, symmetric_scale
from q35c.ir.schemes import GGML_BLOCKS

_IQ4 = np.asarray(IQ4_VALUES, dtype=np.float32)


def _no_nan(values: F32, fallback: float) -> F32:
    return np.where(np.isnan(values), np.float32(fallback), values).astype(np.float32)


def _encode_small(name: str, w: F32) -> Fields:
    """q4_1, q5_0, q5_1: gguf-py's quantizers, bit for bit."""
    n, k = w.shape
    blocks = w.reshape(n, k // 32, 32)
    with np.errstate(invalid="ignore", over="ignore"):
        if name == "q5_0":
            peak = np.take_along_axis(blocks, np.abs(blocks).argmax(axis=-1)[..., None], axis=-1)
            d = peak / np.float32(-16)
            q = _no_nan(np.trunc(blocks * _inverse(d) + np.float32(16.5)), 16.0)
            codes = np.clip(q, 0, 31).astype(np.int16) - 16
            return Fields(codes.astype(np.int8).reshape(n, k), _fp16(d[..., 0], "scale"))
        top = 15 if name == "q4_1" else 31
        lo, hi = blocks.min(axis=-1, keepdims=True), blocks.max(axis=-1, keepdims=True)
        d = (hi - lo) / np.float32(top)
        q = _no_nan(np.trunc((blocks - lo) * _inverse(d) + np.float32(0.5)), 0.0)
    codes = np.clip(q, 0, top).astype(np.int8)
    return Fields(codes.reshape(n, k), _fp16(d[..., 0], "scale"), _fp16(lo[..., 0], "min"))


def _fp16(values: F32, what: str) -> F16:
    return to_fp16(values.astype(np.float64), what, values)


def _sub_scales(s: F32, top: int, lo: int) -> tuple[F16, NDArray[np.int16]]:
    """Block scale d = max |s| / top as float16 and the integers round(s / d) in [lo, top] ([N, B, subs])."""
    d = _fp16(np.abs(s).max(axis=-1) / np.float32(top), "block scale")
    d32 = d.astype(np.float32)[..., None]
    with np.errstate(invalid="ignore"):
        ints = np.where(d32 > 0, np.rint(s * _inverse(d32)), 0)
    return d, np.clip(_no_nan(ints, 0.0), lo, top).astype(np.int16)


_IQ4_MIDPOINTS = (_IQ4[1:] + _IQ4[:-1]) / np.float32(2)


def _nearest_iq4(x: F32) -> I8:
    """The index of the table value nearest to x (the lower one on a tie)."""
    return np.searchsorted(_IQ4_MIDPOINTS, x, side="left").astype(np.int8)


def _encode_k(name: str, w: F32) -> Fields:
    """The K-quants, iq4_nl and iq4_xs (see the module docstring)."""
    block, _, g, _ = GGML_BLOCKS[name]
    n, k = w.shape
    x = w.reshape(n, k // block, block // g, g)
    lo_code, hi_code = CODE_RANGES[name]
    if name == "iq4_nl":
        d = _fp16(symmetric_scale(x[:, :, 0], IQ4_VALUES[0], 0, 0, _IQ4), "scale")
        scaled = x[:, :, 0] * _inverse(d.astype(np.float32))[..., None]
        return Fields(_nearest_iq4(scaled).reshape(n, k), d)
    s_lo, s_hi = SUB_SCALE_RANGES[name]
    if name in ("q2_k", "q4_k", "q5_k"):
        sub_scale, sub_min = scale_and_min(x, hi_code)
        d, sc = _sub_scales(sub_scale, s_hi, 0)
        dmin, mn = _sub_scales(sub_min, s_hi, 0)
        scale = d.astype(np.float32)[..., None] * sc.astype(np.float32)
        offset = dmin.astype(np.float32)[..., None] * mn.astype(np.float32)
        with np.errstate(invalid="ignore", over="ignore"):
            q = _no_nan(np.rint((x + offset[..., None]) * _inverse(scale)[..., None]), 0.0)
        codes = np.clip(q, lo_code, hi_code).astype(np.int8)
        return Fields(codes.reshape(n, k), d, dmin, sc.reshape(n, -1), mn.reshape(n, -1))
    iq4 = name == "iq4_xs"
    most_negative = IQ4_VALUES[0] if iq4 else lo_code
    d, sc = _sub_scales(symmetric_scale(x, most_negative, lo_code, hi_code, _IQ4 if iq4 else None), s_hi, s_lo)
    scale = d.astype(np.float32)[..., None] * sc.astype(np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        scaled = _no_nan(x * _inverse(scale)[..., None], 0.0)
    codes = _nearest_iq4(scaled) if iq4 else np.clip(np.rint(scaled), lo_code, hi_code).astype(np.int8)
    return Fields(codes.reshape(n, k), d, None, sc.reshape(n, -1))


def encode(name: str, w: F32) -> Fields:
    """Weights [N, K] (finite, K a multiple of the block) -> the fields of the format."""
    return _encode_small(name, w) if name in ("q4_1", "q5_0", "q5_1") else _encode_k(name, w)


@dataclass(frozen=True)
class GgmlFormat(Format):
    """q4_1, q5_0, q5_1, q2_k, q3_k, q4_k, q5_k, q6_k, iq4_nl, iq4_xs: llama.cpp blocks, bit-exact with ggml."""

    @property
    def code_ranges(self) -> tuple[CodeRange, CodeRange]:
        return (CODE_RANGES[self.scheme.name],) * 2

    def quantize(self, w: NDArray[Any]) -> QuantizedTensor:
        a = self._weights(w)
        packed = pack_fields(self.scheme.name, encode(self.scheme.name, a))
        return QuantizedTensor(packed, None, None, (a.shape[0], a.shape[1]), self.scheme)

    def dequantize(self, qt: QuantizedTensor) -> F32:
        self._check_tensor(qt)
        return decode(self.scheme.name, qt.packed)

    def pack(self, codes: NDArray[Any], scale: NDArray[Any] | None = None) -> NDArray[Any]:
        """Codes [N, K] -> block bytes with every block scale 1 (or, for the blocks of 32, `scale` [N, K/32]),
        every sub-block scale 1 and every min 0."""
        c = self._codes(codes)
        name = self.scheme.name
        block, _, g, _ = GGML_BLOCKS[name]
        n, k = c.shape
        if scale is not None and block != 32:
            raise ValueError(f"{self.name}: pack takes a scale only for the formats with blocks of 32")
        d = np.ones((n, k // block), dtype=np.float16) if scale is None else np.asarray(scale, dtype=np.float16)
        if d.shape != (n, k // block):
            raise ValueError(f"{self.name}: scale must have shape {(n, k // block)}, got {d.shape}")
        with_min = name in ("q4_1", "q5_1", "q2_k", "q4_k", "q5_k")
        dmin = np.zeros_like(d) if with_min else None
        sub = None if block == 32 else np.ones((n, k // g), dtype=np.int16)
        mn = np.zeros((n, k // g), dtype=np.int16) if with_min and block != 32 else None
        return pack_fields(name, Fields(c, d, dmin, sub, mn))

    def unpack(self, packed: NDArray[Any]) -> I8:
        return unpack_fields(self.scheme.name, self._packed(packed)).codes


@dataclass(frozen=True)
class OpaqueFormat(Format):
    """A ggml type q35c stores by size only (`q35c.ir.schemes.OPAQUE_BLOCKS`): every numeric operation fails."""

    def _refuse(self) -> ValueError:
        from q35c.util.errors import Q35Error

        bits = self.scheme.code_bits
        return Q35Error(
            f"{self.scheme.name} is a ggml type q35c knows only by size ({bits:g} bits per weight), not by its bit "
            "layout: it cannot be encoded, decoded or unpacked (choose another scheme with --quant)"
        )

    def quantize(self, w: NDArray[Any]) -> QuantizedTensor:
        raise self._refuse()

    def dequantize(self, qt: QuantizedTensor) -> F32:
        raise self._refuse()

    def pack(self, codes: NDArray[Any], scale: NDArray[Any] | None = None) -> NDArray[Any]:
        raise self._refuse()

    def unpack(self, packed: NDArray[Any]) -> I8:
        raise self._refuse()
