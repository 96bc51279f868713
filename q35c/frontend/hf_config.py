"""Import a Hugging Face `config.json` of a LLaMA-family decoder.

Supported: LlamaForCausalLM (Llama 2, 3, 3.1), MistralForCausalLM and Qwen2ForCausalLM: grouped-query
attention, tied or untied embeddings, head_dim given or hidden_size / num_attention_heads, and Qwen2's q/k/v
biases. A config.json describes an fp16/bf16 checkpoint, so weights are fp16 unless `quant` says otherwise.

>>> import json
>>> text = json.dumps({"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "num_hidden_layers": 2,
...     "num_attention_heads": 4, "intermediate_size": 128, "vocab_size": 256})
>>> config_from_text(text, "tiny.json").head_dim
16
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from q35c.frontend.graph import Graph
from q35c.frontend.llama import FP16_POLICY, LlamaConfig, llama_graph
from q35c.frontend.quant import QuantPolicy
from q35c.ir.schemes import parse_scheme
from q35c.util.errors import Location, Q35Error
from q35c.util.limits import (
    I64_MAX,
    MAX_DIM,
    MAX_INT_DIGITS,
    MAX_LAYERS,
    MAX_NESTING,
    clip,
    float_error,
    integer_error,
    line_col,
    read_source,
    too_deep,
)

# Architecture -> the linear layers that carry a bias.
SUPPORTED: Mapping[str, tuple[str, ...]] = {
    "LlamaForCausalLM": (),
    "MistralForCausalLM": (),
    "Qwen2ForCausalLM": ("q_proj", "k_proj", "v_proj"),
}


class _Config:
    """The parsed JSON object with located errors for missing or bad keys."""

    def __init__(self, data: Mapping[str, Any], text: str, path: str) -> None:
        self.data, self.lines, self.path = data, text.splitlines(), path

    def error(self, message: str, key: str | None = None) -> Q35Error:
        if key is not None:
            for number, line in enumerate(self.lines, start=1):
                match = re.search(rf'"{re.escape(key)}"\s*:', line)
                if match:
                    return Q35Error(message, Location(self.path, number, match.start() + 1), line)
        return Q35Error(message, Location(self.path))

    def int(self, key: str, default: int | None = None, maximum: int = MAX_DIM) -> int:
        value = self.data.get(key)
        if value is None:  # absent, or null as some configs write head_dim
            value = default
        if value is None:
            raise self.error(f"config.json has no '{key}' (needed for a LLaMA-family decoder)")
        if isinstance(value, _LongInteger):
            raise self.error(f"'{key}' = {clip(value)} is beyond the range of i64 ({len(value)} digits)", key)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise self.error(f"'{key}' must be a positive integer, got {_show(value)}", key)
        problem = integer_error(value, f"'{key}'", maximum)
        if problem is not None:
            raise self.error(problem, key)
        return value

    def float(self, key: str, default: float) -> float:
        value = self.data.get(key)
        value = default if value is None else value
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise self.error(f"'{key}' must be a positive number, got {_show(value)}", key)
        problem = float_error(float(value), f"'{key}'")
        if problem is not None:
            raise self.error(problem, key)
        return float(value)


class _LongInteger(str):
    """An integer literal of more digits than any i64 has, kept as text (converting it could take long)."""


def _integer(text: str) -> int | _LongInteger:
    return _LongInteger(text) if len(text.lstrip("-")) > MAX_INT_DIGITS else int(text)


def _show(value: object) -> str:
    if isinstance(value, _LongInteger):
        return f"an integer of {len(value.lstrip('-'))} digits"
    return clip(repr(value))


def _architecture(cfg: _Config) -> str:
    archs = cfg.data.get("architectures")
    supported = ", ".join(SUPPORTED)
    if not isinstance(archs, list) or not archs:
        raise cfg.error(f"config.json names no 'architectures' (supported: {supported})")
    arch = str(archs[0])
    if arch not in SUPPORTED:
        raise cfg.error(f"unsupported architecture '{arch}' (supported: {supported})", "architectures")
    return arch


def config_from_text(text: str, path: str) -> LlamaConfig:
    """The LlamaConfig of a config.json's text; Q35Error (with the line of the offending key) if unusable."""
    deep = too_deep(text, escapes=True)
    if deep is not None:
        line, col, context = line_col(text, deep)
        raise Q35Error(
            f"arrays and objects nest more than {MAX_NESTING} deep (the limit)", Location(path, line, col), context
        )
    try:
        data = json.loads(text, parse_int=_integer)
    except json.JSONDecodeError as err:
        lines = text.splitlines() or [""]
        line = lines[min(err.lineno, len(lines)) - 1]
        raise Q35Error(f"invalid JSON: {err.msg}", Location(path, err.lineno, err.colno), line) from None
    if not isinstance(data, dict):
        raise Q35Error("config.json must hold a JSON object", Location(path))
    cfg = _Config(data, text, path)
    arch = _architecture(cfg)
    hidden = cfg.int("hidden_size")
    heads = cfg.int("num_attention_heads")
    kv_heads = cfg.int("num_key_value_heads", heads)
    if hidden % heads != 0 and data.get("head_dim") is None:
        raise cfg.error(f"hidden_size {hidden} is not a multiple of num_attention_heads {heads}", "hidden_size")
    head_dim = cfg.int("head_dim", hidden // heads)
    if heads % kv_heads != 0:
        raise cfg.error(
            f"num_attention_heads {heads} is not a multiple of num_key_value_heads {kv_heads}", "num_key_value_heads"
        )
    biases = SUPPORTED[arch]
    if arch == "LlamaForCausalLM":
        biases = ("q_proj", "k_proj", "v_proj", "o_proj") * bool(data.get("attention_bias"))
        biases += ("gate_proj", "up_proj", "down_proj") * bool(data.get("mlp_bias"))
    return LlamaConfig(
        name=Path(path).stem,
        vocab=cfg.int("vocab_size"),
        hidden=hidden,
        layers=cfg.int("num_hidden_layers", maximum=MAX_LAYERS),
        heads=heads,
        kv_heads=kv_heads,
        head_dim=head_dim,
        ffn=cfg.int("intermediate_size"),
        eps=cfg.float("rms_norm_eps", 1e-6),
        theta=cfg.float("rope_theta", 10000.0),
        tied=bool(data.get("tie_word_embeddings", False)),
        biases=biases,
        max_context=cfg.int("max_position_embeddings", maximum=I64_MAX) if "max_position_embeddings" in data else None,
    )


def _notes(data: Mapping[str, Any]) -> tuple[str, ...]:
    notes = []
    if data.get("rope_scaling"):
        notes.append("rope_scaling is not represented: rope uses rope_theta alone")
    if data.get("sliding_window") and data.get("use_sliding_window", True):
        notes.append("sliding-window attention is not represented: attention sees the whole cache")
    return tuple(notes)


def load_config(path: str, *, quant: str | None = None, seq: int = 1, context: int = 0) -> Graph:
    """The graph of the model that config.json at `path` describes."""
    text = read_source(path)
    cfg = config_from_text(text, path)
    policy = FP16_POLICY if quant is None else QuantPolicy(parse_scheme(quant), (), "--quant")
    return llama_graph(cfg, policy, path, seq=seq, context=context, notes=_notes(json.loads(text, parse_int=_integer)))
