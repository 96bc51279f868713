"""q3p5 slot assignment: permute input channels so that the most important ones take the 4-bit slots.

q3p5 stores even columns k = 2p with 4 bits and odd columns with 3 bits (twice the step). Which input channel
sits in which column is free as long as the model computes the same function, so this chooses it:

- one permutation `hidden` of the residual stream, applied everywhere it is read or written: embedding columns
  (and a separate lm_head's), every norm gain, the input columns of q/k/v/gate/up, the output rows of o/down
  (RMSNorm sums over all channels, so it commutes with the permutation);
- per layer, one permutation `ffn[l]` of the FFN's hidden dimension: gate/up rows and down_proj columns.

Unquantized, the permuted model computes the original's logits (up to float summation order; a test checks it).

The rule (`slot_order`): a channel's importance is sum over the layers reading it of E[x_j^2] * ||W[:, j]||^2,
the expected squared output change per unit of relative error in column j, with E[x_j^2] measured on
calibration text (the model's own forward pass). Channels are ranked by importance; the i-th most important of
K goes to column 2i if i < K/2 (a 4-bit slot), else to column 2(i - K/2) + 1 (a 3-bit slot), so pair p holds the
p-th and (K/2 + p)-th most important channels.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from numpy.typing import NDArray

from q35c.frontend.gguf_dense import DenseModel

F32 = NDArray[np.float32]
Perm = NDArray[np.int64]
_RESIDUAL_READERS = ("q_proj", "k_proj", "v_proj", "gate_proj", "up_proj")


@dataclass
class ActivationStats:
    """Running sums of x_j^2 per linear layer input (as `Session.observe` reports them) and their row counts."""

    squares: dict[str, NDArray[np.float64]] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)

    def __call__(self, name: str, x: F32) -> None:
        xs = x.astype(np.float64)
        self.squares[name] = self.squares.get(name, 0) + (xs * xs).sum(axis=0)
        self.rows[name] = self.rows.get(name, 0) + x.shape[0]

    def mean_square(self, name: str) -> NDArray[np.float64]:
        return self.squares[name] / max(self.rows[name], 1)


def slot_order(importance: NDArray[np.float64]) -> Perm:
    """perm with perm[new column] = old channel: the top half by importance in even columns, in rank order."""
    k = importance.shape[0]
    ranked = np.argsort(-importance, kind="stable")
    perm = np.empty(k, dtype=np.int64)
    perm[0::2] = ranked[: (k + 1) // 2]
    perm[1::2] = ranked[(k + 1) // 2 :]
    return perm


@dataclass(frozen=True)
class SlotPermutation:
    """The residual stream's permutation and each layer's FFN permutation (perm[new] = old)."""

    hidden: Perm
    ffn: tuple[Perm, ...]


def choose_slots(model: DenseModel, stats: ActivationStats) -> SlotPermutation:
    """The permutations that give the most important channels (see the module docstring) the 4-bit slots."""
    cfg, p = model.config, model.params
    hidden = np.zeros(cfg.hidden)
    ffn: list[Perm] = []
    for layer in range(cfg.layers):

        def col_norms(name: str, layer: int = layer) -> NDArray[np.float64]:
            w = p[f"decoder.{layer}.{name}"].astype(np.float64)
            return (w * w).sum(axis=0)

        attn_in = stats.mean_square(f"decoder.{layer}.q_proj")
        ffn_in = stats.mean_square(f"decoder.{layer}.gate_proj")
        hidden += attn_in * sum(col_norms(n) for n in ("q_proj", "k_proj", "v_proj"))
        hidden += ffn_in * (col_norms("gate_proj") + col_norms("up_proj"))
        ffn.append(slot_order(stats.mean_square(f"decoder.{layer}.down_proj") * col_norms("down_proj")))
    return SlotPermutation(slot_order(hidden), tuple(ffn))


def permute(model: DenseModel, perm: SlotPermutation) -> DenseModel:
    """The same function with channels permuted (see the module docstring)."""
    h = perm.hidden
    out: dict[str, F32] = {}
    for name, w in model.params.items():
        kind = name.rsplit(".", 1)[-1]
        layer = int(name.split(".")[1]) if name.startswith("decoder.") else -1
        if kind in ("input_layernorm", "post_attention_layernorm", "norm"):  # gains in the residual stream
            out[name] = w[h]
        elif kind in ("embed_tokens", "lm_head", "q_proj", "k_proj", "v_proj"):  # columns read the stream
            out[name] = w[:, h]
        elif kind in ("gate_proj", "up_proj"):
            out[name] = w[perm.ffn[layer]][:, h]
        elif kind == "o_proj":
            out[name] = w[h]
        elif kind == "down_proj":
            out[name] = w[h][:, perm.ffn[layer]]
        else:
            raise ValueError(f"no permutation rule for {name}")
    return replace(model, params={n: np.ascontiguousarray(w) for n, w in out.items()})
