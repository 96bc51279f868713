"""A GGUF reader (versions 2 and 3) that reads the header and nothing else unless asked.

    gguf = read_gguf("model.gguf")
    gguf.metadata["llama.block_count"]         # 30 (numbers, strings and bools as Python values)
    gguf.metadata["tokenizer.ggml.tokens"]     # a GgufArray: its kind and count, values read on demand
    info = gguf.tensor("blk.0.ffn_down.weight")  # name, ggml type, dims (ggml order: K first), bytes, offset
    raw = gguf.tensor_data(info)               # the tensor's bytes, memory-mapped: a numpy uint8 view

The file is memory-mapped and parsed with `struct`: the header, every metadata value except arrays (an array
is recorded by kind, count and offset; a string array is walked once to find its end, its strings decoded
only when `values()` is called) and the tensor infos. Tensor data is never read by `read_gguf`, so a 40 GB
file opens as fast as a small one. numpy is imported only by `tensor_data`.

Everything read is validated before it is used, and every violation is a `Q35Error` naming the key or
tensor: counts larger than the bytes left could hold, strings past the end of the file, unknown value kinds,
arrays nested too deeply, unknown ggml tensor types, more than 4 dimensions, a first dimension that is not a
whole number of the type's blocks, tensor data out of the file or overlapping another tensor, a bad alignment.

`GGML_TYPES` lists every tensor type of ggml with its block size and bytes per block (the tests check it
against the `gguf` package's `GGML_QUANT_SIZES`).
"""

from __future__ import annotations

import itertools
import math
import mmap
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from q35c.util.errors import Location, Q35Error

if TYPE_CHECKING:
    from numpy.typing import NDArray


@dataclass(frozen=True)
class GgmlType:
    """A ggml tensor type: its id in the file, name, weights per block and bytes per block."""

    id: int
    name: str
    block: int
    block_bytes: int

    @property
    def bits_per_weight(self) -> float:
        return self.block_bytes * 8 / self.block


_TYPE_TABLE = (
    (0, "F32", 1, 4),
    (1, "F16", 1, 2),
    (2, "Q4_0", 32, 18),
    (3, "Q4_1", 32, 20),
    (6, "Q5_0", 32, 22),
    (7, "Q5_1", 32, 24),
    (8, "Q8_0", 32, 34),
    (9, "Q8_1", 32, 40),
    (10, "Q2_K", 256, 84),
    (11, "Q3_K", 256, 110),
    (12, "Q4_K", 256, 144),
    (13, "Q5_K", 256, 176),
    (14, "Q6_K", 256, 210),
    (15, "Q8_K", 256, 292),
    (16, "IQ2_XXS", 256, 66),
    (17, "IQ2_XS", 256, 74),
    (18, "IQ3_XXS", 256, 98),
    (19, "IQ1_S", 256, 50),
    (20, "IQ4_NL", 32, 18),
    (21, "IQ3_S", 256, 110),
    (22, "IQ2_S", 256, 82),
    (23, "IQ4_XS", 256, 136),
    (24, "I8", 1, 1),
    (25, "I16", 1, 2),
    (26, "I32", 1, 4),
    (27, "I64", 1, 8),
    (28, "F64", 1, 8),
    (29, "IQ1_M", 256, 56),
    (30, "BF16", 1, 2),
    (34, "TQ1_0", 256, 54),
    (35, "TQ2_0", 256, 66),
    (39, "MXFP4", 32, 17),
    (40, "NVFP4", 64, 36),
    (41, "Q1_0", 128, 18),
)
GGML_TYPES: Mapping[int, GgmlType] = {row[0]: GgmlType(*row) for row in _TYPE_TABLE}
GGML_TYPE_NAMES: Mapping[str, GgmlType] = {t.name: t for t in GGML_TYPES.values()}

MAGIC = b"GGUF"
VERSIONS = (2, 3)
MAX_DIMS = 4  # GGML_MAX_DIMS
MAX_ARRAY_DEPTH = 4  # arrays of arrays: GGUF allows them; no real file nests deeper than 2
MAX_NAME_BYTES = 65536  # keys and tensor names (ggml's own limit for tensor names is 64)
DEFAULT_ALIGNMENT = 32

