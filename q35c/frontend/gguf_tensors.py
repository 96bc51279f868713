"""A GGUF file's weights as q35c `QuantizedTensor`s, one tensor at a time, memory-mapped.

    gguf = read_gguf("model.gguf")                    # q35c.frontend.gguf_reader: the header only
    for name, qt in gguf_weights(gguf):               # model-language names: decoder.3.q_proj, norm, ...
        w = formats.get(qt.scheme).dequantize(qt)     # float32 [N, K], bit-exact with ggml

Each `QuantizedTensor` is a view of the file's memory map (nothing is read until its bytes are used, and a
tensor's pages can be dropped once it is no longer referenced): F32 and F16 tensors as float32/float16 arrays,
every other type as its ggml blocks, uint8 [N, K / block * bytes], in the scheme `scheme_of` names. Vectors
(norm gains, biases) are [1, D], as q35 stores them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from q35c.formats import QuantizedTensor
from q35c.frontend.gguf_file import canonical_name, scheme_of
from q35c.frontend.gguf_reader import GgufFile, TensorInfo
from q35c.ir.schemes import parse_scheme
from q35c.util.errors import Location, Q35Error

_FLOATS = {"F32": np.float32, "F16": np.float16}


def tensor_weight(gguf: GgufFile, info: TensorInfo) -> QuantizedTensor:
    """One tensor of the file as a QuantizedTensor over the memory map ([1, D] for vectors)."""
    if len(info.dims) > 2:
        raise Q35Error(
            f"tensor '{info.name}' has {len(info.dims)} dimensions; weights have 1 or 2", Location(gguf.path)
        )
    rows = info.dims[1] if len(info.dims) == 2 else 1
    shape = (rows, info.dims[0])
    raw = gguf.tensor_data(info)
    data: Any = raw.view(_FLOATS[info.ggml.name]) if info.ggml.name in _FLOATS else raw
    return QuantizedTensor(
        np.asarray(data).reshape(rows, -1), None, None, shape, parse_scheme(scheme_of(info.ggml.name))
    )


def gguf_weights(gguf: GgufFile) -> Iterator[tuple[str, QuantizedTensor]]:
    """Every tensor of a LLaMA-family file by model-language name (others, such as rope_freqs, skipped)."""
    for info in gguf.tensors:
        name = canonical_name(info.name)
        if name is not None:
            yield name, tensor_weight(gguf, info)
