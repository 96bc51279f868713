"""A LLaMA-family GGUF file's weights decoded to float32, in the order q35's ops expect.

    model = dense_gguf("model.gguf")      # config, params {"decoder.3.q_proj": float32 [N, K], ...}, file schemes
    model.params["embed_tokens"]          # [vocab, hidden]; lm_head is absent when the embeddings are tied

llama.cpp's converter permutes the rows of q_proj and k_proj so that its RoPE can rotate adjacent pairs
(x[2i], x[2i+1]); q35's `q35.rope` (and Hugging Face's Llama) rotate halves (x[i], x[i + head_dim/2]). Each
head's rows are put back in rotate-half order here (`rope_rows_to_halves`), which is exact for any format whose
groups run along K (a permutation of rows moves whole groups). Every other tensor is decoded as it is stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from q35c import formats
from q35c.formats import QuantizedTensor
from q35c.frontend.gguf_file import _architecture, _config, _layers_found, gguf_tensors
from q35c.frontend.gguf_reader import GgufFile, read_gguf
from q35c.frontend.gguf_tensors import tensor_weight
from q35c.frontend.llama import LlamaConfig

F32 = NDArray[np.float32]


def rope_rows_to_halves(w: NDArray[Any], heads: int) -> NDArray[Any]:
    """Rows of a GGUF q/k projection (pairs interleaved per head) in rotate-half order (llama.cpp's
    `permute` undone: [heads, half, 2] -> [heads, 2, half])."""
    n = w.shape[0]
    return w.reshape(heads, n // heads // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def rope_halves_to_rows(w: NDArray[Any], heads: int) -> NDArray[Any]:
    """The inverse of `rope_rows_to_halves` (what llama.cpp's converter does)."""
    n = w.shape[0]
    return w.reshape(heads, 2, n // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def in_rope_halves(name: str, qt: QuantizedTensor, cfg: LlamaConfig) -> QuantizedTensor:
    """A GGUF tensor as q35's graph expects it: q_proj/k_proj rows (packed codes and any scale/offset rows) in
    rotate-half order; any other tensor unchanged. What code that runs a GGUF file's weights through
    `q35.rope` must load instead of `gguf_weights`' raw rows."""
    if not name.endswith((".q_proj", ".k_proj")):
        return qt
    heads = cfg.heads if name.endswith(".q_proj") else cfg.kv_heads

    def rows(a: NDArray[Any] | None) -> NDArray[Any] | None:
        return None if a is None else np.ascontiguousarray(rope_rows_to_halves(a, heads))

    return replace(qt, packed=rows(qt.packed), scale=rows(qt.scale), offset=rows(qt.offset))


@dataclass(frozen=True, eq=False)
class DenseModel:
    """A decoder's config and float32 weights by model-language name (vectors 1-D), and each tensor's scheme
    in the file it came from."""

    config: LlamaConfig
    params: Mapping[str, F32]
    schemes: Mapping[str, str]
    path: str = ""

    def matrix_names(self) -> list[str]:
        """The weight matrices (2-D params), in file order."""
        return [name for name, w in self.params.items() if w.ndim == 2]


def gguf_config(gguf: GgufFile) -> LlamaConfig:
    """The decoder config of an opened GGUF file (metadata checked as `q35c.frontend.gguf_file` checks it)."""
    arch = _architecture(gguf)
    tensors = gguf_tensors(gguf, arch)
    return _config(gguf, arch, {n: t.shape for n, t in tensors.items()}, _layers_found(tensors))


def dense_gguf(path: str) -> DenseModel:
    """Every weight of the LLaMA-family GGUF file at `path`, decoded to float32 (q/k rows in rotate-half order)."""
    gguf = read_gguf(path)
    cfg = gguf_config(gguf)
    params: dict[str, F32] = {}
    schemes: dict[str, str] = {}
    for name, info in gguf_tensors(gguf, _architecture(gguf)).items():
        qt = tensor_weight(gguf, info)
        w = np.asarray(formats.get(qt.scheme).dequantize(qt), dtype=np.float32)
        if name.endswith((".q_proj", ".k_proj")):
            w = rope_rows_to_halves(w, cfg.heads if name.endswith(".q_proj") else cfg.kv_heads)
        params[name] = w.reshape(-1) if len(info.dims) == 1 else w
        schemes[name] = str(qt.scheme)
    return DenseModel(cfg, params, schemes, path)
