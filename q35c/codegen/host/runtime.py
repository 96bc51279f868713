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

import ctypes
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
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


def _entry_from_json(data: dict[str, Any]) -> Entry:
    def tensor(t: dict[str, Any]) -> Tensor:
        return Tensor(t["name"], tuple(t["shape"]), t["element"], t.get("param"), t.get("role"))

    return Entry(
        data["symbol"],
        data["phase"],
        data["kind"],
        data["source"],
        tuple(tensor(t) for t in data["args"]),
        tuple(tensor(t) for t in data["results"]),
    )


def check_argument(entry: Entry, spec: Tensor, array: NDArray[Any]) -> NDArray[Any]:
    """The array as the entry takes it (unsigned storage viewed as signed); Q35Error if it does not match."""
    dtype = _SAME_BITS.get(array.dtype, array.dtype)
    want = DTYPES[spec.element]
    if tuple(array.shape) != spec.shape or dtype != want:
        raise Q35Error(
            f"{entry.symbol}: argument {spec.name} is {list(spec.shape)} {spec.element}, got {list(array.shape)} "
            f"{array.dtype}"
        )
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
        """`symbol` bound to `arguments` (see `Bound`)."""
        entry = self.entries[symbol]
        if len(arguments) != len(entry.args):
            raise Q35Error(f"{symbol} takes {len(entry.args)} arguments, got {len(arguments)}")
        inputs = [check_argument(entry, spec, a) for spec, a in zip(entry.args, arguments, strict=True)]
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

    def call(self, symbol: str, arguments: Sequence[NDArray[Any]]) -> list[NDArray[Any]]:
        run, outputs = self.bind(symbol, arguments)
        run()
        return outputs
