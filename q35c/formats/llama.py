"""llama.cpp's q4_0 and q8_0 block formats, bit-exact with ggml's reference quantizer.

A block covers 32 consecutive weights of a row and is stored as a little-endian float16 scale d followed by
the codes: q4_0 has 16 bytes where byte i holds element i in its low nibble and element i+16 in its high
nibble, each nibble being code+8; q8_0 has 32 int8 codes. Decoding is w = d * code. Block size and bytes per
block are the Scheme's (`storage_ratio`, from `q35c.ir.schemes.LLAMA_BLOCK_BYTES`).

The encoders follow ggml-quants.c (and gguf-py's port of it) operation by operation, in float32, because the
byte-for-byte equality with llama.cpp files depends on the exact rounding: q4_0 takes d = m / -8 where m is
the signed value of largest magnitude and rounds by truncating x/d + 8.5; q8_0 takes d = max|x| / 127 and
rounds half away from zero. The scale is computed in float32 and only then stored as float16.
The block functions do no validation: `LlamaBlockFormat` checks shapes, finiteness and code ranges first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from q35c.formats.affine import to_fp16
from q35c.formats.base import F16, F32, I8, U8, CodeRange, Format, QuantizedTensor
from q35c.ir.schemes import LLAMA_BLOCK as BLOCK
from q35c.ir.schemes import LLAMA_BLOCK_BYTES as BLOCK_BYTES


def _inverse(d: F32) -> F32:
    """1/d, with 0 where d is 0 (as ggml does: an all-zero block gets codes for 0)."""
    with np.errstate(divide="ignore", over="ignore"):
        return np.where(d == 0, np.float32(0), np.float32(1) / d).astype(np.float32)


def _finite_or(values: F32, fallback: float) -> F32:
    """Replace NaN (0 * inf for a block so tiny that 1/d overflows; its float16 scale is 0 anyway)."""
    if np.isnan(values).any():
        values = np.where(np.isnan(values), np.float32(fallback), values)
    return values


def encode_q4_0(w: F32) -> tuple[I8, F32]:
    """Weights [N, K] (K % 32 == 0) -> codes [N, K] in [-8, 7] and float32 block scales [N, K/32]."""
    n, k = w.shape
    blocks = w.reshape(n, k // BLOCK, BLOCK)
    peak_at = np.abs(blocks).argmax(axis=-1)[:, :, None]
    d = np.take_along_axis(blocks, peak_at, axis=-1) / np.float32(-8)
    with np.errstate(invalid="ignore", over="ignore"):
        biased = _finite_or(np.trunc(blocks * _inverse(d) + np.float32(8.5)), 8.0)
    codes = np.clip(biased, 0, 15).astype(np.int8) - np.int8(8)
    return codes.reshape(n, k), d[:, :, 0]


def encode_q8_0(w: F32) -> tuple[I8, F32]:
    """Weights [N, K] (K % 32 == 0) -> codes [N, K] in [-127, 127] and float32 block scales [N, K/32]."""
    n, k = w.shape
    blocks = w.reshape(n, k // BLOCK, BLOCK)
    d = np.abs(blocks).max(axis=-1, keepdims=True) / np.float32(127)
    with np.errstate(invalid="ignore", over="ignore"):
        x = _finite_or(blocks * _inverse(d), 0.0)
    # Round half away from zero, exactly: the fractional part of |x| is exact in float32.
    a = np.abs(x)
    whole = np.floor(a)
    rounded = np.copysign(whole + (a - whole >= np.float32(0.5)), x)
    return rounded.astype(np.int8).reshape(n, k), d[:, :, 0]


def pack_blocks(name: str, codes: I8, scale: F16) -> U8:
    """Codes [N, K] and float16 block scales [N, K/32] -> block bytes [N, K/32 * (18 or 34)]."""
    n, k = codes.shape
    nb = k // BLOCK
    out = np.empty((n, nb, BLOCK_BYTES[name]), dtype=np.uint8)
    out[:, :, :2] = np.ascontiguousarray(scale, dtype="<f2").view(np.uint8).reshape(n, nb, 2)
    raw = np.ascontiguousarray(codes, dtype=np.int8).reshape(n, nb, BLOCK)
    if name == "q4_0":
        nib = raw.view(np.uint8) + np.uint8(8)
        out[:, :, 2:] = nib[:, :, : BLOCK // 2] | (nib[:, :, BLOCK // 2 :] << np.uint8(4))
    else:
        out[:, :, 2:] = raw.view(np.uint8)
    return out.reshape(n, -1)


def block_scales(name: str, packed: U8) -> F16:
    """The float16 scale of every block: [N, K/32]."""
    n = packed.shape[0]
    blocks = packed.reshape(n, -1, BLOCK_BYTES[name])
    return np.ascontiguousarray(blocks[:, :, :2]).view("<f2").reshape(n, -1).astype(np.float16)


def unpack_blocks(name: str, packed: U8) -> I8:
    """Block bytes [N, K/32 * (18 or 34)] -> codes [N, K] (q4_0 in [-8, 7], q8_0 any int8)."""
    n = packed.shape[0]
    blocks = packed.reshape(n, -1, BLOCK_BYTES[name])
    if name == "q8_0":
        return np.ascontiguousarray(blocks[:, :, 2:]).view(np.int8).reshape(n, -1)
    qs = blocks[:, :, 2:]
    nib = np.concatenate([qs & np.uint8(0xF), qs >> np.uint8(4)], axis=-1)
    return (nib.view(np.int8) - np.int8(8)).reshape(n, -1)


def dequantize_blocks(name: str, packed: U8) -> F32:
    """Block bytes -> float32 weights [N, K], w = d * code per block."""
    n = packed.shape[0]
    d = block_scales(name, packed).astype(np.float32)
    codes = unpack_blocks(name, packed).reshape(n, d.shape[1], BLOCK)
    return (d[:, :, None] * codes.astype(np.float32)).reshape(n, -1)


@dataclass(frozen=True)
class LlamaBlockFormat(Format):
    """q4_0 / q8_0: llama.cpp blocks of 32 weights, each a float16 scale and the codes, w = d * q."""

    @property
    def code_ranges(self) -> tuple[CodeRange, CodeRange]:
        return ((-8, 7),) * 2 if self.scheme.name == "q4_0" else ((-128, 127),) * 2

    def quantize(self, w: NDArray[Any]) -> QuantizedTensor:
        a = self._weights(w)
        encode = encode_q4_0 if self.scheme.name == "q4_0" else encode_q8_0
        codes, d = encode(a)
        scale = to_fp16(d.astype(np.float64), "scale", a.reshape(d.shape[0], d.shape[1], -1).min(-1))
        packed = pack_blocks(self.scheme.name, codes, scale)
        return QuantizedTensor(packed, scale, None, (a.shape[0], a.shape[1]), self.scheme)

    def dequantize(self, qt: QuantizedTensor) -> F32:
        self._check_tensor(qt)
        return dequantize_blocks(self.scheme.name, qt.packed)

    def pack(self, codes: NDArray[Any], scale: NDArray[Any] | None = None) -> NDArray[Any]:
        """Codes [N, K] -> block bytes; `scale` [N, K/32] goes into the blocks (default 1.0 everywhere)."""
        c = self._codes(codes)
        n, k = c.shape
        shape = (n, k // BLOCK)
        if scale is None:
            d = np.ones(shape, dtype=np.float16)
        else:
            d = np.asarray(scale)
            if d.shape != shape or not np.issubdtype(d.dtype, np.floating):
                raise ValueError(f"{self.name}: scale must be float of shape {shape}, got {d.dtype} {d.shape}")
            d = d.astype(np.float16)
        return pack_blocks(self.scheme.name, c, d)

    def unpack(self, packed: NDArray[Any]) -> I8:
        return unpack_blocks(self.scheme.name, self._packed(packed))