# GGUF value kinds: id -> (name, struct format or None for string/array)
_KINDS: dict[int, tuple[str, str | None]] = {
    0: ("uint8", "<B"),
    1: ("int8", "<b"),
    2: ("uint16", "<H"),
    3: ("int16", "<h"),
    4: ("uint32", "<I"),
    5: ("int32", "<i"),
    6: ("float32", "<f"),
    7: ("bool", "<?"),
    8: ("string", None),
    9: ("array", None),
    10: ("uint64", "<Q"),
    11: ("int64", "<q"),
    12: ("float64", "<d"),
}
STRING, ARRAY, BOOL = 8, 9, 7
INTEGER_KINDS = frozenset({0, 1, 2, 3, 4, 5, 10, 11})
FLOAT_KINDS = frozenset({6, 12})


def kind_name(kind: int) -> str:
    return _KINDS[kind][0]


@dataclass(frozen=True)
class GgufArray:
    """A metadata array, not read until `values()`: its element kind, count, and where its data starts."""

    kind: int
    count: int
    offset: int
    end: int
    data: mmap.mmap | bytes

    @property
    def kind_name(self) -> str:
        return kind_name(self.kind)

    def __len__(self) -> int:
        return self.count

    def values(self) -> list[Any]:
        """The elements as Python values (strings decoded as UTF-8 with replacement, nested arrays as GgufArray)."""
        out: list[Any] = []
        pos = self.offset
        for _ in range(self.count):
            value, pos = _value(self.data, pos, self.kind, len(self.data), "array element", 1)
            out.append(value)
        return out


