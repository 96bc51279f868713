"""What every weight format shares: the `Format` interface, `QuantizedTensor`, input validation and word views.

A `Format` is the numpy reference of one scheme (docs/formats.md): `quantize` weights [N, K] into a
`QuantizedTensor`, `dequantize` it back, `pack` int8 codes [N, K] into the stored array and `unpack` them again.
The family modules (`float`, `affine`, `q3p5`, `llama`) implement it; shapes and sizes come from the `Scheme`
(`q35c.ir.schemes`), never from scheme names here.

Every bad input raises ValueError naming the numbers involved (non-finite weights with their count and first
index, shapes that do not divide, codes out of range, a packed array of the wrong shape or dtype).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from q35c.ir.schemes import Scheme

F16 = NDArray[np.float16]
F32 = NDArray[np.float32]
I8 = NDArray[np.int8]
U8 = NDArray[np.uint8]
U32 = NDArray[np.uint32]
CodeRange = tuple[int, int]

FP16_MAX = float(np.finfo(np.float16).max)


@dataclass(frozen=True, eq=False)
class QuantizedTensor:
    """A quantized [N, K] weight: the packed codes plus float16 metadata, checked against the scheme.

    `scale` and `offset` are [N, K/g] float16 (None where the scheme has none: offset for the symmetric
    schemes, both for fp16). q4_0 and q8_0 keep their scales inside the packed blocks; `scale` then holds a
    copy of them [N, K/32] for convenience (or None) and is not used for decoding.
    """

    packed: NDArray[Any]
    scale: F16 | None
    offset: F16 | None
    shape: tuple[int, int]
    scheme: Scheme

    def __post_init__(self) -> None:
        n, k = self.shape
        self.scheme.check_shape(n, k)
        _check_array("packed", self.packed, self.scheme.storage_shape(n, k), self.scheme.storage_dtype)
        meta = self.scheme.metadata_shape(n, k)
        if self.scheme.block_scales:
            if self.scale is not None:
                _check_array("scale", self.scale, (n, k // self.scheme.storage_unit), "float16")
        elif meta is None:
            if self.scale is not None:
                raise ValueError(f"{self.scheme} has no scale, got one of shape {self.scale.shape}")
        elif self.scale is None:
            raise ValueError(f"{self.scheme} needs a float16 scale of shape {meta}")
        else:
            _check_array("scale", self.scale, meta, "float16")
        if self.scheme.symmetric or meta is None:
            if self.offset is not None:
                raise ValueError(f"{self.scheme} has no offset, got one of shape {self.offset.shape}")
        elif self.offset is None:
            raise ValueError(f"{self.scheme} needs a float16 offset of shape {meta}")
        else:
            _check_array("offset", self.offset, meta, "float16")

    @property
    def nbytes(self) -> int:
        """Bytes stored: packed codes plus separate metadata (the copy of block scales not counted)."""
        if self.scheme.block_scales:
            return int(self.packed.nbytes)
        extra = sum(int(a.nbytes) for a in (self.scale, self.offset) if a is not None)
        return int(self.packed.nbytes) + extra


def _check_array(what: str, array: NDArray[Any], shape: tuple[int, ...], dtype: str) -> None:
    if not isinstance(array, np.ndarray):
        raise ValueError(f"{what} must be a numpy array, got {type(array).__name__}")
    if array.dtype != np.dtype(dtype) or array.shape != shape:
        raise ValueError(f"{what} must be {dtype} of shape {shape}, got {array.dtype} of shape {array.shape}")


def first_index(mask: NDArray[np.bool_]) -> tuple[int, ...]:
    """The index of the first True of `mask`, as ints (for error messages)."""
    return tuple(int(i) for i in np.argwhere(mask)[0])


# -- bit views shared by the packed formats (pure numpy, no validation) --


def sign_extend(values: U8, bits: int) -> I8:
    """Read values in [0, 2**bits) as `bits`-wide two's complement numbers (0xF -> -1 for bits=4)."""
    half = np.uint8(1 << (bits - 1))
    return (values ^ half).view(np.int8) - np.int8(half)


def bytes_to_words(data: U8) -> U32:
    """View [N, 4M] bytes as [N, M] little-endian uint32 words (byte 4i is the low byte of word i)."""
    return np.ascontiguousarray(data).view("<u4").astype(np.uint32, copy=False)


def words_to_bytes(words: U32) -> U8:
    """The inverse of `bytes_to_words`: [N, M] uint32 words as their [N, 4M] little-endian bytes."""
    return np.ascontiguousarray(words, dtype="<u4").view(np.uint8)


