"""Import a GGUF file (llama.cpp's model format): architecture metadata, tensor shapes and storage types.

Only the header is read: GGUFReader memory-maps the file and tensor data is never touched, so importing a
40 GB file costs as little as a small one. Each tensor's ggml type becomes its scheme (F16 -> fp16,
Q8_0 -> q8_0, Q4_0 -> q4_0; F32 -> fp16, since q35 stores vectors as fp16 and has no f32 scheme). With
`quant`, every weight matrix takes that scheme instead (what the model would be at another precision).

Tensor names map to the model language's: `token_embd` -> `embed_tokens`, `blk.3.attn_q` ->
`decoder.3.q_proj`, `output_norm` -> `norm`, `output` -> `lm_head` (absent: tied embeddings).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from q35c.frontend.graph import Graph
from q35c.frontend.llama import LlamaConfig, llama_graph
from q35c.frontend.quant import Override, QuantPolicy
from q35c.ir.schemes import parse_scheme
from q35c.util.errors import Location, Q35Error

ARCHITECTURES = ("llama", "qwen2")
# ggml type name -> scheme spec.
GGML_SCHEMES: Mapping[str, str] = {"F32": "fp16", "F16": "fp16", "Q8_0": "q8_0", "Q4_0": "q4_0"}
_TOP = {"token_embd": "embed_tokens", "output_norm": "norm", "output": "lm_head"}
_LAYER = {
    "attn_norm": "input_layernorm",
    "attn_q": "q_proj",
    "attn_k": "k_proj",
    "attn_v": "v_proj",
    "attn_output": "o_proj",
    "ffn_norm": "post_attention_layernorm",
    "ffn_gate": "gate_proj",
    "ffn_up": "up_proj",
    "ffn_down": "down_proj",
}
_IGNORED = ("rope_freqs.weight",)  # Llama 3.1's rope scaling factors: not a parameter of the graph
_BLOCK_TENSOR = re.compile(r"blk\.(\d+)\.(\w+)\.(weight|bias)")


def canonical_name(gguf_name: str) -> str | None:
    """The model-language name of a GGUF tensor, or None if it is not one of a LLaMA decoder's.

    >>> canonical_name("blk.3.attn_q.weight"), canonical_name("blk.0.attn_k.bias"), canonical_name("output.weight")
    ('decoder.3.q_proj', 'decoder.0.k_bias', 'lm_head')
    """
    match = _BLOCK_TENSOR.fullmatch(gguf_name)
    if match:
        layer, kind, part = match.groups()
        if kind not in _LAYER:
            return None
        name = _LAYER[kind]
        return f"decoder.{layer}.{name.replace('_proj', '_bias') if part == 'bias' else name}"
    base, _, part = gguf_name.rpartition(".")
    return _TOP.get(base) if part == "weight" else None


def _read(path: str) -> Any:
    from gguf import GGUFReader  # numpy and gguf load only when a GGUF file is imported

    try:
        return GGUFReader(path)
    except OSError as err:
        raise Q35Error(f"cannot read {path}: {err.strerror or err}", Location(path)) from None
    except (ValueError, IndexError, KeyError) as err:
        raise Q35Error(f"not a valid GGUF file: {err}", Location(path)) from None


def _metadata(reader: Any, path: str) -> tuple[str, Mapping[str, Any]]:
    fields = {name: field.contents() for name, field in reader.fields.items() if not name.startswith("tokenizer.")}
    arch = fields.get("general.architecture")
    if arch not in ARCHITECTURES:
        raise Q35Error(
            f"unsupported GGUF architecture '{arch}' (supported: {', '.join(ARCHITECTURES)})", Location(path)
        )
    return str(arch), fields


def _config(arch: str, meta: Mapping[str, Any], shapes: Mapping[str, tuple[int, ...]], path: str) -> LlamaConfig:
    def number(key: str, default: int | float | None = None) -> Any:
        value = meta.get(f"{arch}.{key}", default)
        if value is None:
            raise Q35Error(f"GGUF metadata has no '{arch}.{key}'", Location(path))
        return value

    if "embed_tokens" not in shapes:
        raise Q35Error("GGUF file has no token_embd.weight tensor", Location(path))
    hidden, heads = int(number("embedding_length")), int(number("attention.head_count"))
    biases = tuple(
        p for p in ("q_proj", "k_proj", "v_proj", "o_proj") if f"decoder.0.{p.replace('_proj', '_bias')}" in shapes
    )
    return LlamaConfig(
        name=str(meta.get("general.name") or Path(path).stem),
        vocab=int(number("vocab_size", shapes["embed_tokens"][0])),
        hidden=hidden,
        layers=int(number("block_count")),
        heads=heads,
        kv_heads=int(number("attention.head_count_kv", heads)),
        head_dim=int(number("attention.key_length", hidden // heads)),
        ffn=int(number("feed_forward_length")),
        eps=float(number("attention.layer_norm_rms_epsilon", 1e-5)),
        theta=float(number("rope.freq_base", 10000.0)),
        tied="lm_head" not in shapes,
        biases=biases,
        max_context=int(number("context_length")) if f"{arch}.context_length" in meta else None,
    )


def load_gguf(path: str, *, quant: str | None = None, seq: int = 1, context: int = 0) -> Graph:
    """The graph of the model in the GGUF file at `path` (header only; weight data is not read)."""
    reader = _read(path)
    arch, meta = _metadata(reader, path)
    shapes: dict[str, tuple[int, ...]] = {}
    types: dict[str, str] = {}
    for tensor in reader.tensors:
        if tensor.name in _IGNORED:
            continue
        name = canonical_name(tensor.name)
        if name is None:
            raise Q35Error(f"unexpected tensor '{tensor.name}' for a {arch} decoder", Location(path))
        shapes[name] = tuple(int(d) for d in reversed(tensor.shape.tolist()))  # ggml lists K first
        types[name] = tensor.tensor_type.name
    cfg = _config(arch, meta, shapes, path)
    for name, ggml_type in types.items():
        if ggml_type not in GGML_SCHEMES:
            supported = ", ".join(GGML_SCHEMES)
            raise Q35Error(
                f"tensor {name} has ggml type {ggml_type}, which q35c does not support (supported: {supported})",
                Location(path),
            )
    expected = cfg.weight_shapes()
    for name, shape in expected.items():
        if name not in shapes:
            raise Q35Error(f"GGUF file has no tensor for {name} {list(shape)}", Location(path))
        if shapes[name] != shape:
            raise Q35Error(
                f"tensor {name} has shape {list(shapes[name])}, but the metadata implies {list(shape)}",
                Location(path),
            )
    for name in sorted(shapes.keys() - expected.keys()):
        raise Q35Error(f"tensor {name} does not belong to a {cfg.layers}-layer {arch} decoder", Location(path))
    if quant is not None:
        policy = QuantPolicy(parse_scheme(quant), (), "--quant")
    else:
        overrides = tuple(Override(name, parse_scheme(GGML_SCHEMES[t])) for name, t in types.items())
        policy = QuantPolicy(parse_scheme("fp16"), overrides, "the GGUF file's tensor types")
    notes = ("F32 tensors are modelled as fp16",) if "F32" in types.values() else ()
    return llama_graph(cfg, policy, path, seq=seq, context=context, notes=notes)
