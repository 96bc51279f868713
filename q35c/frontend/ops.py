"""Typing rules of the q35 graph ops, with messages written for model authors.

The dialect verifies the same invariants on the IR; checking them here first lets every front end report a
mistake at its place in the source (`file:line:col`) instead of as an IR verification failure.

>>> x = TensorType((1, 64)); w = WeightType((128, 64))
>>> infer("linear", [x, w], {}, "f16")
(TensorType(shape=(1, 128), dtype='f16'), ())
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from q35c.frontend.graph import TensorType, WeightType
from q35c.util.limits import MAX_DIM, float_error, integer_error

Type = TensorType | WeightType
Attrs = dict[str, int | float]


@dataclass(frozen=True)
class OpSpec:
    """An op's operand roles, its attributes (name -> (int or float, default; None: required))."""

    operands: tuple[str, ...]
    attrs: tuple[tuple[str, type, int | float | None], ...]
    rule: Callable[[Sequence[Type], Attrs, str], TensorType]

    def signature(self, name: str) -> str:
        args = [*self.operands, *(f"{a}=" for a, _, _ in self.attrs)]
        return f"{name}({', '.join(args)})"


def _activation(t: Type, what: str) -> TensorType:
    if not isinstance(t, TensorType) or t.dtype == "i32":
        raise ValueError(f"{what} must be an f16 or f32 activation tensor, got {t}")
    if len(t.shape) != 2:
        raise ValueError(f"{what} must be a 2-D tensor [tokens, features], got {t}")
    return t


def _weight(t: Type, what: str, rank: int) -> WeightType:
    if not isinstance(t, WeightType):
        raise ValueError(f"{what} must be a param (a weight), got {t}")
    if len(t.shape) != rank:
        want = "[N, K]" if rank == 2 else "[D]"
        raise ValueError(f"{what} must be a {rank}-D weight {want}, got shape {t}")
    return t


def _positions(t: Type, tokens: int, what: str) -> None:
    if not isinstance(t, TensorType) or t.dtype != "i32" or t.shape != (tokens,):
        raise ValueError(f"{what} must be tensor<{tokens}xi32>, got {t}")


def _linear(ts: Sequence[Type], attrs: Attrs, dtype: str) -> TensorType:
    x = _activation(ts[0], "linear input")
    w = _weight(ts[1], "linear weight", 2)
    n, k = w.shape
    if x.shape[1] != k:
        raise ValueError(f"linear input has {x.shape[1]} features but the weight is [{n}, {k}] (N x K, K = input)")
    return TensorType((x.shape[0], n), x.dtype)


def _embed(ts: Sequence[Type], attrs: Attrs, dtype: str) -> TensorType:
    ids = ts[0]
    if not isinstance(ids, TensorType) or ids.dtype != "i32" or len(ids.shape) != 1:
        raise ValueError(f"embed ids must be a 1-D i32 tensor [T] i32, got {ids}")
    table = _weight(ts[1], "embed table", 2)
    return TensorType((ids.shape[0], table.shape[1]), dtype)


def _rmsnorm(ts: Sequence[Type], attrs: Attrs, dtype: str) -> TensorType:
    x = _activation(ts[0], "rmsnorm input")
    gain = _weight(ts[1], "rmsnorm gain", 1)
    if gain.shape != (x.shape[1],):
        raise ValueError(f"rmsnorm gain must have shape [{x.shape[1]}] to match the input, got {gain}")
    if not attrs["eps"] > 0:
        raise ValueError(f"rmsnorm eps must be positive, got {attrs['eps']}")
    return x


def _rope(ts: Sequence[Type], attrs: Attrs, dtype: str) -> TensorType:
    x = _activation(ts[0], "rope input")
    _positions(ts[1], x.shape[0], "rope positions")
    hd = int(attrs["head_dim"])
    if hd <= 0 or hd % 2 != 0 or x.shape[1] % hd != 0:
        raise ValueError(f"rope head_dim={hd} must be even and divide the input's {x.shape[1]} features")
    return x


