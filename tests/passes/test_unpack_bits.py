"""materialize-weights and unpack-bits in xDSL: what they produce, what they refuse, and `q35c opt` around them.

Running the lowered IR with real MLIR and comparing numbers is tests/test_verify.py's job.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from xdsl.dialects.builtin import ModuleOp
from xdsl.parser import Parser
from xdsl.printer import Printer
from xdsl.utils.exceptions import PassFailedException, VerifyException

from q35c import formats
from q35c.cli.main import main
from q35c.dialects.q35 import PackedType
from q35c.dialects.q35_storage import AssembleOp, UnpackOp, storage_tensors
from q35c.driver.pipeline import make_context
from q35c.passes.materialize_weights import MaterializeWeightsPass
from q35c.passes.unpack_bits import UnpackBitsPass
from q35c.verify.linear import LinearCase, foreign_ops, linear_module, verify_linear
from q35c.verify.mlir_tools import MlirTools

SPECS = (
    "fp16",
    "int8",
    "int8:g=32",
    "int4:g=32",
    "q3p5:g=64",
    "q3p5:g=32:container=byte",
    "q4_0",
    "q8_0",
)


def _text(module: ModuleOp) -> str:
    out = io.StringIO()
    Printer(stream=out).print_op(module)
    return out.getvalue()


def _parse(text: str) -> ModuleOp:
    return Parser(make_context(), text).parse_module()


def _lower(spec: str, keep_int_codes: bool = False) -> ModuleOp:
    module = linear_module(2, 16, 128, spec)
    ctx = make_context()
    MaterializeWeightsPass().apply(ctx, module)
    UnpackBitsPass(keep_int_codes=keep_int_codes).apply(ctx, module)
    module.verify()
    return module


@pytest.mark.parametrize("keep_int_codes", [False, True], ids=["dequant", "int-codes"])
@pytest.mark.parametrize("spec", SPECS)
def test_lowered_linear_is_upstream_and_verifies(spec: str, keep_int_codes: bool) -> None:
    module = _lower(spec, keep_int_codes)
    assert foreign_ops(module) == []
    text = _text(module)
    assert "q35.linear" not in text and "q35_storage" not in text
    assert "linalg.generic" in text
    reparsed = _parse(text)  # the printed IR reads back and verifies
    reparsed.verify()
    assert _text(reparsed) == text


@pytest.mark.parametrize("spec", [s for s in SPECS if s != "fp16"])
def test_keep_int_codes_scales_per_group(spec: str) -> None:
    text = _text(_lower(spec, keep_int_codes=True))
    assert "tensor.expand_shape" in text  # K split into groups
    assert "%p = linalg.generic" in text  # the per-group sums over integer codes
    asymmetric = spec.startswith(("int4", "q3p5"))
    assert ("%xsum = linalg.generic" in text) == asymmetric  # offsets need the activation sums


# The codes generic of each scheme iterates over its storage's units: (loops, output grid, collapsed dims).
GRIDS = {
    "int4:g=32": ("tensor<16x16x8xi8>", 3),  # (n, word, i < 8)
    "q3p5:g=64": ("tensor<16x64x2xi8>", 3),  # (n, pair, slot)
    "q3p5:g=32:container=byte": ("tensor<16x64x2xi8>", 3),
    "q4_0": ("tensor<16x4x2x16xi8>", 4),  # (n, block, byte i < 16, half) writing [n, block, half, i]
    "q8_0": ("tensor<16x4x32xi8>", 3),  # (n, block, i < 32)
}


@pytest.mark.parametrize("spec", GRIDS)
def test_codes_iterate_over_storage_units(spec: str) -> None:
    grid, loops = GRIDS[spec]
    text = _text(_lower(spec))
    # One codes generic for the linear, one for q35_storage.unpack; for q3p5 the linear's multiplies each code
    # by its slot's step (its "steps"), elsewhere every step is 1 and both are the codes.
    lines = [li for li in text.splitlines() if 'q35.kernel = "unpack"' in li]
    assert len(lines) == 2
    for line in lines:
        assert "outs(%codes_init" in line and f" : {grid}) attrs" in line and line.count('"parallel"') == loops
    grids = ("%steps_grid", "%codes_grid") if spec.startswith("q3p5") else ("%codes_grid", "%codes_grid_1")
    for name, line in zip(grids, lines, strict=True):
        assert line.lstrip().startswith(f"{name} = linalg.generic")
        assert f" = tensor.collapse_shape {name} " in text
    assert "arith.select" not in text and "arith.cmpi" not in text  # no per-weight choice: the loops say which


def test_q3p5_joins_each_pair_once_and_doubles_the_odd_slot_in_the_shift() -> None:
    text = _text(_lower("q3p5:g=64"))
    steps = text[text.index("%steps_grid = linalg.generic") : text.index("%steps = tensor.collapse_shape")]
    assert steps.count("%pair = arith.ori") == 1 and "arith.extui" not in steps  # no 64-bit window
    assert "%right" not in steps  # steps: >>s 28 in both slots
    codes = text[text.index("%codes_grid = linalg.generic") : text.index("%codes = tensor.collapse_shape")]
    assert "%right = arith.addi" in codes  # codes: >>s 28 + slot


@pytest.mark.parametrize(("spec", "fma"), [("int4:g=32", True), ("q3p5:g=64", True), ("int8", False), ("q4_0", False)])
def test_dequantization_is_one_conversion_and_one_multiply_add_per_weight(spec: str, fma: bool) -> None:
    text = _text(_lower(spec))
    body = text[text.index("%w_grid = linalg.generic") : text.index("%w = tensor.collapse_shape")]
    assert body.count("arith.sitofp") == 1
    assert body.count("math.fma") == (1 if fma else 0) and body.count("arith.mulf") == (0 if fma else 1)
    assert "arith.addf" not in body


# More shapes on real MLIR than tests/test_verify.py runs: several q3p5 chunks and q4_0/q8_0 blocks per row
# (every pair position, straddling pairs included), and integer codes for every scheme.
MLIR_CASES = (
    (1, 8, 256, "q3p5:g=64", False),
    (3, 8, 192, "q3p5:g=32", True),
    (2, 8, 256, "q3p5:g=128:container=byte", True),
    (3, 8, 256, "q4_0", False),
    (2, 8, 256, "q8_0", True),
    (1, 8, 256, "int4:g=64", False),
    (2, 8, 256, "int4:g=128", True),
    (2, 8, 128, "int8", True),
)


@pytest.mark.parametrize(
    ("t", "n", "k", "spec", "keep"), MLIR_CASES, ids=[f"{c[3]}-{c[2]}{'-int' if c[4] else ''}" for c in MLIR_CASES]
)
def test_lowering_matches_reference_on_mlir(
    t: int, n: int, k: int, spec: str, keep: bool, mlir_tools: MlirTools
) -> None:
    report = verify_linear(LinearCase(t, n, k, spec, seed=7, keep_int_codes=keep), mlir_tools)
    assert report.ok, "\n".join(report.lines())
    assert report.code_mismatches == 0 and report.codes_checked == n * k


def test_storage_tensors_match_the_reference_arrays() -> None:
    rng = np.random.default_rng(0)
    w = rng.standard_normal((16, 128)).astype(np.float32)
    for spec in SPECS:
        qt = formats.get(spec).quantize(w)
        tensors = storage_tensors(PackedType((16, 128), spec))
        arrays = {"codes": qt.packed, "scale": qt.scale, "offset": qt.offset}
        for tensor in tensors:
            array = arrays[tensor.role]
            assert array is not None
            assert tensor.type.get_shape() == array.shape, (spec, tensor.role)
            assert tensor.type.element_type.bitwidth == array.dtype.itemsize * 8  # type: ignore[attr-defined]
        expected_roles = [r for r in ("codes", "scale", "offset") if arrays[r] is not None]
        if spec in ("q4_0", "q8_0"):
            expected_roles = ["codes"]  # their scales live inside the blocks
        assert [t.role for t in tensors] == expected_roles


def test_materialize_weights_tags_arguments() -> None:
    module = linear_module(2, 16, 64, "int4:g=32")
    MaterializeWeightsPass().apply(make_context(), module)
    text = _text(module)
    assert "q35.weight" not in text
    assert '%linear.weight.codes: tensor<16x8xi32> {q35.param = "linear.weight", q35.storage = "codes"}' in text
    assert '%linear.weight.offset: tensor<16x2xf16> {q35.param = "linear.weight", q35.storage = "offset"}' in text
    assert "q35_storage.assemble %linear.weight.codes, %linear.weight.scale, %linear.weight.offset" in text


def test_unpack_bits_leaves_weights_of_unknown_storage() -> None:
    text = """
    func.func @f(%x: tensor<1x64xf16>, %w: !q35.packed<4x64, #q35.scheme<q4_0>>) -> tensor<1x4xf16> {
      %y = q35.linear %x, %w : (tensor<1x64xf16>, !q35.packed<4x64, #q35.scheme<q4_0>>) -> tensor<1x4xf16>
      func.return %y : tensor<1x4xf16>
    }
    """
    module = _parse(text)
    UnpackBitsPass().apply(make_context(), module)
    assert "q35.linear" in _text(module)


def test_weight_in_a_called_function_is_refused() -> None:
    text = """
    func.func @callee(%x: tensor<1x64xf16>) -> tensor<1x4xf16> {
      %w = q35.weight "w" : !q35.packed<4x64, #q35.scheme<q4_0>>
      %y = q35.linear %x, %w : (tensor<1x64xf16>, !q35.packed<4x64, #q35.scheme<q4_0>>) -> tensor<1x4xf16>
      func.return %y : tensor<1x4xf16>
    }
    func.func @caller(%x: tensor<1x64xf16>) -> tensor<1x4xf16> {
      %y = func.call @callee(%x) : (tensor<1x64xf16>) -> tensor<1x4xf16>
      func.return %y : tensor<1x4xf16>
    }
    """
    with pytest.raises(PassFailedException, match="weight 'w' is declared in @callee, which is called"):
        MaterializeWeightsPass().apply(make_context(), _parse(text))


def test_assemble_verifies_storage_types() -> None:
    good = """
    func.func @f(%c: tensor<4x8xi32>, %s: tensor<4x2xf16>, %o: tensor<4x2xf16>) {
      %w = q35_storage.assemble %c, %s, %o : (tensor<4x8xi32>, tensor<4x2xf16>, tensor<4x2xf16>)
          -> !q35.packed<4x64, #q35.scheme<int4, g = 32>>
      func.return
    }
    """
    _parse(good).verify()
    with pytest.raises(VerifyException, match="int4:g=32 storage is 3 tensor"):
        _parse(good.replace(", %o : (", " : (").replace(", tensor<4x2xf16>)\n", ")\n")).verify()
    with pytest.raises(VerifyException, match=r"codes of .* must be tensor<4x8xi32>"):
        _parse(good.replace("tensor<4x8xi32>", "tensor<4x8xi8>")).verify()


def test_unpack_needs_codes() -> None:
    text = """
    func.func @f(%c: tensor<4x64xf16>) -> tensor<4x64xi8> {
      %w = q35_storage.assemble %c : (tensor<4x64xf16>) -> !q35.packed<4x64, #q35.scheme<fp16>>
      %k = q35_storage.unpack %w : !q35.packed<4x64, #q35.scheme<fp16>> -> tensor<4x64xi8>
      func.return %k : tensor<4x64xi8>
    }
    """
    with pytest.raises(VerifyException, match="unpack needs a quantized 2-D weight"):
        _parse(text).verify()
    assert UnpackOp.name == "q35_storage.unpack" and AssembleOp.name == "q35_storage.assemble"


# -- q35c opt ---------------------------------------------------------------------------------------------------


def test_opt_runs_a_pipeline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "layer.mlir"
    src.write_text(_text(linear_module(2, 16, 64, "q3p5:g=64")))
    out = tmp_path / "out.mlir"
    assert main(["opt", str(src), "-p", "materialize-weights,unpack-bits{keep-int-codes=true}", "-o", str(out)]) == 0
    lowered = out.read_text()
    assert "q35.linear" not in lowered and "%xsum = linalg.generic" in lowered
    assert main(["opt", str(src)]) == 0  # no passes: the IR round-trips
    assert "q35.linear" in capsys.readouterr().out


def test_opt_reads_stdin() -> None:
    text = _text(linear_module(1, 8, 64, "q4_0"))
    proc = subprocess.run(
        [sys.executable, "-m", "q35c.cli.main", "opt", "-", "-p", "materialize-weights,unpack-bits"],
        input=text,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "linalg.generic" in proc.stdout and "q35.linear" not in proc.stdout


@pytest.mark.parametrize(
    ("pipeline", "message"),
    [
        ("no-such-pass", "unknown pass 'no-such-pass' (valid passes: "),  # the list grows with the passes
        ("unpack-bits{colour=red}", "bad options for pass 'unpack-bits'"),
        ("unpack-bits{", "invalid pass pipeline"),
    ],
)
def test_opt_rejects_bad_pipelines(
    pipeline: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "layer.mlir"
    src.write_text(_text(linear_module(1, 8, 64, "q4_0")))
    assert main(["opt", str(src), "-p", pipeline]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_opt_reports_bad_ir_with_location(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "bad.mlir"
    src.write_text("func.func @f() {\n  %x = q35.nonsense\n}\n")
    assert main(["opt", str(src)]) == 2
    err = capsys.readouterr().err
    assert re.match(rf"q35c: error: {re.escape(str(src))}:\d+:\d+: .*q35.nonsense is not registered", err)
    assert "^" in err and "Traceback" not in err


def test_xdsl_opt_sees_the_passes() -> None:
    xdsl_opt = shutil.which("xdsl-opt", path=str(Path(sys.executable).parent))
    if xdsl_opt is None:
        pytest.skip("xdsl-opt is not installed next to this Python")
    text = _text(linear_module(1, 8, 64, "int4:g=32"))
    proc = subprocess.run(
        [xdsl_opt, "-p", "materialize-weights,unpack-bits"], input=text, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert "linalg.generic" in proc.stdout
