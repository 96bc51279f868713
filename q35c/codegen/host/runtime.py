"""Calling a host library from Python: numpy arrays as MLIR memref descriptors, through ctypes.

    lib = HostLibrary.load(Path("out/tiny"))          # libq35.so and its manifest libq35.json
    lib.set_threads(2)
    (logits,) = lib.call("q35_decode_step", [ids, pos, *caches, *weights])

`call` checks every array against the entry's manifest (shape and element type) before anything runs, passes
each as a pointer to a ranked memref descriptor (`abi.header` declares the same structs) and returns the output
buffers it allocated. `bind` prepares the descriptors once, so a timing loop calls the entry with no Python work
beyond the call itself; `prepare` also gives the input arrays the descriptors point at, which a generation loop
writes between calls (the next token and position, the new KV-cache rows).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import mmap
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from q35c.codegen.host.abi import Entry, Tensor
from q35c.util.errors import Q35Error

LIBRARY = "libq35.so"
MANIFEST = "libq35.json"
HEADER = "libq35.h"

DTYPES: dict[str, np.dtype[Any]] = {
    "f16": np.dtype(np.float16),
    "f32": np.dtype(np.float32),
    "f64": np.dtype(np.float64),
    "i8": np.dtype(np.int8),
    "i32": np.dtype(np.int32),
    "i64": np.dtype(np.int64),
}
# Storage that numpy keeps unsigned is passed as the signed type of the same width (the bits are the same).
_SAME_BITS = {np.dtype(np.uint8): np.dtype(np.int8), np.dtype(np.uint32): np.dtype(np.int32)}

_DESCRIPTORS: dict[int, type[ctypes.Structure]] = {}


def descriptor_type(rank: int) -> type[ctypes.Structure]:
    """MLIR's ranked memref descriptor of `rank` as a ctypes structure."""
    if rank not in _DESCRIPTORS:
        fields: list[tuple[str, Any]] = [
            ("allocated", ctypes.c_void_p),
            ("aligned", ctypes.c_void_p),
            ("offset", ctypes.c_int64),
        ]
        if rank:
            fields += [("sizes", ctypes.c_int64 * rank), ("strides", ctypes.c_int64 * rank)]
        _DESCRIPTORS[rank] = type(f"MemRef{rank}", (ctypes.Structure,), {"_fields_": fields})
    return _DESCRIPTORS[rank]


