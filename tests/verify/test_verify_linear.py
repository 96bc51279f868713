"""`q35c verify` with real MLIR: every scheme's linear layer is lowered, run by mlir-runner and compared with the
numpy reference (codes bit for bit, outputs within the derived tolerance); a corrupted weight must be caught.

Tests that run MLIR take the `mlir_tools` fixture (tests/conftest.py): they skip when the tools are missing,
and fail instead under Q35C_REQUIRE_TOOLS=1.
"""

from __future__ import annotations

import numpy as np
import pytest

from q35c.cli.main import main
from q35c.verify.linear import BitFlip, LinearCase, dense_hex, output_tolerance, parse_memref_prints, verify_linear
from q35c.verify.mlir_tools import MlirTools

# (T, N, K, spec): small shapes, every scheme and container, group sizes that split K into several groups.
CASES = (
    (2, 16, 64, "fp16"),
    (2, 16, 64, "int8"),
    (2, 16, 128, "int8:g=32"),
    (2, 16, 64, "int4:g=32"),
    (2, 32, 128, "int4:g=128"),
    (2, 16, 128, "q3p5"),
    (2, 16, 128, "q3p5:g=32"),
    (2, 32, 64, "q3p5:g=64"),
    (2, 16, 128, "q3p5:g=16:container=byte"),
    (2, 32, 64, "q3p5:container=byte:g=64"),
    (2, 16, 64, "q4_0"),
    (2, 32, 128, "q8_0"),
)
INT_CODE_CASES = (
    (2, 16, 128, "int4:g=32"),
    (2, 16, 128, "q3p5:g=32"),
    (2, 16, 64, "q3p5:g=16:container=byte"),
    (2, 16, 64, "q4_0"),
    (2, 16, 64, "int8:g=32"),
)


def _ids(cases: tuple[tuple[int, int, int, str], ...]) -> list[str]:
    return [f"{spec}-{t}x{n}x{k}" for t, n, k, spec in cases]


def _check(report_ok: bool, lines: list[str]) -> None:
    assert report_ok, "\n".join(lines)


@pytest.mark.parametrize(("t", "n", "k", "spec"), CASES, ids=_ids(CASES))
def test_linear_matches_reference(t: int, n: int, k: int, spec: str, mlir_tools: MlirTools) -> None:
    report = verify_linear(LinearCase(t, n, k, spec, seed=1), mlir_tools)
    _check(report.ok, report.lines())
    assert report.code_mismatches == 0
    assert report.codes_checked == (0 if spec == "fp16" else n * k)
    assert report.max_error_over_bound <= 1.0


@pytest.mark.parametrize(("t", "n", "k", "spec"), INT_CODE_CASES, ids=_ids(INT_CODE_CASES))
def test_linear_on_integer_codes_matches_reference(t: int, n: int, k: int, spec: str, mlir_tools: MlirTools) -> None:
    report = verify_linear(LinearCase(t, n, k, spec, seed=2, keep_int_codes=True), mlir_tools)
    _check(report.ok, report.lines())


@pytest.mark.parametrize("keep_int_codes", [False, True], ids=["dequant", "int-codes"])
@pytest.mark.parametrize("spec", ["q3p5", "q4_0", "int4:g=32"])
def test_f32_activations_meet_the_f32_bound(spec: str, keep_int_codes: bool, mlir_tools: MlirTools) -> None:
    # Without the final float16 rounding the tolerance is the float32 accumulation bound alone.
    report = verify_linear(LinearCase(3, 16, 128, spec, seed=5, keep_int_codes=keep_int_codes, activation="f32"))
    _check(report.ok, report.lines())
    assert report.max_error < 1e-4


@pytest.mark.parametrize(
    ("spec", "fault", "what"),
    [
        ("q3p5:g=64", BitFlip(1, 3, 9), "codes"),  # a bit of a dense word: one pair code changes
        ("int4:g=32", BitFlip(0, 0, 2), "codes"),
        ("q4_0", BitFlip(2, 1, 6), "outputs"),  # the high byte of a block scale: the codes stay, y changes
        ("fp16", BitFlip(0, 5, 14), "outputs"),
    ],
    ids=["q3p5-word", "int4-word", "q4_0-scale", "fp16-weight"],
)
def test_corrupted_storage_is_caught(spec: str, fault: BitFlip, what: str, mlir_tools: MlirTools) -> None:
    report = verify_linear(LinearCase(2, 16, 64, spec), mlir_tools, fault=fault)
    assert not report.ok
    if what == "codes":
        assert report.code_mismatches >= 1
    else:
        assert report.code_mismatches == 0 and report.outputs_over >= 1


def test_cli_verify(mlir_tools: MlirTools, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", "--linear", "2x16x64", "--quant", "q3p5:g=64"]) == 0
    out = capsys.readouterr().out
    assert "codes: bit-exact (1024 codes)" in out and "max error: " in out
    assert main(["verify", "--linear", "2x16x64", "--quant", "q3p5:g=64", "--flip-bit", "0,0,0"]) == 1
    assert "codes: 1 of 1024 differ" in capsys.readouterr().out


def test_cli_verify_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", "--linear", "2x16", "--quant", "q4_0"]) == 2
    assert "TxNxK" in capsys.readouterr().err
    assert main(["verify", "--linear", "2x16x96", "--quant", "q3p5:g=32"]) == 2
    assert "multiple of 64" in capsys.readouterr().err


def test_missing_tools_exit_2(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("q35c.verify.mlir_tools.find_tool", lambda name: None)
    assert main(["verify", "--linear", "2x16x64", "--quant", "q4_0"]) == 2
    err = capsys.readouterr().err
    assert "mlir-opt and mlir-runner not found" in err and "Traceback" not in err


# -- pieces that need no tools ------------------------------------------------------------------------------------


def test_parse_memref_prints() -> None:
    out = (
        "Unranked Memref base@ = 0x55 rank = 2 offset = 0 sizes = [2, 3] strides = [3, 1] data = \n"
        "[[1,   -2,   3], \n [4,   5,   -2147483648]]\n"
        "Unranked Memref base@ = 0x66 rank = 1 offset = 0 sizes = [3] strides = [1] data = \n"
        "[0.333333,  -1.23457e+06,  nan]\n"
    )
    ints, floats = parse_memref_prints(out)
    assert ints.tolist() == [[1, -2, 3], [4, 5, -2147483648]]
    assert floats[:2].tolist() == [0.333333, -1.23457e06] and np.isnan(floats[2])


def test_dense_hex_is_little_endian() -> None:
    assert dense_hex(np.array([[1, 0x01020304]], dtype=np.uint32)) == 'dense<"0x0100000004030201">'
    assert dense_hex(np.array([1.0], dtype=np.float16)) == 'dense<"0x003C">'


def test_tolerance_grows_with_k_and_f16_output() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 256)).astype(np.float32)
    w = rng.standard_normal((4, 256)).astype(np.float32)
    zero = np.zeros_like(w, dtype=np.float64)
    short = output_tolerance(x[:, :64], w[:, :64], zero[:, :64], 1, half=False)
    long = output_tolerance(x, w, zero, 1, half=False)
    assert np.all(long > short)
    y = x.astype(np.float64) @ w.astype(np.float64).T
    half = output_tolerance(x, w, zero, 1, half=True)
    assert np.all(half > long) and np.all(half >= 2.0**-11 * np.abs(y))  # the float16 rounding of y
