"""A host library's weights from a GGUF file: the file's tensors in the compiled schemes.

    params = gguf_params(graph_module, "model.gguf")     # {"decoder.0.q_proj": QuantizedTensor, ...}

Every `q35.weight` of the graph takes the file's tensor of the same model-language name
(`q35c.frontend.gguf_file.canonical_name`: `blk.0.attn_q.weight` is `decoder.0.q_proj`). A tensor stored in the
weight's own scheme (SmolLM2's Q4_1 linears and Q8_0 embeddings compiled as they are) is used as stored, bit
for bit; any other is decoded to float32 and encoded in the weight's scheme by q35c's reference encoder
(`q35c.formats`), as `q35c quantize` does. The rows of q_proj and k_proj are put back in rotate-half order
(llama.cpp's converter interleaves each head's rope pairs; `q35c.frontend.gguf_dense`), which moves whole rows,
so it is exact in any format whose groups run along K.

A file without a tensor for one of the model's weights, or with a tensor of another shape, is a user error
(Q35Error, exit 2) naming the tensor.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from q35c import formats
from q35c.dialects.q35 import PackedType, WeightOp
from q35c.formats import QuantizedTensor
from q35c.frontend.gguf_dense import gguf_config, in_rope_halves, rope_rows_to_halves
from q35c.frontend.gguf_file import _architecture, gguf_tensors
from q35c.frontend.gguf_reader import read_gguf
from q35c.frontend.gguf_tensors import tensor_weight
from q35c.util.errors import Location, Q35Error


def graph_weights(module: Any) -> dict[str, PackedType]:
    """Every distinct `q35.weight` of a graph module: name -> its packed type."""
    found: dict[str, PackedType] = {}
    for op in module.walk():
        if isinstance(op, WeightOp) and isinstance(op.result.type, PackedType):
            found.setdefault(op.param_name.data, op.result.type)
    return found


def _dims(shape: tuple[int, ...]) -> str:
    return "x".join(str(d) for d in shape)


def gguf_params(module: Any, path: str) -> dict[str, QuantizedTensor]:
    """The weights of a graph module from the GGUF file at `path` (see the module docstring)."""
    gguf = read_gguf(path)
    tensors = gguf_tensors(gguf, _architecture(gguf))
    cfg = gguf_config(gguf)
    params: dict[str, QuantizedTensor] = {}
    for name, packed in graph_weights(module).items():
        info = tensors.get(name)
        if info is None:
            raise Q35Error(f"the GGUF file has no tensor for the model's weight '{name}'", Location(path))
        shape = tuple(packed.get_shape())
        want = shape if len(shape) == 2 else (1, shape[0])
        qt = tensor_weight(gguf, info)
        if tuple(qt.shape) != want:
            raise Q35Error(
                f"tensor '{info.name}' ({name}) is {_dims(tuple(qt.shape) if len(shape) == 2 else qt.shape[1:])}, "
                f"but the model's weight is {_dims(shape)}",
                Location(path),
            )
        if str(qt.scheme) == str(packed.scheme):
            params[name] = in_rope_halves(name, qt, cfg)
            continue
        w = np.asarray(formats.get(qt.scheme).dequantize(qt), dtype=np.float32).reshape(want)
        if name.endswith((".q_proj", ".k_proj")):
            w = rope_rows_to_halves(w, cfg.heads if name.endswith(".q_proj") else cfg.kv_heads)
        params[name] = formats.get(packed.scheme).quantize(np.ascontiguousarray(w))
    return params
