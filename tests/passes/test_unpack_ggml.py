"""unpack-bits for llama.cpp's q4_1, q5_0, q5_1, K-quants and iq4 (`passes/_build/ggml_codes.py`)."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
from gguf import GGMLQuantizationType as GGML
from xdsl.dialects.builtin import ModuleOp
from xdsl.parser import Parser
from xdsl.printer import Printer
from xdsl.utils.exceptions import PassFailedException

from q35c.driver.pipeline import make_context
from q35c.passes.materialize_weights import MaterializeWeightsPass
from q35c.passes.unpack_bits import UnpackBitsPass
from q35c.verify.linear import LinearCase, foreign_ops, linear_module, verify_linear
from q35c.verify.mlir_tools import MlirTools
from q35c.verify.model import ModelCase, verify_model

NEW = ("q4_1", "q5_0", "q5_1", "q2_k", "q3_k", "q4_k", "q5_k", "q6_k", "iq4_nl", "iq4_xs")


def _text(module: ModuleOp) -> str:
    out = io.StringIO()
    Printer(stream=out).print_op(module)
    return out.getvalue()


def _lower(spec: str, keep_int_codes: bool = False, k: int = 512) -> ModuleOp:
    module = linear_module(2, 8, k, spec)
    ctx = make_context()
    MaterializeWeightsPass().apply(ctx, module)
    UnpackBitsPass(keep_int_codes=keep_int_codes).apply(ctx, module)
    module.verify()
    return module


@pytest.mark.parametrize("keep_int_codes", [False, True], ids=["dequant", "int-codes"])
@pytest.mark.parametrize("spec", NEW)
def test_lowered_linear_is_upstream_and_reads_back(spec: str, keep_int_codes: bool) -> None:
    module = _lower(spec, keep_int_codes)
    assert foreign_ops(module) == []
    text = _text(module)
    reparsed = Parser(make_context(), text).parse_module()
    reparsed.verify()
    assert _text(reparsed) == text
    with_min = spec in ("q4_1", "q5_1", "q2_k", "q4_k", "q5_k")
    decoded_mins = "%offset_grid = linalg.generic" in text or "%offset = linalg.generic" in text
    assert decoded_mins == with_min  # the mins are decoded from the blocks


# (loops of the codes generic as its output grid, number of loops)
GRIDS = {
    "q4_1": "tensor<8x16x2x16xi8>",
    "q5_0": "tensor<8x16x2x16xi8>",
    "iq4_nl": "tensor<8x16x2x16xi8>",
    "q2_k": "tensor<8x2x2x4x32xi8>",
    "q3_k": "tensor<8x2x2x4x32xi8>",
    "q4_k": "tensor<8x2x4x2x32xi8>",
    "q6_k": "tensor<8x2x2x2x2x32xi8>",
    "iq4_xs": "tensor<8x2x8x2x16xi8>",
}


@pytest.mark.parametrize("spec", GRIDS)
def test_codes_iterate_over_block_units_without_choices(spec: str) -> None:
    text = _text(_lower(spec))
    lines = [li for li in text.splitlines() if 'q35.kernel = "unpack"' in li]
    assert len(lines) == 2  # the linear's codes and q35_storage.unpack's
    for line in lines:
        assert f" : {GRIDS[spec]}) attrs" in line
    unpack = text[text.index(lines[1]) :]  # q35_storage.unpack's codes: the stored codes themselves
    body = unpack[unpack.index("^bb0") : unpack.index("linalg.yield")]
    assert "arith.select" not in body and "arith.cmpi" not in body  # the loops say where every field is


def test_iq4_steps_look_the_code_up_in_the_table() -> None:
    text = _text(_lower("iq4_xs"))
    steps = text[text.index("%codes_grid = linalg.generic") : text.index("%codes = tensor.collapse_shape")]
    assert steps.count("arith.select") == 1 and "i64" in steps  # two i64 words hold the 16 values


def test_opaque_types_fail_with_their_name() -> None:
    with pytest.raises(PassFailedException, match="cannot unpack iq2_xxs weights: q35c knows this ggml type's size"):
        _lower("iq2_xxs")


MLIR_CASES = [(2, 8, 512, spec, False) for spec in NEW] + [(3, 8, 256, "q4_k", True), (2, 8, 256, "q2_k", True)]


@pytest.mark.parametrize(
    ("t", "n", "k", "spec", "keep"), MLIR_CASES, ids=[f"{c[3]}-{c[2]}{'-int' if c[4] else ''}" for c in MLIR_CASES]
)
def test_lowering_matches_reference_on_mlir(
    t: int, n: int, k: int, spec: str, keep: bool, mlir_tools: MlirTools
) -> None:
    report = verify_linear(LinearCase(t, n, k, spec, seed=5, keep_int_codes=keep), mlir_tools)
    assert report.ok, "\n".join(report.lines())
    assert report.code_mismatches == 0 and report.codes_checked == n * k


@pytest.mark.parametrize("embedding", [GGML.Q4_K, GGML.IQ4_XS, GGML.Q5_1])
def test_a_gguf_mix_with_a_block_embedding_matches_on_mlir(
    tmp_path: Path, embedding: GGML, mlir_tools: MlirTools
) -> None:
    sys.path.insert(0, str(Path(__file__).parents[1] / "frontend"))
    from test_gguf_reader import write_256

    types = {
        "token_embd.weight": embedding,  # the embedding gathers decoded rows: scales (mins, table) from the blocks
        "output.weight": GGML.Q6_K,
        "blk.0.attn_q.weight": GGML.Q2_K,
        "blk.0.attn_k.weight": GGML.Q3_K,
        "blk.0.attn_v.weight": GGML.Q5_K,
        "blk.0.attn_output.weight": GGML.IQ4_XS,
        "blk.0.ffn_gate.weight": GGML.IQ4_NL,
        "blk.0.ffn_up.weight": GGML.Q4_1,
        "blk.0.ffn_down.weight": GGML.Q5_0,
        "blk.1.attn_q.weight": GGML.Q5_1,
    }
    report = verify_model(ModelCase(write_256(tmp_path / "mix.gguf", types), seq=2), mlir_tools)
    assert report.ok, "\n".join(report.lines())
