"""The numpy reference of a q35 graph: an interpreter over the graph-level module.

`evaluate(module, inputs, params)` runs the entry function (`@main` by default) on numpy arrays: untagged
arguments take `inputs` in order, every `q35.weight` takes the QuantizedTensor of its name from `params`
(dequantized with `q35c.formats`, exactly as the compiled program decodes it), and `func.call` evaluates the
callee's body (a decoder block) with the call's arguments.

Each op computes in float32, as its lowering does (`passes/lower_graph.py`, `passes/unpack_bits.py`), and
rounds its result to the activation dtype (float16) once, at the end: the compiled program and this reference
round at the same points. Dot products and sums are accumulated in float64 and rounded to float32, at least
as accurate as any float32 summation order; everything else follows the lowering's float32 formulas step by
step (x / (1 + exp(-x)), x * (1 / sqrt(ss / D + eps)) * gain, exp(s - max), (e . V) / sum e, ...).

    >>> logits, = evaluate(load_model("tiny").module, [ids, pos, *caches], params)

The final rounding of every op is a parameter (`Rounding`): `perturbed_rounding` moves each rounded element
by one float16 ulp in a random direction, which `q35c.verify.linear` uses to measure how far rounding differences
can travel through the graph.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from xdsl.dialects import func
from xdsl.dialects.builtin import Float16Type, Float32Type, IntegerType, ModuleOp, TensorType
from xdsl.ir import Operation, SSAValue

from q35c import formats
from q35c.dialects.q35 import (
    AddOp,
    AttentionOp,
    EmbedOp,
    LinearOp,
    MulOp,
    PackedType,
    RMSNormOp,
    RopeOp,
    SiluOp,
    WeightOp,
)
from q35c.dialects.q35_storage import UnpackOp
from q35c.formats import QuantizedTensor

F32 = NDArray[np.float32]
Array = NDArray[Any]
Value = Array | QuantizedTensor
Rounding = Callable[[F32, np.dtype[Any]], Array]
"""Rounds an op's float32 result to the activation dtype."""


def nearest(values: F32, dtype: np.dtype[Any]) -> Array:
    """Round to nearest, as `arith.truncf` does."""
    return values.astype(dtype)


@dataclass(frozen=True)
class PerturbedRounding:
    """Round to nearest, then move every element one ulp of `dtype` up or down at random (a `Rounding`)."""

    rng: np.random.Generator

    def __call__(self, values: F32, dtype: np.dtype[Any]) -> Array:
        rounded = values.astype(dtype)
        direction = np.where(self.rng.random(rounded.shape) < 0.5, -np.inf, np.inf).astype(dtype)
        return np.nextafter(rounded, direction)


def numpy_dtype(typ: Any) -> np.dtype[Any]:
    """The numpy dtype of an MLIR element type (f16, f32, iN)."""
    if isinstance(typ, Float16Type):
        return np.dtype(np.float16)
    if isinstance(typ, Float32Type):
        return np.dtype(np.float32)
    if isinstance(typ, IntegerType):
        return np.dtype(f"int{typ.width.data}")
    raise ValueError(f"no numpy dtype for {typ}")


def _dtype_of(value: SSAValue) -> np.dtype[Any]:
    assert isinstance(value.type, TensorType)
    return numpy_dtype(value.type.element_type)


def _f32(a: Array) -> F32:
    return a.astype(np.float32)


def _sum(a: Array, axis: int) -> F32:
    """A float64 sum rounded to float32."""
    return a.astype(np.float64).sum(axis=axis).astype(np.float32)


def dequantized(qt: QuantizedTensor, shape: Sequence[int]) -> F32:
    """The weights of a packed value as float32 of its logical shape (vectors are stored as [1, D])."""
    return formats.get(qt.scheme).dequantize(qt).reshape(tuple(shape))


# --------------------------------------------------------------------------------------------------------------
# The ops, in float32
# --------------------------------------------------------------------------------------------------------------


def embed(ids: Array, table: F32) -> F32:
    return table[ids.astype(np.int64)]


def rmsnorm(x: Array, gain: F32, eps: float) -> F32:
    xf = _f32(x)
    mean_square = _sum(xf * xf, 1) / np.float32(x.shape[1])
    inv_rms = np.float32(1) / np.sqrt(mean_square + np.float32(eps))
    return (xf * inv_rms[:, None]) * gain[None, :]


def rope_inv_freq(head_dim: int, theta: float) -> F32:
    """RoPE's inverse frequencies 1 / theta^(2i / head_dim) for i < head_dim / 2, as Hugging Face's Llama
    computes them (`1 / base ** (arange(0, dim, 2) / dim)`), in float64 and rounded to float32.

    Written independently of the lowering (`passes/lower_graph.py` has its own formula) so that the reference
    checks it rather than repeating it.
    """
    exponents = np.arange(0, head_dim - 1, 2, dtype=np.float64) / head_dim
    return (1.0 / np.float64(theta) ** exponents).astype(np.float32)