@dataclass(frozen=True)
class Format(ABC):
    """One scheme's numeric format; get one with `q35c.formats.get(spec)`."""

    scheme: Scheme

    @property
    def pack_multiple(self) -> int:
        """K must be a multiple of this for codes to pack into whole storage words."""
        return self.scheme.storage_unit

    @property
    def name(self) -> str:
        """The canonical spec string, every default spelled out (`q3p5:g=128:container=dense`)."""
        return str(self.scheme)

    def bits_per_weight(self, k: int) -> float:
        """Storage bits per weight including scales and offsets, for rows of length k."""
        return self.scheme.bits_per_weight(k)

    @property
    def code_ranges(self) -> tuple[CodeRange, CodeRange]:
        """Inclusive code ranges (lo, hi) at even k and at odd k."""
        raise ValueError(f"{self.name} stores float16 weights directly and has no integer codes")

    @abstractmethod
    def quantize(self, w: NDArray[Any]) -> QuantizedTensor:
        """Weights [N, K] (any real dtype, finite) -> QuantizedTensor."""

    @abstractmethod
    def dequantize(self, qt: QuantizedTensor) -> F32:
        """QuantizedTensor -> float32 weights [N, K], by the decode rule of the scheme."""

    @abstractmethod
    def pack(self, codes: NDArray[Any], scale: NDArray[Any] | None = None) -> NDArray[Any]:
        """int codes [N, K] -> the stored array (`scale` only for q4_0/q8_0, whose blocks embed it)."""

    @abstractmethod
    def unpack(self, packed: NDArray[Any]) -> I8:
        """The stored array -> int8 codes [N, K]."""

    def codes(self, qt: QuantizedTensor) -> I8:
        """The integer codes of a quantized tensor, before packing."""
        self._check_tensor(qt)
        return self.unpack(qt.packed)

    # -- validation shared by the formats --

    def _weights(self, w: NDArray[Any]) -> F32:
        a = np.asarray(w)
        if a.ndim != 2:
            raise ValueError(f"{self.name}: weights must be 2-D [N, K], got shape {a.shape} (ndim {a.ndim})")
        if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
            raise ValueError(f"{self.name}: weights must be real numbers, got dtype {a.dtype}")
        self.scheme.check_shape(*a.shape)
        a = np.ascontiguousarray(a, dtype=np.float32)
        finite = np.isfinite(a)
        if not finite.all():
            bad = ~finite
            n, k = first_index(bad)
            raise ValueError(
                f"{self.name}: weights contain {int(bad.sum())} non-finite values (NaN or Inf as float32); "
                f"first at [{n}, {k}] = {a[n, k]}"
            )
        return a

    def _check_tensor(self, qt: QuantizedTensor) -> None:
        if qt.scheme != self.scheme:
            raise ValueError(f"tensor is quantized as {qt.scheme}, not {self.name}")

    def _codes(self, codes: NDArray[Any]) -> I8:
        """Check codes [N, K] (integer dtype, K packable, every value in range) and return them as int8."""
        c = np.asarray(codes)
        if c.ndim != 2:
            raise ValueError(f"{self.name}: codes must be 2-D [N, K], got shape {c.shape}")
        if not np.issubdtype(c.dtype, np.integer):
            raise ValueError(f"{self.name}: codes must be an integer array, got dtype {c.dtype}")
        n, k = c.shape
        if n == 0 or k == 0 or k % self.pack_multiple != 0:
            raise ValueError(
                f"{self.name}: codes of shape [{n}, {k}]: K must be a positive multiple of {self.pack_multiple}"
            )
        for parity, (lo, hi) in enumerate(self.code_ranges):
            part = c[:, parity::2]
            bad = (part < lo) | (part > hi)
            if bad.any():
                i, j = first_index(bad)
                slot = "even" if parity == 0 else "odd"
                raise ValueError(
                    f"{self.name}: {int(bad.sum())} codes at {slot} k outside [{lo}, {hi}]; "
                    f"first at [{i}, {2 * j + parity}] = {int(part[i, j])}"
                )
        return np.ascontiguousarray(c, dtype=np.int8)

    def _packed(self, packed: NDArray[Any]) -> NDArray[Any]:
        """Check a packed array's dtype and that its rows hold whole storage units (`Scheme.storage_ratio`)."""
        p = np.asarray(packed)
        dtype = np.dtype(self.scheme.storage_dtype)
        per_row = self.scheme.storage_ratio[1]
        if p.dtype != dtype or p.ndim != 2 or p.shape[1] % per_row != 0 or 0 in p.shape:
            raise ValueError(
                f"{self.name}: packed array must be 2-D {dtype} with a positive multiple of {per_row} "
                f"elements per row, got {p.dtype} of shape {p.shape}"
            )
        return np.ascontiguousarray(p)

    @staticmethod
    def _no_scale(name: str, scale: NDArray[Any] | None) -> None:
        if scale is not None:
            raise ValueError(f"{name}: pack takes a scale only for q4_0 and q8_0, whose blocks store it")
