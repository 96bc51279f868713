"""The numpy reference for every weight format of DESIGN section 3: quantize, pack, unpack, dequantize.

    fmt = get("q3p5")                       # dense container, g = 128
    qt = fmt.quantize(w)                    # w: float [N, K]
    qt.packed, qt.scale, qt.offset          # uint32 [N, 7K/64]; float16 [N, K/128] twice
    w_hat = fmt.dequantize(qt)              # float32 [N, K]
    fmt.unpack(qt.packed)                   # int8 codes [N, K], the integers before packing

Codes are int8 arrays [N, K], one per weight: int4 and q4_0 in [-8, 7], int8 in [-127, 127], q8_0 any
int8, q3p5 n1 in [-8, 7] at even k and n2 in [-4, 3] at odd k. `pack` turns codes into the stored array and
`unpack` gives them back. fp16 has no codes (its stored array is the weights): its pack/unpack raise.

Every bad input raises ValueError naming the numbers involved (non-finite weights with their count and first
index, shapes that do not divide, codes out of range, a packed array of the wrong shape or dtype).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from q35c.formats import _affine, _bits, _llama_blocks
from q35c.ir.schemes import Scheme, parse_scheme

F16 = NDArray[np.float16]
F32 = NDArray[np.float32]
I8 = NDArray[np.int8]
CodeRange = tuple[int, int]


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
        block = self.scheme.name in ("q4_0", "q8_0")
        if block:
            if self.scale is not None:
                _check_array("scale", self.scale, (n, k // _llama_blocks.BLOCK), "float16")
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
        if self.scheme.name in ("q4_0", "q8_0"):
            return int(self.packed.nbytes)
        extra = sum(int(a.nbytes) for a in (self.scale, self.offset) if a is not None)
        return int(self.packed.nbytes) + extra


def _check_array(what: str, array: NDArray[Any], shape: tuple[int, ...], dtype: str) -> None:
    if not isinstance(array, np.ndarray):
        raise ValueError(f"{what} must be a numpy array, got {type(array).__name__}")
    if array.dtype != np.dtype(dtype) or array.shape != shape:
        raise ValueError(f"{what} must be {dtype} of shape {shape}, got {array.dtype} of shape {array.shape}")


def _first_index(mask: NDArray[np.bool_]) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argwhere(mask)[0])


@dataclass(frozen=True)
class Format(ABC):
    """One scheme's numeric format; get one with `get(spec)`."""

    scheme: Scheme

    @property
    def pack_multiple(self) -> int:
        """K must be a multiple of this for codes to pack into whole storage words."""
        return 1

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
            n, k = _first_index(bad)
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
                i, j = _first_index(bad)
                slot = "even" if parity == 0 else "odd"
                raise ValueError(
                    f"{self.name}: {int(bad.sum())} codes at {slot} k outside [{lo}, {hi}]; "
                    f"first at [{i}, {2 * j + parity}] = {int(part[i, j])}"
                )
        return np.ascontiguousarray(c, dtype=np.int8)

    def _packed(self, packed: NDArray[Any], per_row: int) -> NDArray[Any]:
        """Check a packed array's dtype and that its row length is a multiple of `per_row`."""
        p = np.asarray(packed)
        dtype = np.dtype(self.scheme.storage_dtype)
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


@dataclass(frozen=True)
class Fp16Format(Format):
    """fp16: the weights rounded to float16; no codes, no metadata."""

    def quantize(self, w: NDArray[Any]) -> QuantizedTensor:
        a = self._weights(w)
        with np.errstate(over="ignore"):
            half = a.astype(np.float16)
        over = np.isinf(half)
        if over.any():
            n, k = _first_index(over)
            raise ValueError(
                f"{self.name}: {int(over.sum())} weights overflow float16 (max {_affine.FP16_MAX:g}); "
                f"first at [{n}, {k}] = {a[n, k]:g}"
            )
        return QuantizedTensor(half, None, None, (a.shape[0], a.shape[1]), self.scheme)

    def dequantize(self, qt: QuantizedTensor) -> F32:
        self._check_tensor(qt)
        return qt.packed.astype(np.float32)

    def pack(self, codes: NDArray[Any], scale: NDArray[Any] | None = None) -> NDArray[Any]:
        raise ValueError("fp16 has no integer codes to pack; quantize() stores the float16 weights directly")

    def unpack(self, packed: NDArray[Any]) -> I8:
        raise ValueError("fp16 has no integer codes to unpack; the packed array is the float16 weights")