def rope(x: Array, positions: Array, head_dim: int, theta: float) -> F32:
    """Rotate-half per head: [x1 cos - x2 sin, x2 cos + x1 sin], angle pos * theta^(-2i/head_dim)."""
    t, d = x.shape
    half = head_dim // 2
    heads = _f32(x).reshape(t, d // head_dim, head_dim)
    angle = positions.astype(np.float32)[:, None] * rope_inv_freq(head_dim, theta)[None, :]  # [T, half]
    cos, sin = np.cos(angle)[:, None, :], np.sin(angle)[:, None, :]
    x1, x2 = heads[..., :half], heads[..., half:]
    return np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1).reshape(t, d)


def attention(
    q: Array,
    k: Array,
    v: Array,
    k_cache: Array,
    v_cache: Array,
    num_heads: int,
    num_kv_heads: int,
    head_dim: int,
    batch: int = 1,
    positions: Array | None = None,
) -> F32:
    """Causal GQA: query t sees the C cached tokens and new tokens 0..t; query head h uses KV head h // G. With
    `batch` = B the rows are B sequences one after another (B*T new rows, B*C cache rows), each attending to
    its own rows only. With `positions` ([B*T], the new tokens' positions) the cache is filled at run time:
    query t sees cache row j only when j + t < positions[t] (below its sequence's first new position)."""
    if batch > 1:
        t, c = q.shape[0] // batch, k_cache.shape[0] // batch
        return np.concatenate(
            [
                attention(
                    q[i * t : (i + 1) * t],
                    k[i * t : (i + 1) * t],
                    v[i * t : (i + 1) * t],
                    k_cache[i * c : (i + 1) * c],
                    v_cache[i * c : (i + 1) * c],
                    num_heads,
                    num_kv_heads,
                    head_dim,
                    positions=None if positions is None else positions[i * t : (i + 1) * t],
                )
                for i in range(batch)
            ]
        )
    t, c = q.shape[0], k_cache.shape[0]
    group = num_heads // num_kv_heads
    qh = _f32(q).reshape(t, num_heads, head_dim)
    keys = _f32(np.concatenate([k_cache, k])).reshape(c + t, num_kv_heads, head_dim)
    values = _f32(np.concatenate([v_cache, v])).reshape(c + t, num_kv_heads, head_dim)
    keys, values = np.repeat(keys, group, axis=1), np.repeat(values, group, axis=1)  # [L, H, hd]
    dots = np.einsum("thd,jhd->htj", qh.astype(np.float64), keys.astype(np.float64)).astype(np.float32)
    scores = dots * np.float32(1.0 / np.sqrt(head_dim))
    valid = np.arange(c + t)[None, :] <= c + np.arange(t)[:, None]  # [T, L]
    if positions is not None:
        rows, new = np.arange(c + t)[None, :], np.arange(t)[:, None]
        valid &= (rows >= c) | (rows + new < np.asarray(positions, dtype=np.int64).reshape(t, 1))
    row_max = np.where(valid[None], scores, np.float32(-np.inf)).max(axis=2)  # [H, T]
    with np.errstate(over="ignore", invalid="ignore"):
        e = np.where(valid[None], np.exp(scores - row_max[:, :, None]), np.float32(0))
    total = _sum(e, 2)  # [H, T]
    o = np.einsum("htj,jhd->thd", e.astype(np.float64), values.astype(np.float64)).astype(np.float32)
    return (o / total.T[:, :, None]).reshape(t, num_heads * head_dim)


def silu(x: Array) -> F32:
    xf = _f32(x)
    with np.errstate(over="ignore"):
        return xf / (np.exp(-xf) + np.float32(1))


def linear(x: Array, w: F32) -> F32:
    return (x.astype(np.float64) @ w.astype(np.float64).T).astype(np.float32)