def _attention(ts: Sequence[Type], attrs: Attrs, dtype: str) -> TensorType:
    q = _activation(ts[0], "attention q")
    k = _activation(ts[1], "attention k")
    hd = int(attrs["head_dim"])
    if hd <= 0 or q.shape[1] % hd != 0 or k.shape[1] % hd != 0:
        raise ValueError(f"attention head_dim={hd} must divide the q ({q.shape[1]}) and k ({k.shape[1]}) widths")
    heads, kv_heads = q.shape[1] // hd, k.shape[1] // hd
    for key, inferred in (("num_heads", heads), ("num_kv_heads", kv_heads)):
        given = attrs.get(key, 0)
        if given and given != inferred:
            raise ValueError(f"attention {key}={given} but the tensors give {inferred} (width / head_dim={hd})")
        attrs[key] = inferred
    if heads % kv_heads != 0:
        raise ValueError(f"attention num_heads={heads} must be a multiple of num_kv_heads={kv_heads}")
    for t, what in ((ts[2], "v"), (ts[3], "k_cache"), (ts[4], "v_cache")):
        _activation(t, f"attention {what}")
    if ts[2] != k:
        raise ValueError(f"attention v must have the type of k ({k}), got {ts[2]}")
    cache = ts[3]
    assert isinstance(cache, TensorType)
    if cache.shape[1] != k.shape[1] or ts[4] != cache or cache.dtype != q.dtype:
        raise ValueError(f"attention caches must both be [C, {k.shape[1]}] {q.dtype}, got {cache} and {ts[4]}")
    if k.shape[0] != q.shape[0] or k.dtype != q.dtype:
        raise ValueError(f"attention k must have {q.shape[0]} tokens and dtype {q.dtype} like q, got {k}")
    return q


def _silu(ts: Sequence[Type], attrs: Attrs, dtype: str) -> TensorType:
    return _activation(ts[0], "silu input")


def _elementwise(op: str) -> Callable[[Sequence[Type], Attrs, str], TensorType]:
    def rule(ts: Sequence[Type], attrs: Attrs, dtype: str) -> TensorType:
        a = _activation(ts[0], f"{op} operand")
        b = _activation(ts[1], f"{op} operand")
        if a != b:
            raise ValueError(f"{op} operands must have the same type, got {a} and {b}")
        return a

    return rule


OPS: Mapping[str, OpSpec] = {
    "add": OpSpec(("a", "b"), (), _elementwise("add")),
    "attention": OpSpec(
        ("q", "k", "v", "k_cache", "v_cache"),
        (("head_dim", int, None), ("num_heads", int, 0), ("num_kv_heads", int, 0)),
        _attention,
    ),
    "embed": OpSpec(("ids", "table"), (), _embed),
    "linear": OpSpec(("x", "weight"), (), _linear),
    "mul": OpSpec(("a", "b"), (), _elementwise("mul")),
    "rmsnorm": OpSpec(("x", "gain"), (("eps", float, 1e-5),), _rmsnorm),
    "rope": OpSpec(("x", "positions"), (("head_dim", int, None), ("theta", float, 10000.0)), _rope),
    "silu": OpSpec(("x",), (), _silu),
}


def check_attrs(op: str, given: Mapping[str, int | float]) -> Attrs:
    """Fill defaults, convert ints to floats where a float is expected; ValueError names what is wrong."""
    spec = OPS[op]
    known = {name for name, _, _ in spec.attrs}
    for name in given:
        if name not in known:
            valid = ", ".join(sorted(known)) or "none"
            raise ValueError(f"{op} has no attribute '{name}' (valid: {valid})")
    attrs: Attrs = {}
    for name, kind, default in spec.attrs:
        value = given.get(name, default)
        if value is None:
            raise ValueError(f"{op} needs the attribute {name}= (as in {spec.signature(op)})")
        if kind is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(f"{op} attribute {name} must be an integer, got {value}")
            value = int(value)
            problem = integer_error(value, f"{op} attribute {name}", MAX_DIM, 0)
        else:
            value = float(value)
            problem = float_error(value, f"{op} attribute {name}")
        if problem is not None:
            raise ValueError(problem)
        attrs[name] = value
    return attrs


def infer(
    op: str, types: Sequence[Type], given: Mapping[str, int | float], dtype: str
) -> tuple[TensorType, tuple[tuple[str, int | float], ...]]:
    """The result type and the complete attributes of `op` applied to operands of `types`.

    `dtype` is the model's activation type (the result type of embed). Raises ValueError with the reason.
    """
    spec = OPS[op]
    if len(types) != len(spec.operands):
        raise ValueError(f"{op} takes {len(spec.operands)} tensors ({spec.signature(op)}), got {len(types)}")
    attrs = check_attrs(op, given)
    result = spec.rule(types, attrs, dtype)
    return result, tuple(attrs.items())
