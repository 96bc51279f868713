"""Per-target pipelines: every target compiles the tiny model through its named stages; the host's final IR runs on
real MLIR and computes what the untiled lowering computes; `q35c build --target` prints and dumps the IR between
stages, and a failed build leaves no dump directory behind."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, StringAttr

from q35c.cli.main import main
from q35c.driver.compile import IRDirectory, compile_model
from q35c.driver.pipeline import dump_header, make_context
from q35c.frontend import load_model
from q35c.ir.attrs import memory_spaces
from q35c.targets.pipeline import parse_options
from q35c.targets.registry import get_target
from q35c.targets.spec import load_spec, spec_names
from q35c.util.errors import Q35Error
from q35c.verify.linear import arguments_for, foreign_ops, lower_for_host, run_on_host
from q35c.verify.mlir_tools import MlirTools
from q35c.verify.model import model_inputs, model_params

STAGES = ["materialize", "lower-graph", "tile", "unpack", "schedule"]
TARGETS = spec_names()


@pytest.mark.parametrize("target", TARGETS)
def test_every_target_compiles_tiny(target: str) -> None:
    result = compile_model("tiny", target)
    assert [s.name for s in result.stages] == STAGES
    assert all(s.description for s in result.stages)
    assert [r.name for r in result.reports] == ["graph", *STAGES]
    assert not foreign_ops(result.module)
    assert memory_spaces(result.module)[0] == load_spec(target).main_memory.name
    kernels = [op for op in result.module.ops if isinstance(op, func.FuncOp) and "q35.kernel" in op.attributes]
    # tiny's linears: q/o 64x64, k/v 32x64, gate/up 128x64, down 64x128 (q3p5) and lm_head 256x64 (int8).
    assert len(kernels) == 5
    assert result.peak_lines()


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("seq", [64, 512])
def test_every_target_compiles_tiny_prefill(target: str, seq: int) -> None:
    # Prefill tiles hold several tokens; the tile choice must leave room for everything schedule-memory stages.
    result = compile_model("tiny", target, seq=seq)
    level = result.module.attributes["q35.tile_level"].data  # type: ignore[union-attr]
    budget = result.module.attributes["q35.tile_budget_bytes"].value.data  # type: ignore[union-attr]
    peaks = result.module.attributes["q35.peak_bytes"].data  # type: ignore[union-attr]
    if level != result.module.attributes["q35.memory_spaces"].data[0].data:  # type: ignore[union-attr]
        assert peaks[level].value.data <= budget


def test_groq_keeps_integer_codes() -> None:
    unpack = next(s for s in get_target("groq-lpu").pipeline() if s.name == "unpack")
    assert unpack.passes[0].keep_int_codes  # type: ignore[attr-defined]
    gpu = next(s for s in get_target("h100-sxm").pipeline({"keep-int-codes": "true"}) if s.name == "unpack")
    assert gpu.passes[0].keep_int_codes  # type: ignore[attr-defined]


def test_options_are_checked() -> None:
    assert parse_options({"tile-n": "16", "keep-int-codes": "false"}) == {"tile-n": 16, "keep-int-codes": False}
    with pytest.raises(ValueError, match=r"unknown pipeline option 'tile-m'.*valid options: tile-t"):
        parse_options({"tile-m": 4})
    with pytest.raises(ValueError, match="takes an integer"):
        parse_options({"tile-n": "many"})


def test_unknown_target_lists_the_valid_ones() -> None:
    with pytest.raises(Q35Error, match=r"unknown target 'tpu'.*h100-sxm"):
        compile_model("tiny", "tpu")


def run_tiny(module: ModuleOp, tools: MlirTools) -> np.ndarray:
    graph = load_model("tiny").module
    rng = np.random.default_rng(0)
    params, inputs = model_params(graph, rng), model_inputs(graph, rng)
    entry = next(op for op in module.ops if isinstance(op, func.FuncOp) and op.sym_name.data == "main")
    entry.sym_name = StringAttr("forward")
    return run_on_host(module, "forward", arguments_for(entry, inputs, params), tools)[0].values


@pytest.mark.parametrize(
    ("options", "exact"), [({}, True), ({"tile-n": 16}, True), ({"tile-n": 16, "tile-k": 64}, False)]
)
def test_host_pipeline_runs_on_mlir_and_matches_the_untiled_lowering(
    options: dict[str, int], exact: bool, mlir_tools: MlirTools
) -> None:
    untiled = run_tiny(lower_for_host(load_model("tiny").module), mlir_tools)
    tiled = run_tiny(compile_model("tiny", "host", options).module, mlir_tools)
    if exact:
        np.testing.assert_array_equal(tiled, untiled)
    else:  # partial sums over K tiles round differently, by float16 ulps of the logits
        np.testing.assert_allclose(tiled, untiled, rtol=0, atol=0.02 * float(np.abs(untiled).max()))


# --------------------------------------------------------------------------------------------------------------
# The command line
# --------------------------------------------------------------------------------------------------------------


def build(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["build", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_build_prints_one_line_per_stage(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = build(capsys, "tiny", "--target", "h100-sxm")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].startswith("tiny for h100-sxm (gpu), the decode step: batch 1 x 1 token after")
    assert [line.split()[:2] for line in lines[1:7]] == [[f"{i:02d}", s] for i, s in enumerate(["graph", *STAGES])]
    assert any(line.startswith("peak smem:") and "budget 228,000 B" in line for line in lines)


def test_print_ir_after_all_and_after_one_stage(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = build(capsys, "tiny", "--target", "host", "--print-ir-after-all")
    assert code == 0
    headers = [line for line in err.splitlines() if line.startswith("// -----// IR Dump After")]
    assert headers == [dump_header(s) for s in ["graph", *STAGES]] * 2  # the decode step, then the prefill
    assert "// q35c: the decode step: batch 1" in err and "// q35c: the prefill: batch 1" in err
    code, _, err = build(capsys, "tiny", "--target", "host", "--print-ir-after=tile")
    assert code == 0 and err.count("// -----// IR Dump After") == 2 and dump_header("tile") in err
    assert "q35.linear" in err and "func.func private @linear." in err  # kernels, before unpack-bits


def test_unknown_stage_and_target_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = build(capsys, "tiny", "--target", "host", "--print-ir-after=tiling")
    assert code == 2
    assert "unknown stage 'tiling' (stages: graph, materialize, lower-graph, tile, unpack, schedule)" in err
    code, _, err = build(capsys, "tiny", "--target", "b200")
    assert code == 2 and "unknown target 'b200'" in err and "groq-lpu" in err
    code, _, err = build(capsys, "tiny", "--dump-ir", "x")
    assert code == 2 and "need --target" in err


def test_dump_ir_writes_one_parseable_file_per_stage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ir"
    code, _, _ = build(capsys, "tiny", "--target", "groq-lpu", "--dump-ir", str(out))
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["decode", "prefill"]
    from xdsl.parser import Parser

    for phase in ("decode", "prefill"):
        names = sorted(p.name for p in (out / phase).iterdir())
        assert names == [f"{i:02d}-{s}.mlir" for i, s in enumerate(["graph", *STAGES])]
        for path in (out / phase).iterdir():
            Parser(make_context(), path.read_text()).parse_module().verify()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ir"]


def test_failed_build_leaves_no_dump(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ir"
    code, _, err = build(capsys, "tiny", "--target", "m2-max", "--option", "budget-bytes=256", "--dump-ir", str(out))
    assert code == 2
    assert "stage 'tile' failed for m2-max" in err and "fits 256 bytes" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_failed_build_keeps_an_existing_dump(tmp_path: Path) -> None:
    out = tmp_path / "ir"
    out.mkdir()
    (out / "old.mlir").write_text("old")
    with pytest.raises(Q35Error, match="stage 'tile' failed for m2-max"), IRDirectory(out) as dumps:
        compile_model("tiny", "m2-max", {"budget-bytes": 256}, dumps.dumper)
    assert [p.name for p in tmp_path.iterdir()] == ["ir"] and (out / "old.mlir").read_text() == "old"
    with IRDirectory(out) as dumps:
        compile_model("tiny", "m2-max", None, dumps.dumper)
    assert "old.mlir" not in [p.name for p in out.iterdir()] and len(list(out.iterdir())) == 6
