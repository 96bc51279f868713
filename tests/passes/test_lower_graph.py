"""lower-graph: every graph op lowered alone, run by real MLIR and compared with the numpy reference; and the
reference itself checked against textbook float64 formulas (Hugging Face Llama's rotate-half RoPE, attention
with an explicit causal mask and KV-head mapping).

One op's result is rounded to float16 once by both sides from float32 values that differ only by summation
order or libm versus numpy transcendental functions, so they may differ by at most one float16 ulp.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp
from xdsl.parser import Parser

from q35c import formats
from q35c.dialects.q35 import PackedType
from q35c.driver.pipeline import make_context
from q35c.formats import QuantizedTensor
from q35c.frontend import load_model
from q35c.verify import reference
from q35c.verify.linear import arguments_for, lower_for_host, run_on_host
from q35c.verify.mlir_tools import MlirTools

ENTRY = "f"


def _parse(text: str) -> ModuleOp:
    module = Parser(make_context(), text).parse_module()
    module.verify()
    return module


def _run(
    text: str, inputs: Sequence[NDArray[Any]], params: Mapping[str, QuantizedTensor], tools: MlirTools
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(compiled result, reference result) of @f on the given inputs and weights."""
    graph = _parse(text)
    expected = reference.evaluate(graph, inputs, params, ENTRY)[0]
    lowered = lower_for_host(_parse(text))
    fn = next(op for op in lowered.ops if isinstance(op, func.FuncOp))
    got = run_on_host(lowered, ENTRY, arguments_for(fn, inputs, params), tools)[0].values
    return got.astype(np.float64), expected.astype(np.float64)


def _assert_within_one_ulp(got: NDArray[np.float64], expected: NDArray[np.float64], exact: bool = False) -> None:
    assert got.shape == expected.shape
    ulp = np.spacing(np.abs(expected).astype(np.float16)).astype(np.float64)
    err = np.abs(got - expected)
    if exact:
        assert np.array_equal(got, expected), f"max error {err.max():.3e}"
    else:
        assert (err <= ulp).all(), (
            f"max error {err.max():.3e} at {np.unravel_index(int(np.argmax(err / ulp)), err.shape)}"
        )


def _f16(rng: np.random.Generator, *shape: int, scale: float = 1.0) -> NDArray[np.float16]:
    return (scale * rng.standard_normal(shape)).astype(np.float16)


# -- embed ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", ["fp16", "int8", "int4:g=32", "q3p5:g=32", "q3p5:g=16:container=byte", "q4_0", "q8_0"])
def test_embed_gathers_and_decodes_rows(spec: str, mlir_tools: MlirTools) -> None:
    scheme = formats.get(spec).scheme
    packed = str(PackedType((16, 64), spec))
    text = f"""
    func.func @f(%ids: tensor<3xi32>) -> tensor<3x64xf16> {{
      %t = q35.weight "table" : {packed}
      %x = q35.embed %ids, %t : (tensor<3xi32>, {packed}) -> tensor<3x64xf16>
      func.return %x : tensor<3x64xf16>
    }}"""
    rng = np.random.default_rng(1)
    table = formats.get(scheme).quantize(rng.standard_normal((16, 64)).astype(np.float32))
    ids = np.array([5, 0, 15], dtype=np.int32)
    got, expected = _run(text, [ids], {"table": table}, mlir_tools)
    _assert_within_one_ulp(got, expected, exact=True)
    np.testing.assert_array_equal(expected, formats.get(scheme).dequantize(table)[ids].astype(np.float16))


# -- rmsnorm, rope, elementwise ------------------------------------------------------------------------------------


