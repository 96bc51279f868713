"""Quantization schemes: spec strings, their parameters and the storage they imply.

A scheme is named by a spec string `NAME[:key=value]*` (`q3p5`, `q3p5:g=64:container=byte`, `int4:g=128`,
`int8`, `fp16`, `f32`, `q4_0`, `q8_0`, llama.cpp's `q4_1` .. `q6_k`, `iq4_nl`, `iq4_xs`, and by size only the
other ggml types such as `iq2_xxs`). `parse_scheme` turns it into a frozen `Scheme`; `str(scheme)` gives the
canonical spec back, with every default spelled out. The numeric work (quantize, pack, unpack) lives in
`q35c.formats`; this module owns everything else a scheme implies, without numpy, so that the IR dialect and
the passes ask a `Scheme` instead of branching on scheme names:

- storage: the code array's dtype and shape (`storage_dtype`, `storage_shape`, `storage_ratio`), the float16
  metadata arrays (`metadata_shape`, `metadata_ratio`, `block_scales`), all of them (`storage_tensors`) and
  their size (`storage_bytes`, `bits_per_weight`);
- K granularity: `storage_unit` (K of whole storage elements) and `k_alignment` (whole groups and whole storage
  elements: the K slices of a weight that are again weights of the scheme);
- decoding: `symmetric` (no offset), `slot_steps` (q3p5's odd slot has twice the step), `codes_are_storage`.

The bit layouts themselves are described in docs/formats.md.

Weight convention: a weight has shape [N, K] (out_features, in_features); quantization groups of `g`
consecutive elements run along K.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace
from typing import Literal, NamedTuple

from q35c.util.errors import Q35Error
from q35c.util.limits import MAX_GROUP, clip, parse_int
from q35c.util.suggest import did_you_mean

SchemeName = Literal[
    "fp16", "f32", "int8", "int4", "q3p5", "q4_0", "q8_0", "q4_1", "q5_0", "q5_1",
    "q2_k", "q3_k", "q4_k", "q5_k", "q6_k", "iq4_nl", "iq4_xs",
]  # fmt: skip
SCHEME_NAMES: tuple[str, ...] = (
    "fp16", "f32", "int8", "int4", "q3p5", "q4_0", "q8_0", "q4_1", "q5_0", "q5_1",
    "q2_k", "q3_k", "q4_k", "q5_k", "q6_k", "iq4_nl", "iq4_xs",
)  # fmt: skip
# llama.cpp's block formats: (weights per block, bytes per block, weights per scale (sub-block), code bits).
# q4_0 .. iq4_nl have blocks of 32 with a float16 scale (q4_1, q5_1 also a float16 min); the K-quants and
# iq4_xs have super-blocks of 256 with packed sub-block scales (docs/formats.md).
GGML_BLOCKS: dict[str, tuple[int, int, int, float]] = {
    "q4_0": (32, 18, 32, 4.0),
    "q8_0": (32, 34, 32, 8.0),
    "q4_1": (32, 20, 32, 4.0),
    "q5_0": (32, 22, 32, 5.0),
    "q5_1": (32, 24, 32, 5.0),
    "q2_k": (256, 84, 16, 2.0),
    "q3_k": (256, 110, 16, 3.0),
    "q4_k": (256, 144, 32, 4.0),
    "q5_k": (256, 176, 32, 5.0),
    "q6_k": (256, 210, 16, 6.0),
    "iq4_nl": (32, 18, 32, 4.0),
    "iq4_xs": (256, 136, 32, 4.0),
}
# The other ggml tensor types (lower case), with (weights per block, bytes per block): opaque storage schemes.
# q35c knows their exact size, and so their memory traffic, but not their bit layout: a pass that has to unpack
# one fails with a Q35Error naming it.
OPAQUE_BLOCKS: dict[str, tuple[int, int]] = {
    "q8_1": (32, 40),
    "q8_k": (256, 292),
    "iq2_xxs": (256, 66),
    "iq2_xs": (256, 74),
    "iq3_xxs": (256, 98),
    "iq1_s": (256, 50),
    "iq3_s": (256, 110),
    "iq2_s": (256, 82),
    "i8": (1, 1),
    "i16": (1, 2),
    "i32": (1, 4),
    "i64": (1, 8),
    "f64": (1, 8),
    "iq1_m": (256, 56),
    "bf16": (1, 2),
    "tq1_0": (256, 54),
    "tq2_0": (256, 66),
    "mxfp4": (32, 17),
    "nvfp4": (64, 36),
    "q1_0": (128, 18),
}
CONTAINERS = ("dense", "byte")

# Keys each scheme accepts in its spec string.
_KEYS: dict[str, tuple[str, ...]] = {
    "fp16": (),
    "f32": (),
    "int8": ("g",),
    "int4": ("g",),
    "q3p5": ("g", "container"),
    **{name: () for name in (*GGML_BLOCKS, *OPAQUE_BLOCKS)},
}
_DEFAULT_GROUP: dict[str, int | None] = {
    "fp16": None,
    "f32": None,
    "int8": None,  # None: one scale per output channel (the whole row)
    "int4": 128,
    "q3p5": 128,
    **{name: sub for name, (_, _, sub, _) in GGML_BLOCKS.items()},
    **{name: block for name, (block, _) in OPAQUE_BLOCKS.items()},
}
# llama.cpp block formats: bytes per block of 32 weights (fp16 scale + codes).
LLAMA_BLOCK = 32
LLAMA_BLOCK_BYTES: dict[str, int] = {name: size for name, (block, size, _, _) in GGML_BLOCKS.items() if block == 32}

_ITEMSIZE = {"float16": 2, "float32": 4, "int8": 1, "uint8": 1, "uint32": 4}


@dataclass(frozen=True)
class _Storage:
    """How a scheme (q3p5: a container) stores its codes: K inputs [0, unit) take `columns` elements of `dtype`
    in the code array, so a row of K takes K / unit * columns; `code_bits` is bits per weight for the codes alone
    (q4_0/q8_0: without their in-block scales); `why` explains `unit` in shape errors."""

    dtype: str
    unit: int
    columns: int
    code_bits: float
    why: str = ""


_STORAGE: dict[tuple[str, str | None], _Storage] = {
    ("fp16", None): _Storage("float16", 1, 1, 16.0),
    ("int8", None): _Storage("int8", 1, 1, 8.0),
    ("int4", None): _Storage("uint32", 8, 1, 4.0, " (8 int4 codes per uint32 word)"),
    ("q3p5", "dense"): _Storage("uint32", 64, 7, 3.5, " for the dense container (32 pairs = 7 uint32 words)"),
    ("q3p5", "byte"): _Storage("uint8", 2, 1, 4.0),
    ("f32", None): _Storage("float32", 1, 1, 32.0),
    **{
        (name, None): _Storage("uint8", block, size, bits, f" (a {block}-weight block of {size} bytes)")
        for name, (block, size, _, bits) in GGML_BLOCKS.items()
    },
    **{
        (name, None): _Storage("uint8", block, size, size * 8 / block, f" (a {block}-weight block of {size} bytes)")
        for name, (block, size) in OPAQUE_BLOCKS.items()
    },
}
# Schemes whose scales sit inside the code array's blocks (no separate metadata arrays).
_BLOCK_SCALES = (*GGML_BLOCKS, *OPAQUE_BLOCKS)
# Schemes with a scale only (w = scale * q); the others that have metadata also carry an offset (the llama.cpp
# formats with a min: q4_1, q5_1, q2_k, q4_k, q5_k).
_SYMMETRIC = ("int8", "q4_0", "q8_0", "q5_0", "q3_k", "q6_k", "iq4_nl", "iq4_xs", *OPAQUE_BLOCKS)
_UNQUANTIZED = ("fp16", "f32")
# Step multiplier per slot: weight k uses slot k % len(steps). q3p5's odd (3-bit) slot has twice the step.
_SLOT_STEPS: dict[str, tuple[int, ...]] = {"q3p5": (1, 2)}


class StorageTensor(NamedTuple):
    """One array that stores a weight: its role (`codes`, `scale` or `offset`), shape and numpy dtype name."""

    role: str
    shape: tuple[int, int]
    dtype: str


@dataclass(frozen=True)
class Scheme:
    """A quantization scheme with all parameters resolved.

    `group` is the group size along K (None for fp16, and for int8 meaning per output channel);
    `container` is only set for q3p5 (`dense`: 7-bit codes in a uint32 bit stream; `byte`: one uint8 per
    pair).
    """

    name: SchemeName
    group: int | None = None
    container: str | None = None

    def __str__(self) -> str:
        parts: list[str] = [self.name]
        if "g" in _KEYS[self.name] and self.group is not None:
            parts.append(f"g={self.group}")
        if self.container is not None:
            parts.append(f"container={self.container}")
        return ":".join(parts)

    @property
    def spec(self) -> str:
        return str(self)

    @property
    def _storage(self) -> _Storage:
        return _STORAGE[(self.name, self.container)]

    @property
    def symmetric(self) -> bool:
        """Symmetric schemes carry a scale only; asymmetric ones (int4, q3p5) also an offset."""
        return self.name in _SYMMETRIC

    @property
    def is_quantized(self) -> bool:
        return self.name not in _UNQUANTIZED

    @property
    def opaque(self) -> bool:
        """A ggml type whose size q35c knows but whose bits it cannot unpack (`OPAQUE_BLOCKS`)."""
        return self.name in OPAQUE_BLOCKS

    @property
    def block_scales(self) -> bool:
        """The scales sit inside the code array's blocks (every llama.cpp format: one per block of 32, or for the
        K-quants and iq4_xs per sub-block of `group` weights, packed in super-blocks of 256)."""
        return self.name in _BLOCK_SCALES

    @property
    def codes_are_storage(self) -> bool:
        """The code array holds the integer codes as they are, one int8 per weight (int8)."""
        return self.is_quantized and self.storage_dtype == "int8"

    @property
    def slot_steps(self) -> tuple[int, ...]:
        """Step multiplier per slot, weight k in slot k % len: (1, 2) for q3p5 (w = offset + 2 scale n2 at odd
        k), (1,) elsewhere. A code times its slot's step is what w = offset + scale * e multiplies."""
        return _SLOT_STEPS.get(self.name, (1,))

    @property
    def code_bits(self) -> float:
        """Storage bits per weight for the codes alone (q3p5 byte: 4.0, dense: 3.5)."""
        return self._storage.code_bits

    @property
    def storage_dtype(self) -> str:
        """numpy dtype name of the packed array."""
        return self._storage.dtype

    @property
    def storage_unit(self) -> int:
        """K must be a multiple of this for a row to fill whole storage elements: int4 8 (codes per word), q3p5
        dense 64 (32 pairs = 7 words), q3p5 byte 2 (a pair), q4_0/q8_0 32 (a block), fp16 and int8 1."""
        return self._storage.unit

    @property
    def storage_ratio(self) -> tuple[int, int]:
        """(a, b): the code array's columns for inputs [0, k) are k / a * b (k a multiple of a).

        >>> parse_scheme("q3p5").storage_ratio, parse_scheme("q4_0").storage_ratio, parse_scheme("int8").storage_ratio
        ((64, 7), (32, 18), (1, 1))
        """
        return self._storage.unit, self._storage.columns

    @property
    def metadata_ratio(self) -> tuple[int, int] | None:
        """(g, 1): the scale and offset columns for inputs [0, k) are k / g; None where one column serves the
        whole row (per-channel int8) or there is no separate metadata (fp16; q4_0/q8_0 have block scales)."""
        if self.group is None or self.block_scales:
            return None
        return (self.group, 1)

    @property
    def k_alignment(self) -> int:
        """The granule of K slices: whole quantization groups and whole storage elements, so that the columns
        [k0, k0 + size) of a weight, both multiples of it, are again a valid packed weight of the scheme.

        q3p5 dense: 64 (32 pairs = 7 words) and g; q3p5 byte: g (pairs, g even); int4: 8 (codes per word) and g;
        int8 with groups: g; q4_0/q8_0: their block of 32; fp16 and per-channel int8: 1.

        >>> [parse_scheme(s).k_alignment for s in ("q3p5", "q3p5:g=32", "int4:g=32", "q4_0", "int8", "fp16")]
        [128, 64, 32, 32, 1, 1]
        """
        return math.lcm(self.storage_unit, self.group or 1)

    def group_size(self, k: int) -> int:
        """The group size along K for a row of length k (int8 per-channel: the whole row)."""
        if self.group is None:
            return k
        return self.group

    def check_shape(self, n: int, k: int) -> None:
        """Raise ValueError, naming the numbers, if an [n, k] weight cannot be stored in this scheme."""
        if n <= 0 or k <= 0:
            raise Q35Error(f"weight shape must be positive, got [{n}, {k}]")
        if not self.is_quantized:
            return
        g = self.group_size(k)
        if k % g != 0:
            raise Q35Error(f"{self}: K={k} is not divisible by the group size g={g}{self._fitting_groups(k)}")
        unit = self.storage_unit
        if k % unit != 0:
            raise Q35Error(f"{self}: K={k} must be a multiple of {unit}{self._storage.why}")

    def _fitting_groups(self, k: int) -> str:
        """`; group sizes that fit K=576: 32, 64 (e.g. q3p5:g=64)`, or nothing if no power of two from 16 fits."""
        fits = [g for g in (16, 32, 64, 128, 256) if k % math.lcm(self.storage_unit, g) == 0]
        if not fits or "g" not in _KEYS[self.name]:
            return ""
        example = replace(self, group=fits[-1])
        return f"; group sizes that fit K={k}: {', '.join(map(str, fits))} (e.g. {example})"

    def n_groups(self, k: int) -> int:
        return k // self.group_size(k)

    def storage_shape(self, n: int, k: int) -> tuple[int, int]:
        """Shape of the packed code array for an [n, k] weight (its dtype is `storage_dtype`)."""
        self.check_shape(n, k)
        unit, columns = self.storage_ratio
        return (n, k // unit * columns)

    def metadata_shape(self, n: int, k: int) -> tuple[int, int] | None:
        """Shape of the separate float16 scale (and offset) arrays; None where there are none.

        llama.cpp formats keep their scale inside each block, so they have no separate metadata.
        """
        if not self.is_quantized or self.block_scales:
            return None
        return (n, self.n_groups(k))

    def storage_tensors(self, n: int, k: int) -> tuple[StorageTensor, ...]:
        """The arrays that store an [n, k] weight, in order: codes, then scale and offset where the scheme has
        them (the operands of `q35_storage.assemble`).

        >>> [(t.role, t.shape, t.dtype) for t in parse_scheme("int4:g=32").storage_tensors(16, 128)]
        [('codes', (16, 16), 'uint32'), ('scale', (16, 4), 'float16'), ('offset', (16, 4), 'float16')]
        """
        return _storage_tensors(self, n, k)  # compiles ask this of the same few shapes thousands of times

    def _tensors(self, n: int, k: int) -> tuple[StorageTensor, ...]:
        tensors = [StorageTensor("codes", self.storage_shape(n, k), self.storage_dtype)]
        meta = self.metadata_shape(n, k)
        if meta is not None:
            tensors.append(StorageTensor("scale", meta, "float16"))
            if not self.symmetric:
                tensors.append(StorageTensor("offset", meta, "float16"))
        return tuple(tensors)

    def storage_bytes(self, n: int, k: int) -> int:
        """Exact bytes of an [n, k] weight in this scheme: codes plus scales and offsets."""
        return sum(t.shape[0] * t.shape[1] * _ITEMSIZE[t.dtype] for t in self.storage_tensors(n, k))

    def bits_per_weight(self, k: int) -> float:
        """Bits per weight including metadata, for rows of length k (q3p5 dense g=128: 3.75)."""
        return self.storage_bytes(1, k) * 8 / k


@functools.lru_cache(maxsize=4096)
def _storage_tensors(scheme: Scheme, n: int, k: int) -> tuple[StorageTensor, ...]:
    return scheme._tensors(n, k)  # pyright: ignore[reportPrivateUsage]


def parse_scheme(spec: str) -> Scheme:
    """Parse a spec string such as `q3p5:g=64:container=byte`; ValueError names what is wrong."""
    text = spec.strip()
    name, *pairs = text.split(":")
    name = name.strip().lower()
    if name not in _KEYS:
        hint = did_you_mean(name, [*SCHEME_NAMES, *_KEYS])
        raise Q35Error(
            f"unknown quantization scheme '{name}' (valid: {', '.join(SCHEME_NAMES)}; for sizes only, the other "
            f"ggml types: iq2_xxs, tq1_0, bf16, ...){hint and '; '}{hint}"
        )
    values: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise Q35Error(f"malformed option '{pair}' in scheme '{spec}' (expected key=value)")
        if key not in _KEYS[name]:
            valid = ", ".join(_KEYS[name]) or "none"
            raise Q35Error(f"unknown key '{key}' for scheme {name} (valid keys: {valid})")
        if key in values:
            raise Q35Error(f"key '{key}' given twice in scheme '{spec}'")
        values[key] = value
    group = _DEFAULT_GROUP[name]
    if "g" in values:
        parsed = parse_int(values["g"], "group size g")
        if isinstance(parsed, str):
            raise Q35Error(parsed)
        group = parsed
        if group <= 0:
            raise Q35Error(f"group size g must be positive, got {group}")
        if group > MAX_GROUP:
            raise Q35Error(f"group size g = {group} in scheme '{clip(spec)}' is more than the limit of {MAX_GROUP}")
        if name == "q3p5" and group % 2 != 0:
            raise Q35Error(f"q3p5 group size g must be even (weights pair up along K), got {group}")
    container: str | None = None
    if name == "q3p5":
        container = values.get("container", "dense")
        if container not in CONTAINERS:
            raise Q35Error(f"unknown q3p5 container '{container}' (valid: {', '.join(CONTAINERS)})")
    return Scheme(name=name, group=group, container=container)  # type: ignore[arg-type]