@dataclass(frozen=True)
class MetadataValue:
    """A metadata value and its GGUF kind (`uint32`, `string`, `array`, ...)."""

    kind: int
    value: Any

    @property
    def kind_name(self) -> str:
        return kind_name(self.kind)


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of the file: `dims` in ggml order (the row length K first), `offset` absolute in the file."""

    name: str
    ggml: GgmlType
    dims: tuple[int, ...]
    offset: int
    nbytes: int

    @property
    def shape(self) -> tuple[int, ...]:
        """numpy/PyTorch order: [N, K] for a matrix."""
        return tuple(reversed(self.dims))

    @property
    def elements(self) -> int:
        return math.prod(self.dims)


@dataclass(frozen=True)
class GgufFile:
    """A GGUF file's header: version, metadata (kinds kept), tensor infos, and the data section's bounds."""

    path: str
    version: int
    fields: Mapping[str, MetadataValue]
    tensors: tuple[TensorInfo, ...]
    alignment: int
    data_offset: int
    file_size: int
    _data: mmap.mmap | bytes

    @property
    def metadata(self) -> Mapping[str, Any]:
        return {key: field.value for key, field in self.fields.items()}

    @property
    def tensor_bytes(self) -> int:
        """Bytes of all tensors' data (without the alignment padding between them)."""
        return sum(t.nbytes for t in self.tensors)

    def tensor(self, name: str) -> TensorInfo:
        for info in self.tensors:
            if info.name == name:
                return info
        raise Q35Error(f"GGUF file has no tensor '{name}'", Location(self.path))

    def tensor_data(self, info: TensorInfo) -> NDArray[Any]:
        """The raw bytes of one tensor as a read-only numpy uint8 array [N, bytes per row] over the memory map
        (ggml blocks as stored; `q35c.formats` decodes them)."""
        import numpy as np

        rows = info.elements // info.dims[0]
        flat = np.frombuffer(self._data, dtype=np.uint8, count=info.nbytes, offset=info.offset)
        return flat.reshape(rows, info.nbytes // rows)

    def iter_tensor_data(self) -> Iterator[tuple[TensorInfo, NDArray[Any]]]:
        """Every tensor with its bytes, one at a time (each a view of the memory map)."""
        for info in self.tensors:
            yield info, self.tensor_data(info)


class _Reader:
    """Sequential reads with bounds checks; every failure is a Q35Error located in the file."""

    def __init__(self, data: mmap.mmap | bytes, path: str) -> None:
        self.data = data
        self.size = len(data)
        self.pos = 0
        self.path = path

    def fail(self, message: str) -> Q35Error:
        return Q35Error(message, Location(self.path))

    def unpack(self, fmt: str, what: str) -> Any:
        size = struct.calcsize(fmt)
        if self.pos + size > self.size:
            raise self.fail(f"GGUF file ends inside {what} (at byte {self.pos} of {self.size})")
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return value

    def string(self, what: str) -> str:
        length = self.unpack("<Q", what)
        if length > MAX_NAME_BYTES or self.pos + length > self.size:
            raise self.fail(f"{what} has an invalid length {length} (at byte {self.pos - 8})")
        raw = bytes(self.data[self.pos : self.pos + length])
        self.pos += length
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise self.fail(f"{what} is not valid UTF-8 (at byte {self.pos - length})") from None

    def count(self, what: str, min_bytes_each: int) -> int:
        """A u64 count, rejected if the rest of the file could not hold that many items."""
        value = self.unpack("<Q", what)
        left = self.size - self.pos
        if value * min_bytes_each > left:
            raise self.fail(f"{what} {value} is impossible: only {left} bytes are left in the file")
        return value


def _value(data: mmap.mmap | bytes, pos: int, kind: int, size: int, what: str, depth: int) -> tuple[Any, int]:
    """Read one value of `kind` at `pos` (arrays lazily); return it and the position after it. Raises ValueError
    with a message (the caller adds the location)."""
    if kind not in _KINDS:
        raise ValueError(f"{what} has an unknown value type {kind}")
    fmt = _KINDS[kind][1]
    if fmt is not None:
        width = struct.calcsize(fmt)
        if pos + width > size:
            raise ValueError(f"{what} runs past the end of the file")
        return struct.unpack_from(fmt, data, pos)[0], pos + width
    if pos + 8 > size:
        raise ValueError(f"{what} runs past the end of the file")
    if kind == STRING:
        (length,) = struct.unpack_from("<Q", data, pos)
        if pos + 8 + length > size:
            raise ValueError(f"{what} is a string of {length} bytes that runs past the end of the file")
        raw = bytes(data[pos + 8 : pos + 8 + length])
        return raw.decode("utf-8", errors="replace"), pos + 8 + length
    if depth > MAX_ARRAY_DEPTH:
        raise ValueError(f"{what} nests arrays more than {MAX_ARRAY_DEPTH} deep")
    if pos + 12 > size:
        raise ValueError(f"{what} runs past the end of the file")
    item_kind, count = struct.unpack_from("<IQ", data, pos)
    start = pos + 12
    if item_kind not in _KINDS:
        raise ValueError(f"{what} is an array of an unknown value type {item_kind}")
    item_fmt = _KINDS[item_kind][1]
    min_width = struct.calcsize(item_fmt) if item_fmt is not None else (8 if item_kind == STRING else 12)
    if count * min_width > size - start:
        raise ValueError(f"{what} claims {count} elements, more than the file could hold")
    if item_fmt is not None:
        end = start + count * min_width
    elif item_kind == STRING:
        end = _skip_strings(data, start, count, size, what)
    else:
        end = start
        for _ in range(count):  # arrays of arrays: walk to the end (the values are not kept)
            _, end = _value(data, end, ARRAY, size, what, depth + 1)
    return GgufArray(item_kind, count, start, end, data), end


_U64 = struct.Struct("<Q")


def _skip_strings(data: mmap.mmap | bytes, pos: int, count: int, size: int, what: str) -> int:
    """The position after `count` strings starting at `pos` (a tokenizer's 50k strings take ~20 ms)."""
    read = _U64.unpack_from
    last = size - 8
    for _ in range(count):
        if pos > last:
            raise ValueError(f"{what} runs past the end of the file")
        pos += 8 + read(data, pos)[0]
    if pos > size:
        raise ValueError(f"{what} has a string that runs past the end of the file")
    return pos


def _tensor_info(r: _Reader, index: int) -> tuple[str, tuple[int, ...], int, int]:
    name = r.string(f"the name of tensor {index}")
    n_dims = r.unpack("<I", f"the dimension count of tensor '{name}'")
    if not 1 <= n_dims <= MAX_DIMS:
        raise r.fail(f"tensor '{name}' has {n_dims} dimensions (1 to {MAX_DIMS} allowed)")
    dims = tuple(r.unpack("<Q", f"the dimensions of tensor '{name}'") for _ in range(n_dims))
    type_id = r.unpack("<I", f"the type of tensor '{name}'")
    offset = r.unpack("<Q", f"the data offset of tensor '{name}'")
    return name, dims, type_id, offset


def _check_tensor(r: _Reader, name: str, dims: tuple[int, ...], type_id: int) -> tuple[GgmlType, int]:
    if type_id not in GGML_TYPES:
        raise r.fail(f"tensor '{name}' has an unknown ggml type {type_id}")
    ggml = GGML_TYPES[type_id]
    if any(d == 0 for d in dims):
        raise r.fail(f"tensor '{name}' has a zero dimension {list(dims)}")
    if dims[0] % ggml.block:
        raise r.fail(
            f"tensor '{name}' of type {ggml.name} has rows of {dims[0]} elements, not a whole number of its "
            f"{ggml.block}-element blocks"
        )
    elements = math.prod(dims)
    nbytes = elements // ggml.block * ggml.block_bytes
    if nbytes > r.size:
        raise r.fail(f"tensor '{name}' {list(dims)} of type {ggml.name} needs {nbytes} bytes, more than the file has")
    return ggml, nbytes


def parse_gguf(data: mmap.mmap | bytes, path: str) -> GgufFile:
    """Parse a GGUF header from `data` (a memory map or bytes); Q35Error for anything malformed."""
    r = _Reader(data, path)
    if r.size < 4 or bytes(data[:4]) != MAGIC:
        raise r.fail("not a GGUF file (it does not start with 'GGUF')")
    r.pos = 4
    version = r.unpack("<I", "the version")
    if version not in VERSIONS:
        if version & 0xFFFF == 0 and (version >> 16) in (2, 3, 0x200, 0x300):
            raise r.fail("big-endian GGUF files are not supported")
        hint = " (version 1 is llama.cpp's pre-2023 format)" if version == 1 else ""
        raise r.fail(f"unsupported GGUF version {version}{hint}; versions 2 and 3 are read")
    n_tensors = r.count("the tensor count", 8 + 4 + 8 + 4 + 8)
    n_fields = r.count("the metadata count", 8 + 4 + 1)
    fields: dict[str, MetadataValue] = {}
    for i in range(n_fields):
        key = r.string(f"metadata key {i}")
        kind = r.unpack("<I", f"the type of '{key}'")
        try:
            value, r.pos = _value(data, r.pos, kind, r.size, f"metadata '{key}'", 1)
        except ValueError as err:
            raise r.fail(str(err)) from None
        if key in fields:
            raise r.fail(f"metadata key '{key}' appears twice")
        fields[key] = MetadataValue(kind, value)
    alignment = DEFAULT_ALIGNMENT
    if "general.alignment" in fields:
        field = fields["general.alignment"]
        alignment = field.value if field.kind in INTEGER_KINDS else 0
        if not (isinstance(alignment, int) and 0 < alignment <= 1 << 20 and alignment & (alignment - 1) == 0):
            raise r.fail(f"metadata 'general.alignment' must be a power of two, got {field.value!r}")
    raw = [_tensor_info(r, i) for i in range(n_tensors)]
    data_offset = -(-r.pos // alignment) * alignment
    tensors: list[TensorInfo] = []
    seen: set[str] = set()
    for name, dims, type_id, offset in raw:
        if name in seen:
            raise r.fail(f"tensor '{name}' appears twice")
        seen.add(name)
        ggml, nbytes = _check_tensor(r, name, dims, type_id)
        if offset % alignment:
            raise r.fail(f"tensor '{name}' data offset {offset} is not a multiple of the alignment {alignment}")
        start = data_offset + offset
        if start + nbytes > r.size:
            raise r.fail(
                f"tensor '{name}' {list(dims)} of type {ggml.name} is {nbytes} bytes at offset {offset}, past the "
                f"end of the file ({r.size - data_offset} bytes of tensor data)"
            )
        tensors.append(TensorInfo(name, ggml, dims, start, nbytes))
    ordered = sorted(tensors, key=lambda t: t.offset)
    for a, b in itertools.pairwise(ordered):
        if a.offset + a.nbytes > b.offset:
            raise r.fail(
                f"tensor '{a.name}' {list(a.dims)} of type {a.ggml.name} is {a.nbytes} bytes, which overlaps "
                f"tensor '{b.name}' ({b.offset - a.offset} bytes after it)"
            )
    return GgufFile(path, version, fields, tuple(tensors), alignment, data_offset, r.size, data)


def read_gguf(path: str) -> GgufFile:
    """Memory-map the file at `path` and parse its header (tensor data is not read)."""
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, 2)
            if size == 0:
                raise Q35Error("not a GGUF file (it is empty)", Location(path))
            data = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    except OSError as err:
        raise Q35Error(f"cannot read {path}: {err.strerror or err}", Location(path)) from None
    return parse_gguf(data, path)