def test_rmsnorm(mlir_tools: MlirTools) -> None:
    text = """
    func.func @f(%x: tensor<3x32xf16>) -> tensor<3x32xf16> {
      %g = q35.weight "gain" : !q35.packed<32, #q35.scheme<fp16>>
      %y = q35.rmsnorm %x, %g {eps = 1.0e-05 : f32} : (tensor<3x32xf16>, !q35.packed<32, #q35.scheme<fp16>>)
          -> tensor<3x32xf16>
      func.return %y : tensor<3x32xf16>
    }"""
    rng = np.random.default_rng(2)
    x = _f16(rng, 3, 32, scale=3.0)
    gain = formats.get("fp16").quantize((1 + 0.1 * rng.standard_normal((1, 32))).astype(np.float32))
    got, expected = _run(text, [x], {"gain": gain}, mlir_tools)
    _assert_within_one_ulp(got, expected)


@pytest.mark.parametrize("positions", [[0, 1, 2], [5, 6, 7], [0, 300, 511]], ids=["from-0", "from-5", "far"])
def test_rope(positions: list[int], mlir_tools: MlirTools) -> None:
    text = """
    func.func @f(%x: tensor<3x32xf16>, %pos: tensor<3xi32>) -> tensor<3x32xf16> {
      %y = q35.rope %x, %pos {head_dim = 16 : i64, theta = 1.0e+04 : f32} : (tensor<3x32xf16>, tensor<3xi32>)
          -> tensor<3x32xf16>
      func.return %y : tensor<3x32xf16>
    }"""
    x = _f16(np.random.default_rng(3), 3, 32)
    got, expected = _run(text, [x, np.array(positions, dtype=np.int32)], {}, mlir_tools)
    _assert_within_one_ulp(got, expected)
    if positions[0] == 0:  # position 0 is the identity
        np.testing.assert_array_equal(got[0], x[0].astype(np.float64))


def test_silu_mul_add(mlir_tools: MlirTools) -> None:
    for op in ("silu", "mul", "add"):
        args = "%a" if op == "silu" else "%a, %b"
        text = f"""
        func.func @f(%a: tensor<2x64xf16>, %b: tensor<2x64xf16>) -> tensor<2x64xf16> {{
          %y = q35.{op} {args} : tensor<2x64xf16>
          func.return %y : tensor<2x64xf16>
        }}"""
        rng = np.random.default_rng(4)
        a, b = _f16(rng, 2, 64, scale=4.0), _f16(rng, 2, 64, scale=4.0)
        got, expected = _run(text, [a, b], {}, mlir_tools)
        _assert_within_one_ulp(got, expected)


# -- attention ------------------------------------------------------------------------------------------------------

ATTENTION_CASES = [
    # (T, C, H, Hkv, hd)
    (1, 0, 4, 2, 8),  # decode, empty cache
    (3, 0, 4, 2, 8),  # prefill: causal among the new tokens
    (3, 5, 4, 2, 8),  # cache plus causal new tokens
    (1, 6, 4, 2, 8),  # decode over a cache
    (2, 3, 2, 2, 8),  # multi-head (no grouping)
    (2, 2, 4, 1, 4),  # multi-query
]


def _attention_module(t: int, c: int, h: int, hkv: int, hd: int) -> str:
    q, kv, cache = f"tensor<{t}x{h * hd}xf16>", f"tensor<{t}x{hkv * hd}xf16>", f"tensor<{c}x{hkv * hd}xf16>"
    return f"""
    func.func @f(%q: {q}, %k: {kv}, %v: {kv}, %kc: {cache}, %vc: {cache}) -> {q} {{
      %o = q35.attention %q, %k, %v, %kc, %vc {{num_heads = {h} : i64, num_kv_heads = {hkv} : i64,
          head_dim = {hd} : i64}} : ({q}, {kv}, {kv}, {cache}, {cache}) -> {q}
      func.return %o : {q}
    }}"""


ATTENTION_IDS = [f"T{t}-C{c}-H{h}-KV{k}" for t, c, h, k, _ in ATTENTION_CASES]


