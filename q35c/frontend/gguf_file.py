"""Import a GGUF file (llama.cpp's model format): architecture metadata, tensor shapes and storage types.

Only the header is read (`q35c.frontend.gguf_reader`: memory-mapped, lazy about the tokenizer's arrays, no
tensor data), so importing a 40 GB file costs as little as a small one. Each tensor's ggml type becomes its
scheme, as the file has it (a Q4_K_M file is a per-tensor mix): F32 -> f32, F16 -> fp16, and every other type
its lower-case name (Q4_K -> q4_k); types whose bit layout q35c does not implement (IQ2_XXS, TQ1_0, ...)
become opaque storage schemes with their exact size (`q35c.ir.schemes.OPAQUE_BLOCKS`). With `quant`, every
weight matrix takes that scheme instead (what the model would be at another precision); vectors keep theirs.

Every metadata value used is checked for its kind and range before any work (a head count of 0, an array or a
string where a number belongs, inf/NaN, a block count no tensor has) and against the tensor shapes: a
Q35Error names the key or the tensor.

Tensor names map to the model language's: `token_embd` -> `embed_tokens`, `blk.3.attn_q` ->
`decoder.3.q_proj`, `output_norm` -> `norm`, `output` -> `lm_head` (absent: tied embeddings).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path

from q35c.frontend.gguf_reader import FLOAT_KINDS, INTEGER_KINDS, STRING, GgufFile, TensorInfo, read_gguf
from q35c.frontend.graph import Graph
from q35c.frontend.llama import LlamaConfig, llama_graph
from q35c.frontend.quant import Override, QuantPolicy
from q35c.ir.schemes import parse_scheme
from q35c.util.errors import Location, Q35Error
from q35c.util.limits import MAX_LAYERS as LIMIT_LAYERS

ARCHITECTURES = ("llama", "qwen2")
# ggml type names whose scheme is not simply the lower-case name.
_RENAMED: Mapping[str, str] = {"F32": "f32", "F16": "fp16"}
MAX_DIM = 1 << 24  # no hidden size, head count or FFN width of a real model comes near this
MAX_LAYERS = LIMIT_LAYERS  # q35c's bound on layers (`q35c.util.limits`), checked here with the key's name
MAX_CONTEXT = 1 << 31
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


def scheme_of(ggml_type: str) -> str:
    """The scheme spec of a ggml tensor type: `f32`, `fp16`, or its lower-case name (`q4_k`, `iq2_xxs`)."""
    return _RENAMED.get(ggml_type, ggml_type.lower())


def canonical_name(gguf_name: str) -> str | None:
    """The model-language name of a GGUF tensor, or None if it is not one of a LLaMA decoder's.

    >>> canonical_name("blk.3.attn_q.weight"), canonical_name("blk.0.attn_k.bias"), canonical_name("output.weight")
    ('decoder.3.q_proj', 'decoder.0.k_bias', 'lm_head')
    """
    match = _BLOCK_TENSOR.fullmatch(gguf_name)
    if match:
        layer, kind, part = match.groups()
        if kind not in _LAYER or (len(layer) > 1 and layer.startswith("0")):
            return None
        name = _LAYER[kind]
        return f"decoder.{layer}.{name.replace('_proj', '_bias') if part == 'bias' else name}"
    base, _, part = gguf_name.rpartition(".")
    return _TOP.get(base) if part == "weight" else None


class _Metadata:
    """Typed, range-checked access to a GGUF file's metadata."""

    def __init__(self, gguf: GgufFile, arch: str) -> None:
        self.gguf = gguf
        self.arch = arch
        self.loc = Location(gguf.path)

    def has(self, key: str) -> bool:
        return f"{self.arch}.{key}" in self.gguf.fields

    def integer(self, key: str, default: int | None = None, *, low: int = 1, high: int = MAX_DIM) -> int:
        full = f"{self.arch}.{key}"
        field = self.gguf.fields.get(full)
        if field is None:
            if default is None:
                raise Q35Error(f"GGUF metadata has no '{full}'", self.loc)
            return default
        if field.kind not in INTEGER_KINDS:
            raise Q35Error(f"GGUF metadata '{full}' must be an integer, got a {field.kind_name}", self.loc)
        value = int(field.value)
        if not low <= value <= high:
            raise Q35Error(f"GGUF metadata '{full}' = {value} is out of range [{low}, {high}]", self.loc)
        return value

    def number(self, key: str, default: float) -> float:
        full = f"{self.arch}.{key}"
        field = self.gguf.fields.get(full)
        if field is None:
            return default
        if field.kind not in FLOAT_KINDS | INTEGER_KINDS:
            raise Q35Error(f"GGUF metadata '{full}' must be a number, got a {field.kind_name}", self.loc)
        value = float(field.value)
        if not math.isfinite(value) or value <= 0:
            raise Q35Error(f"GGUF metadata '{full}' = {value} must be a finite positive number", self.loc)
        return value


def _architecture(gguf: GgufFile) -> str:
    field = gguf.fields.get("general.architecture")
    if field is None or field.kind != STRING:
        raise Q35Error("GGUF metadata has no string 'general.architecture'", Location(gguf.path))
    if field.value not in ARCHITECTURES:
        raise Q35Error(
            f"unsupported GGUF architecture '{field.value}' (supported: {', '.join(ARCHITECTURES)})",
            Location(gguf.path),
        )
    return str(field.value)


