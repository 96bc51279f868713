"""Quantization schemes: spec strings, their parameters and the storage they imply.

A scheme is named by a spec string `NAME[:key=value]*` (`q3p5`, `q3p5:g=64:container=byte`, `int4:g=128`,
`int8`, `fp16`, `q4_0`, `q8_0`). `parse_scheme` turns it into a frozen `Scheme`; `str(scheme)` gives the
canonical spec back, with every default spelled out. The numeric work (quantize, pack, unpack) lives in
`q35c.formats`; this module only knows shapes and sizes, so the IR dialect can use it without numpy.

Weight convention: a weight has shape [N, K] (out_features, in_features); quantization groups of `g`
consecutive elements run along K.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

SchemeName = Literal["fp16", "int8", "int4", "q3p5", "q4_0", "q8_0"]
SCHEME_NAMES: tuple[SchemeName, ...] = ("fp16", "int8", "int4", "q3p5", "q4_0", "q8_0")
CONTAINERS = ("dense", "byte")

# Keys each scheme accepts in its spec string.
_KEYS: dict[str, tuple[str, ...]] = {
    "fp16": (),
    "int8": ("g",),
    "int4": ("g",),
    "q3p5": ("g", "container"),
    "q4_0": (),
    "q8_0": (),
}
_DEFAULT_GROUP: dict[str, int | None] = {
    "fp16": None,
    "int8": None,  # None: one scale per output channel (the whole row)
    "int4": 128,
    "q3p5": 128,
    "q4_0": 32,
    "q8_0": 32,
}
# Bits of code storage per weight, before metadata.
_CODE_BITS: dict[str, float] = {"fp16": 16.0, "int8": 8.0, "int4": 4.0, "q4_0": 4.0, "q8_0": 8.0}
# llama.cpp block formats: bytes per block of 32 weights (fp16 scale + codes).
LLAMA_BLOCK = 32
LLAMA_BLOCK_BYTES: dict[str, int] = {"q4_0": 18, "q8_0": 34}


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
    def symmetric(self) -> bool:
        """Symmetric schemes carry a scale only; asymmetric ones (int4, q3p5) also an offset."""
        return self.name in ("int8", "q4_0", "q8_0")

    @property
    def is_quantized(self) -> bool:
        return self.name != "fp16"

    @property
    def code_bits(self) -> float:
        """Storage bits per weight for the codes alone (q3p5 byte: 4.0, dense: 3.5)."""
        if self.name == "q3p5":
            return 4.0 if self.container == "byte" else 3.5
        return _CODE_BITS[self.name]

    def group_size(self, k: int) -> int:
        """The group size along K for a row of length k (int8 per-channel: the whole row)."""
        if self.group is None:
            return k
        return self.group

    def check_shape(self, n: int, k: int) -> None:
        """Raise ValueError, naming the numbers, if an [n, k] weight cannot be stored in this scheme."""
        if n <= 0 or k <= 0:
            raise ValueError(f"weight shape must be positive, got [{n}, {k}]")
        if not self.is_quantized:
            return
        g = self.group_size(k)
        if k % g != 0:
            raise ValueError(f"{self}: K={k} is not divisible by the group size g={g}")
        if self.name == "int4" and k % 8 != 0:
            raise ValueError(f"{self}: K={k} must be a multiple of 8 (8 int4 codes per uint32 word)")
        if self.name == "q3p5" and self.container == "dense" and k % 64 != 0:
            raise ValueError(
                f"{self}: K={k} must be a multiple of 64 for the dense container (32 pairs = 7 uint32 words)"
            )

    def n_groups(self, k: int) -> int:
        return k // self.group_size(k)

    def storage_shape(self, n: int, k: int) -> tuple[int, int]:
        """Shape of the packed code array for an [n, k] weight (its dtype is `storage_dtype`)."""
        self.check_shape(n, k)
        if self.name in ("fp16", "int8"):
            return (n, k)
        if self.name == "int4":
            return (n, k // 8)
        if self.name == "q3p5":
            return (n, k // 2) if self.container == "byte" else (n, 7 * k // 64)
        return (n, k // LLAMA_BLOCK * LLAMA_BLOCK_BYTES[self.name])

    @property
    def storage_dtype(self) -> str:
        """numpy dtype name of the packed array."""
        return {
            "fp16": "float16",
            "int8": "int8",
            "int4": "uint32",
            "q3p5": "uint8" if self.container == "byte" else "uint32",
            "q4_0": "uint8",
            "q8_0": "uint8",
        }[self.name]

    def metadata_shape(self, n: int, k: int) -> tuple[int, int] | None:
        """Shape of the separate float16 scale (and offset) arrays; None where there are none.

        llama.cpp formats keep their scale inside each block, so they have no separate metadata.
        """
        if self.name in ("fp16", "q4_0", "q8_0"):
            return None
        return (n, self.n_groups(k))

    def storage_bytes(self, n: int, k: int) -> int:
        """Exact bytes of an [n, k] weight in this scheme: codes plus scales and offsets."""
        sn, sk = self.storage_shape(n, k)
        itemsize = {"float16": 2, "int8": 1, "uint8": 1, "uint32": 4}[self.storage_dtype]
        total = sn * sk * itemsize
        meta = self.metadata_shape(n, k)
        if meta is not None:
            arrays = 1 if self.symmetric else 2
            total += arrays * meta[0] * meta[1] * 2
        return total

    def bits_per_weight(self, k: int) -> float:
        """Bits per weight including metadata, for rows of length k (q3p5 dense g=128: 3.75)."""
        return self.storage_bytes(1, k) * 8 / k


def parse_scheme(spec: str) -> Scheme:
    """Parse a spec string such as `q3p5:g=64:container=byte`; ValueError names what is wrong."""
    text = spec.strip()
    name, *pairs = text.split(":")
    name = name.strip().lower()
    if name not in _KEYS:
        raise ValueError(f"unknown quantization scheme '{name}' (valid: {', '.join(SCHEME_NAMES)})")
    values: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise ValueError(f"malformed option '{pair}' in scheme '{spec}' (expected key=value)")
        if key not in _KEYS[name]:
            valid = ", ".join(_KEYS[name]) or "none"
            raise ValueError(f"unknown key '{key}' for scheme {name} (valid keys: {valid})")
        if key in values:
            raise ValueError(f"key '{key}' given twice in scheme '{spec}'")
        values[key] = value
    group = _DEFAULT_GROUP[name]
    if "g" in values:
        try:
            group = int(values["g"])
        except ValueError:
            raise ValueError(f"group size g must be an integer, got '{values['g']}'") from None
        if group <= 0:
            raise ValueError(f"group size g must be positive, got {group}")
        if name == "q3p5" and group % 2 != 0:
            raise ValueError(f"q3p5 group size g must be even (weights pair up along K), got {group}")
    container: str | None = None
    if name == "q3p5":
        container = values.get("container", "dense")
        if container not in CONTAINERS:
            raise ValueError(f"unknown q3p5 container '{container}' (valid: {', '.join(CONTAINERS)})")
    return Scheme(name=name, group=group, container=container)  # type: ignore[arg-type]