@pytest.mark.parametrize(("t", "c", "h", "hkv", "hd"), ATTENTION_CASES, ids=ATTENTION_IDS)
def test_attention(t: int, c: int, h: int, hkv: int, hd: int, mlir_tools: MlirTools) -> None:
    rng = np.random.default_rng(5)
    inputs = [_f16(rng, t, h * hd, scale=2.0), _f16(rng, t, hkv * hd, scale=2.0), _f16(rng, t, hkv * hd)]
    inputs += [_f16(rng, c, hkv * hd, scale=2.0), _f16(rng, c, hkv * hd)]
    got, expected = _run(_attention_module(t, c, h, hkv, hd), inputs, {}, mlir_tools)
    _assert_within_one_ulp(got, expected)


# -- the reference against textbook formulas (no tools) -------------------------------------------------------------


def test_reference_rope_is_hugging_face_rotate_half() -> None:
    rng = np.random.default_rng(6)
    x, pos, hd, theta = _f16(rng, 3, 32), np.array([0, 7, 300]), 16, 10000.0
    inv_freq = 1.0 / theta ** (np.arange(0, hd, 2) / hd)
    freqs = pos[:, None] * inv_freq[None, :]
    emb = np.concatenate([freqs, freqs], axis=-1)[:, None, :]  # [T, 1, hd]
    heads = x.astype(np.float64).reshape(3, 2, hd)
    rotate_half = np.concatenate([-heads[..., hd // 2 :], heads[..., : hd // 2]], axis=-1)
    expected = (heads * np.cos(emb) + rotate_half * np.sin(emb)).reshape(3, 32)
    np.testing.assert_allclose(reference.rope(x, pos.astype(np.int32), hd, theta), expected, atol=2e-4)


@pytest.mark.parametrize(("t", "c", "h", "hkv", "hd"), ATTENTION_CASES, ids=ATTENTION_IDS)
def test_reference_attention_is_causal_gqa(t: int, c: int, h: int, hkv: int, hd: int) -> None:
    rng = np.random.default_rng(7)
    q, k, v = _f16(rng, t, h * hd), _f16(rng, t, hkv * hd), _f16(rng, t, hkv * hd)
    kc, vc = _f16(rng, c, hkv * hd), _f16(rng, c, hkv * hd)
    keys = np.concatenate([kc, k]).astype(np.float64)
    values = np.concatenate([vc, v]).astype(np.float64)
    expected = np.zeros((t, h * hd))
    for token in range(t):
        for head in range(h):
            kv = head // (h // hkv)
            qv = q[token, head * hd : (head + 1) * hd].astype(np.float64)
            seen = slice(0, c + token + 1)  # the cache and new tokens 0..token
            s = keys[seen, kv * hd : (kv + 1) * hd] @ qv / np.sqrt(hd)
            p = np.exp(s - s.max())
            expected[token, head * hd : (head + 1) * hd] = (p / p.sum()) @ values[seen, kv * hd : (kv + 1) * hd]
    np.testing.assert_allclose(reference.attention(q, k, v, kc, vc, h, hkv, hd), expected, rtol=1e-5, atol=1e-6)


# Runtime caches (`positions`): (T, C, batch, each sequence's first new position).
POSITION_CASES = [(1, 6, 1, (3,)), (2, 5, 1, (2,)), (1, 4, 1, (4,)), (2, 3, 2, (1, 3)), (1, 4, 1, (0,))]
POSITION_IDS = [f"T{t}-C{c}-B{b}-from{'-'.join(map(str, p))}" for t, c, b, p in POSITION_CASES]


def _positioned_attention(t: int, c: int, b: int, h: int = 4, hkv: int = 2, hd: int = 8) -> str:
    q, kv, cache = f"tensor<{b * t}x{h * hd}xf16>", f"tensor<{b * t}x{hkv * hd}xf16>", f"tensor<{b * c}x{hkv * hd}xf16>"
    pos, batch = f"tensor<{b * t}xi32>", f"batch = {b} : i64, " if b > 1 else ""
    return f"""
    func.func @f(%q: {q}, %k: {kv}, %v: {kv}, %kc: {cache}, %vc: {cache}, %pos: {pos}) -> {q} {{
      %o = q35.attention %q, %k, %v, %kc, %vc positions %pos {{{batch}num_heads = {h} : i64,
          num_kv_heads = {hkv} : i64, head_dim = {hd} : i64}} : ({q}, {kv}, {kv}, {cache}, {cache}, {pos}) -> {q}
      func.return %o : {q}
    }}"""


def _positioned_inputs(t: int, c: int, b: int, firsts: tuple[int, ...], seed: int) -> list[NDArray[Any]]:
    rng = np.random.default_rng(seed)
    inputs = [_f16(rng, b * t, 32, scale=2.0), _f16(rng, b * t, 16, scale=2.0), _f16(rng, b * t, 16)]
    inputs += [_f16(rng, b * c, 16, scale=2.0), _f16(rng, b * c, 16)]
    return [*inputs, np.concatenate([np.arange(p, p + t) for p in firsts]).astype(np.int32)]


@pytest.mark.parametrize(("t", "c", "b", "firsts"), POSITION_CASES, ids=POSITION_IDS)
def test_attention_with_positions(t: int, c: int, b: int, firsts: tuple[int, ...], mlir_tools: MlirTools) -> None:
    inputs = _positioned_inputs(t, c, b, firsts, seed=9)
    got, expected = _run(_positioned_attention(t, c, b), inputs, {}, mlir_tools)
    _assert_within_one_ulp(got, expected)


@pytest.mark.parametrize(("t", "c", "b", "firsts"), POSITION_CASES, ids=POSITION_IDS)
def test_reference_positions_hide_the_cache_rows_from_the_first_new_position_on(
    t: int, c: int, b: int, firsts: tuple[int, ...]
) -> None:
    """Sequence i sees its cache rows below firsts[i] only: the same as a cache of just those rows."""
    q, k, v, kc, vc, pos = _positioned_inputs(t, c, b, firsts, seed=10)
    got = reference.attention(q, k, v, kc, vc, 4, 2, 8, batch=b, positions=pos)
    for i, first in enumerate(firsts):
        rows, seen = slice(i * t, (i + 1) * t), slice(i * c, i * c + first)
        alone = reference.attention(q[rows], k[rows], v[rows], kc[seen], vc[seen], 4, 2, 8)
        np.testing.assert_allclose(got[rows], alone, rtol=1e-6, atol=1e-7)
    if all(first == c for first in firsts):  # a full cache: exactly the plain op
        assert np.array_equal(got, reference.attention(q, k, v, kc, vc, 4, 2, 8, batch=b))


def test_reference_rmsnorm_and_silu() -> None:
    rng = np.random.default_rng(8)
    x, gain = _f16(rng, 2, 16, scale=3.0), (1 + 0.1 * rng.standard_normal(16)).astype(np.float32)
    xd = x.astype(np.float64)
    expected = xd / np.sqrt((xd * xd).mean(axis=1, keepdims=True) + 1e-5) * gain
    np.testing.assert_allclose(reference.rmsnorm(x, gain, 1e-5), expected, rtol=1e-6)
    np.testing.assert_allclose(reference.silu(x), xd / (1 + np.exp(-xd)), rtol=1e-6)


# -- the whole model ------------------------------------------------------------------------------------------------


def test_host_lowering_tags_every_kernel() -> None:
    from q35c.ir.attrs import KERNEL_ATTR

    module = lower_for_host(load_model("tiny").module)
    kernels = {str(op.attributes[KERNEL_ATTR].data) for op in module.walk() if KERNEL_ATTR in op.attributes}  # type: ignore[attr-defined]
    assert kernels == {"embed", "rmsnorm", "rope", "attention", "silu", "mul", "add", "linear", "unpack"}


def test_lower_graph_requires_materialized_weights() -> None:
    from xdsl.utils.exceptions import PassFailedException

    from q35c.passes.lower_graph import LowerGraphPass

    with pytest.raises(PassFailedException, match="run materialize-weights before lower-graph"):
        LowerGraphPass().apply(make_context(), load_model("tiny").module)