def _name(gguf: GgufFile) -> str:
    field = gguf.fields.get("general.name")
    if field is not None and field.kind == STRING and field.value.strip():
        return str(field.value).strip()[:200]
    return Path(gguf.path).stem


def _config(gguf: GgufFile, arch: str, shapes: Mapping[str, tuple[int, ...]], layers_found: int) -> LlamaConfig:
    meta = _Metadata(gguf, arch)
    loc = Location(gguf.path)
    if "embed_tokens" not in shapes:
        raise Q35Error("GGUF file has no token_embd.weight tensor", loc)
    layers = meta.integer("block_count", high=MAX_LAYERS)
    if layers != layers_found:
        found = f"{layers_found} layers (blk.0 .. blk.{layers_found - 1})" if layers_found else "no layers (no blk.*)"
        raise Q35Error(f"GGUF metadata '{arch}.block_count' = {layers}, but the file has tensors for {found}", loc)
    hidden = meta.integer("embedding_length")
    heads = meta.integer("attention.head_count")
    kv_heads = meta.integer("attention.head_count_kv", heads)
    if heads % kv_heads:
        raise Q35Error(
            f"GGUF metadata: head_count {heads} is not a multiple of head_count_kv {kv_heads}", Location(gguf.path)
        )
    if not meta.has("attention.key_length") and hidden % heads:
        raise Q35Error(f"GGUF metadata: embedding_length {hidden} is not a multiple of head_count {heads}", loc)
    biases = tuple(
        p for p in ("q_proj", "k_proj", "v_proj", "o_proj") if f"decoder.0.{p.replace('_proj', '_bias')}" in shapes
    )
    return LlamaConfig(
        name=_name(gguf),
        vocab=meta.integer("vocab_size", shapes["embed_tokens"][0]),
        hidden=hidden,
        layers=layers,
        heads=heads,
        kv_heads=kv_heads,
        head_dim=meta.integer("attention.key_length", hidden // heads),
        ffn=meta.integer("feed_forward_length"),
        eps=meta.number("attention.layer_norm_rms_epsilon", 1e-5),
        theta=meta.number("rope.freq_base", 10000.0),
        tied="lm_head" not in shapes,
        biases=biases,
        max_context=meta.integer("context_length", high=MAX_CONTEXT) if meta.has("context_length") else None,
    )


def gguf_tensors(gguf: GgufFile, arch: str) -> dict[str, TensorInfo]:
    """The file's tensors by model-language name (`decoder.3.q_proj`); Q35Error for a tensor a decoder has not."""
    named: dict[str, TensorInfo] = {}
    for tensor in gguf.tensors:
        if tensor.name in _IGNORED:
            continue
        name = canonical_name(tensor.name)
        if name is None:
            raise Q35Error(f"unexpected tensor '{tensor.name}' for a {arch} decoder", Location(gguf.path))
        if len(tensor.dims) > 2:
            raise Q35Error(f"tensor {name} has {len(tensor.dims)} dimensions {list(tensor.shape)}", Location(gguf.path))
        named[name] = tensor
    return named


def _layers_found(names: Mapping[str, TensorInfo]) -> int:
    indices = {int(name.split(".")[1]) for name in names if name.startswith("decoder.")}
    return max(indices) + 1 if indices else 0


def load_gguf(path: str, *, quant: str | None = None, seq: int = 1, context: int = 0) -> Graph:
    """The graph of the model in the GGUF file at `path` (header only; weight data is not read)."""
    gguf = read_gguf(path)
    arch = _architecture(gguf)
    tensors = gguf_tensors(gguf, arch)
    shapes = {name: t.shape for name, t in tensors.items()}
    cfg = _config(gguf, arch, shapes, _layers_found(tensors))
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
    file_schemes = {name: parse_scheme(scheme_of(t.ggml.name)) for name, t in tensors.items()}
    for name, scheme in file_schemes.items():
        if len(shapes[name]) == 1 and scheme.is_quantized:
            ggml = tensors[name].ggml.name
            raise Q35Error(f"tensor {name} is a vector stored as {ggml}; q35c expects F32 or F16", Location(path))
    vectors = tuple(Override(n, s) for n, s in file_schemes.items() if len(shapes[n]) == 1)
    if quant is not None:
        policy = QuantPolicy(parse_scheme(quant), vectors, "--quant")
    else:
        overrides = tuple(Override(n, s) for n, s in file_schemes.items())
        policy = QuantPolicy(parse_scheme("fp16"), overrides, "the GGUF file's tensor types")
    opaque = sorted({str(s) for n, s in file_schemes.items() if s.opaque and (quant is None or len(shapes[n]) == 1)})
    notes = tuple(
        f"{s} tensors are stored opaquely (exact size, no bit layout): costs and builds that unpack them fail"
        for s in opaque
    )
    ignored = [t for t in gguf.tensors if t.name in _IGNORED]
    notes += tuple(f"{t.name} ({t.nbytes} bytes) is not a parameter of the graph and not counted" for t in ignored)
    return llama_graph(cfg, policy, path, seq=seq, context=context, notes=notes)
