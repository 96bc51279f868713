"""`q35c verify MODEL --target host`: the tiny model compiled for the host, run by real MLIR and compared with
the numpy reference, in its own schemes and in every scheme that fits its dimensions (K = 64 and 128), with
one and several new tokens, with and without a KV cache; corrupted weights and a wrong reference must fail.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from q35c.cli.main import main
from q35c.driver.pipeline import module_text
from q35c.frontend import load_model
from q35c.verify import reference
from q35c.verify.linear import BitFlip
from q35c.verify.mlir_tools import MlirTools
from q35c.verify.model import ModelCase, WeightFlip, model_inputs, model_params, verify_model

# (quant, T, C): tiny's own schemes at every (T, C), then every scheme whose groups divide K = 64 and 128
# (q3p5 dense also needs K % 64 == 0), each at one (T, C).
CASES = [
    (None, 1, 0),
    (None, 3, 0),
    (None, 1, 5),
    (None, 3, 5),
    ("fp16", 3, 5),
    ("int8", 1, 5),
    ("int8:g=32", 3, 0),
    ("int4:g=32", 3, 5),
    ("int4:g=64", 1, 0),
    ("q3p5:g=32", 1, 5),
    ("q3p5:g=64", 3, 5),
    ("q3p5:g=64:container=byte", 3, 0),
    ("q3p5:g=16:container=byte", 1, 0),
    ("q4_0", 3, 5),
    ("q8_0", 1, 5),
]


@pytest.mark.parametrize(("quant", "seq", "context"), CASES, ids=[f"{q or 'own'}-T{t}-C{c}" for q, t, c in CASES])
def test_tiny_matches_reference(quant: str | None, seq: int, context: int, mlir_tools: MlirTools) -> None:
    report = verify_model(ModelCase("tiny", quant, seed=3, seq=seq, context=context), mlir_tools)
    assert report.ok, "\n".join(report.lines())
    assert report.shape == (seq, 256) and report.context == context
    assert report.argmax == report.argmax_ref
    # The tolerance is an upper bound that the measured sensitivity to rounding respects.
    assert report.sensitivity < report.tolerance
    assert report.max_error <= report.sensitivity


def test_cli_verify_tiny(mlir_tools: MlirTools, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", "tiny", "--target", "host", "--seq", "3", "--context", "5"]) == 0
    out = capsys.readouterr().out
    assert "logits [3x256]: max error" in out and "tolerance" in out and out.rstrip().endswith("match")


def test_cli_verify_graph_ir_file(tmp_path: Path, mlir_tools: MlirTools, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "tiny.mlir"
    path.write_text(module_text(load_model("tiny", seq=2, context=3).module))
    assert main(["verify", str(path), "--target", "host", "--seed", "1"]) == 0
    assert "seq 2, context 3" in capsys.readouterr().out


# -- faults must be caught ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        WeightFlip("norm", BitFlip(0, 3, 15)),  # the sign of one final-norm gain
        WeightFlip("lm_head", BitFlip(7, 10, 7)),  # the sign bit of an int8 code of the output projection
    ],
    ids=["norm-sign", "lm_head-code"],
)
def test_corrupted_weight_is_caught(fault: WeightFlip, mlir_tools: MlirTools) -> None:
    report = verify_model(ModelCase("tiny", seq=3), mlir_tools, fault=fault)
    assert not report.ok
    assert report.max_error > report.tolerance


def test_cli_flip_weight_exits_1(mlir_tools: MlirTools, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", "tiny", "--target", "host", "--flip-weight", "norm,0,3,15"]) == 1
    assert "MISMATCH" in capsys.readouterr().out


def test_a_reference_with_interleaved_rope_is_caught(mlir_tools: MlirTools, monkeypatch: pytest.MonkeyPatch) -> None:
    # GPT-J's convention rotates adjacent pairs (x[2i], x[2i+1]) instead of the two halves of each head.
    def interleaved(x: np.ndarray, positions: np.ndarray, head_dim: int, theta: float) -> np.ndarray:
        t, d = x.shape
        pairs = x.astype(np.float32).reshape(t, d // head_dim, head_dim // 2, 2)
        angle = positions.astype(np.float32)[:, None, None] * reference.rope_inv_freq(head_dim, theta)[None, None, :]
        cos, sin = np.cos(angle), np.sin(angle)
        a, b = pairs[..., 0], pairs[..., 1]
        return np.stack([a * cos - b * sin, b * cos + a * sin], axis=-1).reshape(t, d)

    monkeypatch.setattr(reference, "rope", interleaved)
    report = verify_model(ModelCase("tiny", seq=3, context=5), mlir_tools)
    assert not report.ok


# -- bad input ------------------------------------------------------------------------------------------------------


def test_scheme_that_does_not_fit_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", "tiny", "--target", "host", "--quant", "int4"]) == 2  # g=128 does not divide K=64
    assert "not divisible by the group size" in capsys.readouterr().err


def test_model_or_linear_but_not_both(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify"]) == 2
    assert main(["verify", "tiny", "--linear", "2x16x64", "--quant", "q4_0"]) == 2
    assert "either a model" in capsys.readouterr().err


def test_quant_does_not_apply_to_graph_ir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "g.mlir"
    path.write_text(module_text(load_model("tiny").module))
    assert main(["verify", str(path), "--quant", "q4_0"]) == 2
    assert "--quant applies to model files" in capsys.readouterr().err


# -- data (no tools) ------------------------------------------------------------------------------------------------


def test_data_is_deterministic_and_well_formed() -> None:
    module = load_model("tiny", seq=3, context=5).module
    a = model_inputs(module, np.random.default_rng(0))
    b = model_inputs(module, np.random.default_rng(0))
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    ids, pos, *caches = a
    assert ids.dtype == np.int32 and ids.shape == (3,) and ((ids >= 0) & (ids < 256)).all()
    assert pos.tolist() == [5, 6, 7]
    assert [c.shape for c in caches] == [(5, 32)] * 4 and all(c.dtype == np.float16 for c in caches)
    params = model_params(module, np.random.default_rng(0))
    assert str(params["decoder.0.q_proj"].scheme) == "q3p5:g=32:container=dense"
    assert str(params["lm_head"].scheme) == "int8" and params["norm"].shape == (1, 64)


def test_rounding_depth_of_tiny() -> None:
    assert reference.rounding_depth(load_model("tiny").module) == 27


@pytest.mark.parametrize(("batch", "seq", "context"), [(2, 2, 3), (2, 1, 5), (3, 2, 0)])
def test_batched_tiny_matches_reference(batch: int, seq: int, context: int, mlir_tools: MlirTools) -> None:
    """B sequences in one module (B*T rows, caches of B*C rows) lowered for the host and run by real MLIR."""
    report = verify_model(ModelCase("tiny", seed=5, seq=seq, context=context, batch=batch), mlir_tools)
    assert report.ok, "\n".join(report.lines())
    assert report.shape == (batch * seq, 256) and report.context == context


def test_batched_reference_keeps_sequences_apart() -> None:
    """Each sequence of a batch gives the logits it gives alone: nothing of one attends to another."""
    rng = np.random.default_rng(0)
    batched = load_model("tiny", seq=2, context=3, batch=2).module
    single = load_model("tiny", seq=2, context=3).module
    params = model_params(batched, rng)
    inputs = model_inputs(batched, rng)
    logits = reference.evaluate(batched, inputs, params, "main")[0]
    ids, pos, *caches = inputs
    for b in range(2):
        alone = [ids[2 * b : 2 * b + 2], pos[2 * b : 2 * b + 2], *(c[3 * b : 3 * b + 3] for c in caches)]
        assert (pos[2 * b : 2 * b + 2] == [3, 4]).all()
        np.testing.assert_array_equal(reference.evaluate(single, alone, params, "main")[0], logits[2 * b : 2 * b + 2])


def test_cli_verify_batch(mlir_tools: MlirTools, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", "tiny", "--target", "host", "--batch", "2", "--seq", "1", "--context", "3"]) == 0
    out = capsys.readouterr().out
    assert "batch 2, seq 1, context 3" in out and "logits [2x256]" in out and out.rstrip().endswith("match")
