"""A numpy forward pass of a LLaMA-family decoder over float32 weights, with a KV cache.

    session = Session(model)                       # a DenseModel (q35c.frontend.gguf_dense)
    logits = session.forward(ids)                   # [T, vocab] float32, positions continuing the cache
    ids = greedy(model, prompt_ids, 16)             # the prompt and 16 generated tokens

`observe` sees the input of q/k/v (as `q_proj`), gate/up (as `gate_proj`) and down_proj of every layer, for
calibration statistics.

The ops are those of q35's numpy reference (`q35c.verify.reference`: rmsnorm, rope, silu, its formulas);
activations stay in float32 here (no float16 rounding after every op) and matrix products are float32 BLAS,
so that a 135M-parameter model runs 2,560 tokens in about 35 CPU-seconds (chunks of 256). Attention is the
reference's causal GQA written with matrix products (`attention`; the tests check it against the reference).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from q35c.frontend.gguf_dense import DenseModel
from q35c.verify.reference import rmsnorm, rope, silu

F32 = NDArray[np.float32]
MAX_SEQUENCE = 1 << 16  # tokens one session may hold (its KV cache grows with each)


def attention(q: F32, keys: F32, values: F32, heads: int, kv_heads: int, head_dim: int) -> F32:
    """Causal GQA of T new queries over L = C + T keys (the last T are the new tokens'): query t sees keys
    0 .. C + t; query head h reads KV head h // (heads / kv_heads)."""
    t, length = q.shape[0], keys.shape[0]
    group = heads // kv_heads
    # Queries of the heads that share a KV head side by side: [KV, G*T, hd] (plain BLAS batches, no broadcast).
    qh = q.reshape(t, kv_heads, group, head_dim).transpose(1, 2, 0, 3).reshape(kv_heads, group * t, head_dim)
    kh = np.ascontiguousarray(keys.reshape(length, kv_heads, head_dim).transpose(1, 2, 0))  # [KV, hd, L]
    vh = np.ascontiguousarray(values.reshape(length, kv_heads, head_dim).transpose(1, 0, 2))  # [KV, L, hd]
    scores = (np.ascontiguousarray(qh) @ kh).reshape(kv_heads, group, t, length) * np.float32(1 / np.sqrt(head_dim))
    visible = np.arange(length)[None, :] <= (length - t) + np.arange(t)[:, None]
    scores = np.where(visible, scores, np.float32(-np.inf))
    e = np.exp(scores - scores.max(axis=-1, keepdims=True))
    e /= e.sum(axis=-1, keepdims=True)
    out = (e.reshape(kv_heads, group * t, length) @ vh).reshape(kv_heads, group, t, head_dim)
    return np.ascontiguousarray(out.transpose(2, 0, 1, 3)).reshape(t, heads * head_dim)


@dataclass
class Session:
    """A model with its KV cache: `forward` runs new tokens after the cached ones."""

    model: DenseModel
    observe: Callable[[str, F32], None] | None = None  # called with each linear layer's name and input
    keys: list[F32] = field(default_factory=list)
    values: list[F32] = field(default_factory=list)

    @property
    def length(self) -> int:
        return self.keys[0].shape[0] if self.keys else 0

    def forward(self, ids: Sequence[int] | NDArray[np.int64]) -> F32:
        """The logits [T, vocab] of the tokens `ids`, which follow the cached ones (and join the cache)."""
        cfg, p = self.model.config, self.model.params
        ids = np.asarray(ids, dtype=np.int64)
        if ids.ndim != 1 or not len(ids):
            raise ValueError("forward takes a non-empty 1-D sequence of token ids")
        if self.length + len(ids) > MAX_SEQUENCE:
            raise ValueError(f"a session holds at most {MAX_SEQUENCE} tokens")
        if ids.min() < 0 or ids.max() >= cfg.vocab:
            raise ValueError(f"token ids must lie in [0, {cfg.vocab})")
        positions = np.arange(self.length, self.length + len(ids))
        hd = cfg.head_dim
        x = p["embed_tokens"][ids]
        for layer in range(cfg.layers):

            def w(name: str, layer: int = layer) -> F32:
                return p[f"decoder.{layer}.{name}"]

            def seen(name: str, x: F32, layer: int = layer) -> F32:
                if self.observe is not None:
                    self.observe(f"decoder.{layer}.{name}", x)
                return x

            h = seen("q_proj", rmsnorm(x, w("input_layernorm"), cfg.eps))
            q = rope(h @ w("q_proj").T, positions, hd, cfg.theta)
            k = rope(h @ w("k_proj").T, positions, hd, cfg.theta)
            v = h @ w("v_proj").T
            if len(self.keys) <= layer:
                self.keys.append(k)
                self.values.append(v)
            else:
                self.keys[layer] = np.concatenate([self.keys[layer], k])
                self.values[layer] = np.concatenate([self.values[layer], v])
            a = attention(q, self.keys[layer], self.values[layer], cfg.heads, cfg.kv_heads, hd)
            x = x + a @ w("o_proj").T
            h = seen("gate_proj", rmsnorm(x, w("post_attention_layernorm"), cfg.eps))
            x = x + seen("down_proj", silu(h @ w("gate_proj").T) * (h @ w("up_proj").T)) @ w("down_proj").T
        x = rmsnorm(x, p["norm"], cfg.eps)
        return x @ p["lm_head" if "lm_head" in p else "embed_tokens"].T


def greedy(
    model: DenseModel,
    prompt: Sequence[int],
    steps: int,
    *,
    stop: int | None = None,
    on_token: Callable[[int], None] | None = None,
) -> list[int]:
    """The prompt followed by up to `steps` greedily chosen tokens (ending early at `stop`)."""
    session = Session(model)
    ids = list(prompt)
    logits = session.forward(ids)
    for _ in range(steps):
        token = int(np.argmax(logits[-1]))
        ids.append(token)
        if on_token is not None:
            on_token(token)
        if token == stop:
            break
        logits = session.forward([token])
    return ids
