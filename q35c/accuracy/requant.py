"""Requantizing a model's weight matrices into a scheme, and what that costs in error and bits.

    variant = requantize(model, "q3p5:g=64")         # a DenseModel with every linear layer's weights
    variant.model.params["decoder.0.q_proj"]          #   encoded in q3p5 and decoded again (float32)
    variant.errors["q_proj"]                          # relative RMS error of that kind's weights
    variant.bits_per_weight                           # storage bits per requantized weight, metadata included

Schemes are q35c's (`q35c.formats`: bit-exact encoders and decoders, any spec `q35c formats` lists) plus,
for rate-distortion comparisons only, `int3:g=G` (`Int3Sim`): MLX-style affine 3-bit (w = bias + scale * q,
q in 0..7, float16 scale and bias per group of g, min-max), which q35c has no storage layout for.

The linear layers (q/k/v/o, gate/up/down) are requantized; the token embeddings (and a tied output layer) keep
the file's values unless `embeddings` is set, as llama.cpp's own quantized files keep them at higher precision.
Vectors (norm gains) are never quantized.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from numpy.typing import NDArray

from q35c import formats
from q35c.frontend.gguf_dense import DenseModel
from q35c.ir.schemes import parse_scheme
from q35c.util.errors import Q35Error

F32 = NDArray[np.float32]
LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
_INT3 = re.compile(r"int3(?::g=(\d+))?")


@dataclass(frozen=True)
class Int3Sim:
    """Affine 3-bit with min-max float16 scale and bias per group of g (MLX's `quantize(bits=3)`), simulated."""

    group: int = 64

    def __str__(self) -> str:
        return f"int3:g={self.group}"

    def bits_per_weight(self, k: int) -> float:
        return 3 + 32 / self.group

    def check_shape(self, n: int, k: int) -> None:
        if k % self.group:
            raise Q35Error(f"{self}: K={k} is not divisible by the group size g={self.group}")

    def roundtrip(self, w: F32) -> F32:
        n, k = w.shape
        self.check_shape(n, k)
        groups = w.reshape(n, k // self.group, self.group).astype(np.float64)
        lo, hi = groups.min(axis=-1, keepdims=True), groups.max(axis=-1, keepdims=True)
        scale = ((hi - lo) / 7).astype(np.float16).astype(np.float64)
        bias = lo.astype(np.float16).astype(np.float64)
        safe = np.where(scale == 0, 1.0, scale)
        q = np.clip(np.rint((groups - bias) / safe), 0, 7)
        return (bias + scale * q).reshape(n, k).astype(np.float32)


@dataclass(frozen=True)
class Codec:
    """A scheme as something that encodes and decodes a weight matrix: `roundtrip(w)` and `bits_per_weight(K)`."""

    spec: str
    roundtrip: Callable[[F32], F32]
    bits_per_weight: Callable[[int], float]
    check_shape: Callable[[int, int], None]
    simulated: bool = False


def codec(spec: str) -> Codec:
    """The codec of a scheme spec; Q35Error for an unknown or malformed one."""
    match = _INT3.fullmatch(spec.strip())
    if match:
        sim = Int3Sim(int(match.group(1) or 64))
        if not 2 <= sim.group <= 4096:
            raise Q35Error(f"int3 group size g must be in [2, 4096], got {sim.group}")
        return Codec(str(sim), sim.roundtrip, sim.bits_per_weight, sim.check_shape, simulated=True)
    try:
        scheme = parse_scheme(spec)
        fmt = formats.get(scheme)
    except ValueError as err:
        raise Q35Error(f"invalid quantization scheme '{spec}': {err}") from None

    def roundtrip(w: F32) -> F32:
        scheme.check_shape(*w.shape)
        try:
            return np.asarray(fmt.dequantize(fmt.quantize(w)), dtype=np.float32)
        except NotImplementedError as err:
            raise Q35Error(f"{scheme}: q35c cannot encode this scheme ({err})") from None

    return Codec(str(scheme), roundtrip, scheme.bits_per_weight, scheme.check_shape)


def relative_rms(reference: F32, approx: F32) -> float:
    """sqrt(sum (approx - reference)^2 / sum reference^2)."""
    diff = (approx.astype(np.float64) - reference).ravel()
    ref = reference.astype(np.float64).ravel()
    return float(np.sqrt(diff @ diff / max(ref @ ref, 1e-300)))


def kind_of(name: str) -> str:
    """`decoder.3.q_proj` -> `q_proj`; top-level names as they are."""
    return name.rsplit(".", 1)[-1]


@dataclass(frozen=True, eq=False)
class Variant:
    """A model requantized into a scheme: the model, relative RMS error per tensor kind, bits per weight."""

    label: str
    model: DenseModel
    errors: Mapping[str, float]
    bits_per_weight: float
    requantized: int  # weights requantized
    simulated: bool = False
    total_bits: float = field(default=0.0)


def requantized_names(model: DenseModel, embeddings: bool) -> list[str]:
    """The matrices a scheme replaces: every linear layer's, and the embeddings (and lm_head) if asked."""
    names = [n for n in model.matrix_names() if kind_of(n) in LINEARS]
    if embeddings:
        names += [n for n in ("embed_tokens", "lm_head") if n in model.params]
    return names


def check_schemes(model: DenseModel, specs: Sequence[str], *, embeddings: bool = False) -> None:
    """Q35Error, before any work, if a scheme cannot hold one of the matrices it would replace."""
    for spec in specs:
        chosen = codec(spec)
        for name in requantized_names(model, embeddings):
            n, k = model.params[name].shape
            try:
                chosen.check_shape(n, k)
            except Q35Error as err:
                raise Q35Error(f"weight {name} [{n}, {k}] cannot be stored as {err.message}") from None


def requantize(
    model: DenseModel,
    spec: str,
    *,
    embeddings: bool = False,
    label: str | None = None,
    on_tensor: Callable[[str], None] | None = None,
) -> Variant:
    """`model` with its linear layers (and embeddings if asked) encoded in `spec` and decoded again."""
    chosen = codec(spec)
    params = dict(model.params)
    squared: dict[str, list[float]] = {}
    bits = 0.0
    count = 0
    for name in requantized_names(model, embeddings):
        w = model.params[name]
        approx = chosen.roundtrip(w)
        params[name] = approx
        diff = (approx.astype(np.float64) - w).ravel()
        ref = w.astype(np.float64).ravel()
        sums = squared.setdefault(kind_of(name), [0.0, 0.0])
        sums[0] += float(diff @ diff)
        sums[1] += float(ref @ ref)
        bits += chosen.bits_per_weight(w.shape[1]) * w.size
        count += w.size
        if on_tensor is not None:
            on_tensor(name)
    errors = {kind: float(np.sqrt(d / max(r, 1e-300))) for kind, (d, r) in squared.items()}
    return Variant(
        label or chosen.spec,
        replace(model, params=params),
        errors,
        bits / max(count, 1),
        count,
        chosen.simulated,
        bits,
    )