# --------------------------------------------------------------------------------------------------------------
# The interpreter
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Interpreter:
    module: ModuleOp
    params: Mapping[str, QuantizedTensor]
    rounding: Rounding

    def function(self, name: str) -> func.FuncOp:
        for op in self.module.ops:
            if isinstance(op, func.FuncOp) and op.sym_name.data == name:
                return op
        raise ValueError(f"no function @{name} in the module")

    def call(self, fn: func.FuncOp, args: Sequence[Value]) -> list[Value]:
        block = fn.body.blocks.first
        assert block is not None
        if len(args) != len(block.args):
            raise ValueError(f"@{fn.sym_name.data} takes {len(block.args)} arguments, got {len(args)}")
        env: dict[SSAValue, Value] = dict(zip(block.args, args, strict=True))
        for op in block.ops:
            if isinstance(op, func.ReturnOp):
                return [env[v] for v in op.arguments]
            outputs = self.op(op, env)
            env.update(zip(op.results, outputs, strict=True))
        raise ValueError(f"@{fn.sym_name.data} has no func.return")

    def op(self, op: Operation, env: Mapping[SSAValue, Value]) -> list[Value]:
        def array(value: SSAValue) -> Array:
            found = env[value]
            assert not isinstance(found, QuantizedTensor)
            return found

        def weights(value: SSAValue) -> F32:
            qt, typ = env[value], value.type
            assert isinstance(qt, QuantizedTensor) and isinstance(typ, PackedType)
            return dequantized(qt, typ.get_shape())

        if isinstance(op, WeightOp):
            name = op.param_name.data
            if name not in self.params:
                raise ValueError(f"no data for weight '{name}'")
            return [self.params[name]]
        if isinstance(op, func.CallOp):
            return self.call(self.function(op.callee.string_value()), [env[v] for v in op.arguments])
        if isinstance(op, UnpackOp):
            qt = env[op.weight]
            assert isinstance(qt, QuantizedTensor)
            return [formats.get(qt.scheme).unpack(qt.packed)]
        result: F32
        if isinstance(op, EmbedOp):
            result = embed(array(op.ids), weights(op.table))
        elif isinstance(op, RMSNormOp):
            result = rmsnorm(array(op.x), weights(op.gamma), op.eps.value.data)
        elif isinstance(op, RopeOp):
            result = rope(array(op.x), array(op.positions), op.head_dim.value.data, op.theta.value.data)
        elif isinstance(op, AttentionOp):
            q, k, v, kc, vc = (array(x) for x in (op.q, op.k, op.v, op.k_cache, op.v_cache))
            sizes = (op.num_heads.value.data, op.num_kv_heads.value.data, op.head_dim.value.data)
            pos = None if op.positions is None else array(op.positions)
            result = attention(q, k, v, kc, vc, *sizes, batch=op.batch, positions=pos)
        elif isinstance(op, SiluOp):
            result = silu(array(op.x))
        elif isinstance(op, MulOp):
            result = _f32(array(op.lhs)) * _f32(array(op.rhs))
        elif isinstance(op, AddOp):
            result = _f32(array(op.lhs)) + _f32(array(op.rhs))
        elif isinstance(op, LinearOp):
            result = linear(array(op.x), weights(op.weight))
        else:
            raise ValueError(f"the reference does not know {op.name}")
        return [self.rounding(result, _dtype_of(op.results[0]))]


def evaluate(
    module: ModuleOp,
    inputs: Sequence[Array],
    params: Mapping[str, QuantizedTensor],
    entry: str = "main",
    rounding: Rounding = nearest,
) -> list[Array]:
    """The results of `entry` on `inputs` (its arguments in order) with weights `params` (by q35.weight name)."""
    interpreter = _Interpreter(module, params, rounding)
    results = interpreter.call(interpreter.function(entry), list(inputs))
    out: list[Array] = []
    for value in results:
        assert not isinstance(value, QuantizedTensor), f"@{entry} returns a packed weight"
        out.append(value)
    return out


# --------------------------------------------------------------------------------------------------------------
# Rounding depth
# --------------------------------------------------------------------------------------------------------------


def rounding_depth(module: ModuleOp, entry: str = "main") -> int:
    """The most roundings to the activation dtype on any path from an input to a result of `entry`.

    Every q35 compute op (embed, rmsnorm, rope, attention, silu, mul, add, linear) rounds its result once;
    a call adds its callee's depth from that argument. For tiny (2 layers) this is 27: embed, then 12 per
    layer (rmsnorm, q linear, rope, attention, o linear, add, rmsnorm, gate linear, silu, mul, down linear,
    add), then the final rmsnorm and lm_head.
    """
    interpreter = _Interpreter(module, {}, nearest)

    def depths(fn: func.FuncOp, args: Sequence[int]) -> list[int]:
        block = fn.body.blocks.first
        assert block is not None
        env: dict[SSAValue, int] = dict(zip(block.args, args, strict=True))
        for op in block.ops:
            if isinstance(op, func.ReturnOp):
                return [env[v] for v in op.arguments]
            incoming = [env[v] for v in op.operands]
            if isinstance(op, func.CallOp):
                outs = depths(interpreter.function(op.callee.string_value()), incoming)
            else:
                rounds = not isinstance(op, WeightOp | UnpackOp)
                outs = [max(incoming, default=0) + int(rounds)] * len(op.results)
            env.update(zip(op.results, outs, strict=True))
        raise ValueError(f"@{fn.sym_name.data} has no func.return")

    fn = interpreter.function(entry)
    return max(depths(fn, [0] * len(fn.args)), default=0)