@dataclass(frozen=True)
class _GroupFormat(Format):
    """Schemes with float16 scale (and offset) arrays per group along K: int8, int4, q3p5."""

    # Per slot (q3p5: the even and the odd weight of a pair; others: one slot): step multiplier, code range.
    steps: ClassVar[tuple[float, ...]] = (1.0,)

    def _encode(self, groups: F32) -> tuple[F16, F16 | None]:
        return _affine.minmax_scale_offset(groups)

    def _patterns(self, g: int) -> tuple[F32, F32, F32]:
        """Step multiplier and code range at each position of a group (positions alternate slots)."""
        ranges = self.code_ranges[: len(self.steps)]
        lo = _affine.slot_pattern([r[0] for r in ranges], g)
        hi = _affine.slot_pattern([r[1] for r in ranges], g)
        return _affine.slot_pattern(self.steps, g), lo, hi

    def quantize(self, w: NDArray[Any]) -> QuantizedTensor:
        a = self._weights(w)
        n, k = a.shape
        g = self.scheme.group_size(k)
        groups = a.reshape(n, k // g, g)
        scale, offset = self._encode(groups)
        codes = _affine.round_to_grid(groups, scale, offset, *self._patterns(g))
        return QuantizedTensor(self._pack_raw(codes.reshape(n, k)), scale, offset, (n, k), self.scheme)

    def dequantize(self, qt: QuantizedTensor) -> F32:
        self._check_tensor(qt)
        assert qt.scale is not None
        n, k = qt.shape
        g = self.scheme.group_size(k)
        codes = self.unpack(qt.packed).reshape(n, k // g, g)
        step = self._patterns(g)[0]
        return _affine.decode_grid(codes, qt.scale, qt.offset, step).reshape(n, k)

    def pack(self, codes: NDArray[Any], scale: NDArray[Any] | None = None) -> NDArray[Any]:
        self._no_scale(self.name, scale)
        return self._pack_raw(self._codes(codes))

    @abstractmethod
    def _pack_raw(self, codes: I8) -> NDArray[Any]:
        """Pack codes already known to be valid."""


@dataclass(frozen=True)
class Int8Format(_GroupFormat):
    """int8: symmetric, w = scale * q with q in [-127, 127]; the codes are stored as they are."""

    @property
    def code_ranges(self) -> tuple[CodeRange, CodeRange]:
        return (-127, 127), (-127, 127)

    def _encode(self, groups: F32) -> tuple[F16, F16 | None]:
        return _affine.absmax_scale(groups), None

    def _pack_raw(self, codes: I8) -> NDArray[Any]:
        return codes.copy()

    def unpack(self, packed: NDArray[Any]) -> I8:
        p = self._packed(packed, 1)
        bad = p == -128
        if bad.any():
            i, j = _first_index(bad)
            raise ValueError(f"{self.name}: {int(bad.sum())} codes are -128 (valid: [-127, 127]); first at [{i}, {j}]")
        return p.copy()


@dataclass(frozen=True)
class Int4Format(_GroupFormat):
    """int4: asymmetric min-max, w = offset + scale * q, q in [-8, 7], 8 codes per uint32 (LSB first)."""

    @property
    def pack_multiple(self) -> int:
        return 8

    @property
    def code_ranges(self) -> tuple[CodeRange, CodeRange]:
        return (-8, 7), (-8, 7)

    def _pack_raw(self, codes: I8) -> NDArray[Any]:
        return _bits.pack_nibbles(codes)

    def unpack(self, packed: NDArray[Any]) -> I8:
        return _bits.unpack_nibbles(self._packed(packed, 1))


@dataclass(frozen=True)
class Q3p5Format(_GroupFormat):
    """q3p5: pairs of a 4-bit code (step s) and a 3-bit code (step 2 s), as 7-bit pair codes.

    Container `byte` stores one pair code per uint8; `dense` packs them into a uint32 bit stream per row.
    """

    steps: ClassVar[tuple[float, ...]] = (1.0, 2.0)

    @property
    def dense(self) -> bool:
        return self.scheme.container == "dense"

    @property
    def pack_multiple(self) -> int:
        return 64 if self.dense else 2

    @property
    def code_ranges(self) -> tuple[CodeRange, CodeRange]:
        return (-8, 7), (-4, 3)

    def _pack_raw(self, codes: I8) -> NDArray[Any]:
        pairs = _bits.pair_codes(codes)
        return _bits.pack_dense(pairs) if self.dense else pairs

    def unpack(self, packed: NDArray[Any]) -> I8:
        if self.dense:
            return _bits.split_pair_codes(_bits.unpack_dense(self._packed(packed, 7)))
        p = self._packed(packed, 1)
        bad = p > 0x7F
        if bad.any():
            i, j = _first_index(bad)
            raise ValueError(
                f"{self.name}: {int(bad.sum())} bytes have bit 7 set (pair codes are 7 bits); "
                f"first at [{i}, {j}] = {int(p[i, j]):#04x}"
            )
        return _bits.split_pair_codes(p)


@dataclass(frozen=True)
class LlamaBlockFormat(Format):
    """q4_0 / q8_0: llama.cpp blocks of 32 weights, each a float16 scale and the codes, w = d * q."""

    @property
    def pack_multiple(self) -> int:
        return _llama_blocks.BLOCK

    @property
    def code_ranges(self) -> tuple[CodeRange, CodeRange]:
        return ((-8, 7),) * 2 if self.scheme.name == "q4_0" else ((-128, 127),) * 2

    def quantize(self, w: NDArray[Any]) -> QuantizedTensor:
        a = self._weights(w)
        encode = _llama_blocks.encode_q4_0 if self.scheme.name == "q4_0" else _llama_blocks.encode_q8_0
        codes, d = encode(a)
        scale = _affine.to_fp16(d.astype(np.float64), "scale", a.reshape(d.shape[0], d.shape[1], -1).min(-1))
        packed = _llama_blocks.pack_blocks(self.scheme.name, codes, scale)
        return QuantizedTensor(packed, scale, None, (a.shape[0], a.shape[1]), self.scheme)

    def dequantize(self, qt: QuantizedTensor) -> F32:
        self._check_tensor(qt)
        return _llama_blocks.dequantize_blocks(self.scheme.name, qt.packed)

    def pack(self, codes: NDArray[Any], scale: NDArray[Any] | None = None) -> NDArray[Any]:
        """Codes [N, K] -> block bytes; `scale` [N, K/32] goes into the blocks (default 1.0 everywhere)."""
        c = self._codes(codes)
        n, k = c.shape
        shape = (n, k // _llama_blocks.BLOCK)
        if scale is None:
            d = np.ones(shape, dtype=np.float16)
        else:
            d = np.asarray(scale)
            if d.shape != shape or not np.issubdtype(d.dtype, np.floating):
                raise ValueError(f"{self.name}: scale must be float of shape {shape}, got {d.dtype} {d.shape}")
            d = d.astype(np.float16)
        return _llama_blocks.pack_blocks(self.scheme.name, c, d)

    def unpack(self, packed: NDArray[Any]) -> I8:
        p = self._packed(packed, _llama_blocks.BLOCK_BYTES[self.scheme.name])
        return _llama_blocks.unpack_blocks(self.scheme.name, p)


_FORMATS: dict[str, type[Format]] = {
    "fp16": Fp16Format,
    "int8": Int8Format,
    "int4": Int4Format,
    "q3p5": Q3p5Format,
    "q4_0": LlamaBlockFormat,
    "q8_0": LlamaBlockFormat,
}


def get(spec: str | Scheme) -> Format:
    """The format for a spec string such as `q3p5:g=64` (or a parsed Scheme); ValueError if unknown."""
    scheme = spec if isinstance(spec, Scheme) else parse_scheme(spec)
    return _FORMATS[scheme.name](scheme)