def descriptor(array: NDArray[Any]) -> ctypes.Structure:
    """A descriptor of a C-contiguous array (it must outlive every call that uses the descriptor)."""
    assert array.flags.c_contiguous, "arrays passed to a host library must be C-contiguous"
    desc = descriptor_type(array.ndim)()
    desc.allocated = desc.aligned = array.ctypes.data
    desc.offset = 0
    if array.ndim:
        desc.sizes[:] = list(array.shape)
        desc.strides[:] = [s // array.itemsize for s in array.strides]
    return desc


HUGE_PAGE = 2 << 20  # bytes: x86-64's transparent huge page


def weight_buffer(shape: Sequence[int], dtype: np.dtype[Any]) -> NDArray[Any]:
    """An uninitialised C-contiguous array for weights. From 2 MiB on, its memory is a private anonymous mapping
    that the kernel is asked to back with transparent huge pages (`madvise(MADV_HUGEPAGE)`, where the system
    allows it): a kernel streaming tens of MB of weights then walks one TLB entry per 2 MiB instead of per 4 KiB
    (a C model of the host's kernel, 4096x11008 int4 weights in 8-row blocks streamed from memory, docs/host-code.md:
    1.7 ms with 4 KiB pages, 1.3 with huge pages)."""
    nbytes = int(np.prod(shape)) * dtype.itemsize
    if nbytes < HUGE_PAGE:
        return np.empty(shape, dtype)
    size = -(-nbytes // HUGE_PAGE) * HUGE_PAGE
    memory = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    advice = getattr(mmap, "MADV_HUGEPAGE", None)
    if advice is not None:
        with contextlib.suppress(OSError):
            memory.madvise(advice)
    return np.frombuffer(memory, dtype=dtype, count=int(np.prod(shape))).reshape(shape)


def interleave_rows(array: NDArray[Any], rows: int, groups: int) -> NDArray[Any]:
    """A weight's storage [N, C] in the layout of rows interleaved by `rows` over `groups` column groups
    (`abi.Tensor.interleave`): rows R b .. R b + R - 1 hold, group by group, each of those rows' run of it."""
    n, c = array.shape
    if n % rows or c % groups:
        raise Q35Error(f"storage {list(array.shape)} cannot be interleaved by {rows} rows in {groups} column groups")
    out = weight_buffer((n // rows, groups, rows, c // groups), array.dtype)
    out[...] = array.reshape(n // rows, rows, groups, c // groups).transpose(0, 2, 1, 3)
    return out.reshape(n, c)


def deinterleave_rows(array: NDArray[Any], rows: int, groups: int) -> NDArray[Any]:
    """The inverse of `interleave_rows`: the plain row-major storage."""
    n, c = array.shape
    blocks = array.reshape(n // rows, groups, rows, c // groups).transpose(0, 2, 1, 3)
    return np.ascontiguousarray(blocks).reshape(n, c)


def _entry_from_json(data: dict[str, Any]) -> Entry:
    def tensor(t: dict[str, Any]) -> Tensor:
        layout = t.get("interleave")
        interleave = None if layout is None else (int(layout[0]), int(layout[1]))
        return Tensor(t["name"], tuple(t["shape"]), t["element"], t.get("param"), t.get("role"), interleave)

    return Entry(
        data["symbol"],
        data["phase"],
        data["kind"],
        data["source"],
        tuple(tensor(t) for t in data["args"]),
        tuple(tensor(t) for t in data["results"]),
    )


def check_argument(entry: Entry, spec: Tensor, array: NDArray[Any]) -> NDArray[Any]:
    """The array as the entry takes it (unsigned storage viewed as signed, rows interleaved where the entry
    stores them so: a copy); Q35Error if it does not match."""
    dtype = _SAME_BITS.get(array.dtype, array.dtype)
    want = DTYPES[spec.element]
    if tuple(array.shape) != spec.shape or dtype != want:
        raise Q35Error(
            f"{entry.symbol}: argument {spec.name} is {list(spec.shape)} {spec.element}, got {list(array.shape)} "
            f"{array.dtype}"
        )
    if spec.interleave is not None:
        return interleave_rows(array.view(dtype), *spec.interleave)
    return np.ascontiguousarray(array.view(dtype))


@dataclass(frozen=True, eq=False)
class Bound:
    """An entry bound to its arguments: `call()` runs it; `inputs` are the arrays it reads (write into them between
    calls to change what the next call sees: a KV cache, the next token), `outputs` the arrays it writes."""

    call: Callable[[], None]
    inputs: list[NDArray[Any]]
    outputs: list[NDArray[Any]]


@dataclass(eq=False)
class HostLibrary:
    """A loaded host library and its manifest (the entries it exports)."""

    path: Path
    manifest: dict[str, Any]
    handle: ctypes.CDLL
    # Interleaved copies of weight arrays (`interleave_rows`), made once per array and layout for every entry
    # bound to it (the decode step and the prefill share their weights): keyed by the memory the array views
    # (address, shape, strides, type; the array is kept, so the memory stays its own).
    _stored: dict[tuple[object, ...], tuple[NDArray[Any], NDArray[Any]]] = field(
        default_factory=dict[tuple[object, ...], tuple[NDArray[Any], NDArray[Any]]]
    )

    @classmethod
    def load(cls, directory: Path) -> HostLibrary:
        manifest = json.loads((directory / MANIFEST).read_text())
        return cls(directory / LIBRARY, manifest, ctypes.CDLL(str((directory / LIBRARY).resolve())))

    @property
    def entries(self) -> dict[str, Entry]:
        return {e["symbol"]: _entry_from_json(e) for e in self.manifest["entries"]}

    def set_threads(self, threads: int) -> None:
        """The OpenMP threads the library's parallel loops use (no effect in a library built without OpenMP)."""
        setter = getattr(self.handle, "omp_set_num_threads", None)
        if setter is not None:
            setter(ctypes.c_int(threads))

    def bind(self, symbol: str, arguments: Sequence[NDArray[Any]]) -> tuple[Callable[[], None], list[NDArray[Any]]]:
        """A no-argument function calling `symbol` on `arguments`, and the output arrays it writes."""
        bound = self.prepare(symbol, arguments)
        return bound.call, bound.outputs

    def prepare(self, symbol: str, arguments: Sequence[NDArray[Any]]) -> Bound:
        """`symbol` bound to `arguments` (see `Bound`). A weight the entry stores with interleaved rows is copied
        so once per array (later binds of the same array reuse the copy: after changing a weight array in place,
        `release()` before binding it again)."""
        entry = self.entries[symbol]
        if len(arguments) != len(entry.args):
            raise Q35Error(f"{symbol} takes {len(entry.args)} arguments, got {len(arguments)}")
        inputs = [self._argument(entry, spec, a) for spec, a in zip(entry.args, arguments, strict=True)]
        outputs = [np.zeros(t.shape, DTYPES[t.element]) for t in entry.results]
        descriptors = [descriptor(a) for a in (*inputs, *outputs)]
        function = getattr(self.handle, entry.c_name)
        function.restype = None
        pointers = [ctypes.byref(d) for d in descriptors]
        keep = (inputs, outputs, descriptors)  # the buffers the descriptors point at live as long as `call`

        def call() -> None:
            function(*pointers)
            assert keep

        return Bound(call, inputs, outputs)

    def _argument(self, entry: Entry, spec: Tensor, array: NDArray[Any]) -> NDArray[Any]:
        if spec.interleave is None:
            return check_argument(entry, spec, array)
        key = (array.ctypes.data, array.shape, array.strides, array.dtype.str, spec.interleave)
        if key not in self._stored:
            self._stored[key] = (array, check_argument(entry, spec, array))
        return self._stored[key][1]

    def release(self) -> None:
        """Drop the interleaved copies of weight arrays kept for later binds."""
        self._stored.clear()

    def call(self, symbol: str, arguments: Sequence[NDArray[Any]]) -> list[NDArray[Any]]:
        run, outputs = self.bind(symbol, arguments)
        run()
        return outputs
