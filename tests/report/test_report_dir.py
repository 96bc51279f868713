"""`q35c build ... -o DIR`: what the report directory holds, that it is deterministic, and that a failed build
leaves nothing behind."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from q35c.cli.main import main
from q35c.report.build import ir_module
from q35c.util.errors import Q35Error

TARGETS = "h100-sxm,groq-lpu,m2-max"
SMALL = ["--prompt", "16", "--gen", "8"]
ARGS = ["build", "tiny", "--quant", "q3p5:g=32", "--target", TARGETS, *SMALL]
JSON_KEYS = {
    "target", "devices", "decode_tok_s", "ms_per_token", "prefill_tok_s", "ttft_ms", "joules_per_token",
    "avg_power_w", "weight_bytes", "kv_bytes", "bottleneck", "roofline_fraction",
}  # fmt: skip
PLOTS = ("throughput.png", "energy.png", "roofline.png", "breakdown.png")


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("reports") / "tiny-q3p5"
    assert main([*ARGS, "-o", str(out)]) == 0
    return out


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def test_the_directory_holds_the_reports_plots_and_ir(report_dir: Path) -> None:
    names = {p.name for p in report_dir.iterdir()}
    assert names == {"report.json", "report.md", "report.csv", "ir", *PLOTS}
    for plot in PLOTS:
        assert (report_dir / plot).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert leftovers(report_dir.parent) == []


def test_report_json_extends_the_format_json_schema(report_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = json.loads((report_dir / "report.json").read_text())
    assert main([*ARGS, "--format", "json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert data["model"] == "tiny" and data["scheme"] == "q3p5:g=32"
    assert (data["batch"], data["prompt"], data["gen"]) == (1, 16, 8)
    assert [t["target"] for t in data["targets"]] == TARGETS.split(",")
    for entry, plain in zip(data["targets"], printed["targets"], strict=True):
        assert set(entry) >= JSON_KEYS
        for key, value in plain.items():
            assert entry[key] == value, key  # everything --format json prints, unchanged
        assert set(entry["breakdown"]) == {"decode", "prefill"}
        assert entry["sources"] and all(s["source"] for s in entry["sources"])
        assert entry["ir_files"][0] == f"ir/{entry['target']}/decode/00-graph.mlir"
        assert f"ir/{entry['target']}/prefill/05-schedule.mlir" in entry["ir_files"]
    assert data["command"].startswith("q35c build tiny --quant q3p5:g=32 --target h100-sxm,groq-lpu,m2-max")


def test_report_csv_has_a_row_per_target_with_the_json_keys(report_dir: Path) -> None:
    rows = list(csv.DictReader((report_dir / "report.csv").open()))
    data = json.loads((report_dir / "report.json").read_text())
    assert [r["target"] for r in rows] == TARGETS.split(",")
    assert set(rows[0]) >= JSON_KEYS | {"model", "scheme", "batch", "prompt", "gen"}
    for row, entry in zip(rows, data["targets"], strict=True):
        assert float(row["decode_tok_s"]) == entry["decode_tok_s"]
        assert int(row["devices"]) == entry["devices"] and row["bottleneck"] == entry["bottleneck"]


def test_the_graph_and_final_ir_of_every_target(report_dir: Path) -> None:
    for target in TARGETS.split(","):
        assert sorted(p.name for p in (report_dir / "ir" / target).iterdir()) == ["decode", "prefill"]
        for phase in ("decode", "prefill"):
            files = sorted(p.name for p in (report_dir / "ir" / target / phase).iterdir())
            assert files == ["00-graph.mlir", "05-schedule.mlir"]
        graph = (report_dir / "ir" / target / "decode" / "00-graph.mlir").read_text()
        assert "q35.linear" in graph and "tensor<1x64xf16>" in graph  # the decode step: T = 1
        assert "tensor<20x32xf16>" in graph  # C = 16 + 8 // 2 cached tokens
        prefill = (report_dir / "ir" / target / "prefill" / "00-graph.mlir").read_text()
        assert "tensor<16x64xf16>" in prefill  # the prefill: T = 16
    # the final IR differs per target (each target's tile sizes and memory levels)
    final = {(report_dir / "ir" / t / "decode" / "05-schedule.mlir").read_text() for t in TARGETS.split(",")}
    assert len(final) == 3


def test_ir_stages_all_writes_every_stage_and_a_list_the_named_ones(tmp_path: Path) -> None:
    every, some = tmp_path / "every", tmp_path / "some"
    assert main([*ARGS, "-o", str(every), "--ir-stages", "all"]) == 0
    assert main([*ARGS, "-o", str(some), "--ir-stages", "tile,lower-graph"]) == 0
    for target in TARGETS.split(","):
        for phase in ("decode", "prefill"):
            files = sorted(p.name for p in (every / "ir" / target / phase).iterdir())
            assert files == [
                "00-graph.mlir", "01-materialize.mlir", "02-lower-graph.mlir", "03-tile.mlir", "04-unpack.mlir",
                "05-schedule.mlir",
            ]  # fmt: skip
            named = sorted(p.name for p in (some / "ir" / target / phase).iterdir())
            assert named == ["02-lower-graph.mlir", "03-tile.mlir", "05-schedule.mlir"]
    # a shared stage is identical for every target; the tiled ones differ (each target's tile sizes)
    lowered = {(every / "ir" / t / "decode" / "02-lower-graph.mlir").read_text() for t in TARGETS.split(",")}
    assert len(lowered) == 1
    data = json.loads((some / "report.json").read_text())
    assert data["targets"][0]["ir_files"][0].endswith("decode/02-lower-graph.mlir")
    assert "--ir-stages all" in (some / "report.md").read_text()


def test_ir_stages_refuses_an_unknown_stage_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bad"
    assert main([*ARGS, "-o", str(out), "--ir-stages", "tiles"]) == 2
    err = capsys.readouterr().err
    assert "--ir-stages: no stage 'tiles'; did you mean 'tile'?" in err and not out.exists()
    assert main(["build", "tiny", "--quant", "q3p5:g=32", "--ir-stages", "all"]) == 2
    assert "needs --target T and -o DIR" in capsys.readouterr().err


def test_report_md_has_every_section(report_dir: Path) -> None:
    text = (report_dir / "report.md").read_text()
    for heading in ("## Comparison", "## Where the time goes", "## Roofline", "## Assumptions",
                    "### What is uncertain", "## Hardware figures and their sources", "## IR", "## Files"):  # fmt: skip
        assert heading in text, heading
    for plot in PLOTS:
        assert f"]({plot})" in text
    assert "| target | devices | decode tok/s |" in text
    assert "attention projections" in text and "MLP projections" in text and "lm_head" in text
    assert "`memory.hbm.bandwidth_bytes_per_s`" in text and "`memory.sram.bandwidth_bytes_per_s`" in text
    assert "c7, c8, c9, c10, c11" in text  # the GPU family's calibration rows
    assert "T = 1 token after C = 20 cached tokens" in text  # prompt 16 + (8 - 1) / 2 = 19.5, halves up
    assert "ir/<target>/<phase>/NN-<stage>.mlir" in text


def test_the_report_has_no_absolute_paths_or_dates(report_dir: Path) -> None:
    for name in ("report.json", "report.md", "report.csv"):
        text = (report_dir / name).read_text()
        assert str(report_dir) not in text and str(report_dir.parent) not in text
        assert os.getcwd() not in text


def test_two_identical_builds_are_byte_identical(report_dir: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    env = {**os.environ, "PYTHONHASHSEED": "1"}
    done = subprocess.run([sys.executable, "-m", "q35c.cli.main", *ARGS, "-o", str(again)], env=env,
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # no progress line on a pipe
    for name in ("report.json", "report.md", "report.csv"):
        assert (again / name).read_bytes() == (report_dir / name).read_bytes(), name
    for plot in PLOTS:
        assert (again / plot).read_bytes() == (report_dir / plot).read_bytes(), plot
    for path in (report_dir / "ir").rglob("*.mlir"):
        assert (again / path.relative_to(report_dir)).read_bytes() == path.read_bytes()


def test_a_model_that_cannot_fit_leaves_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sub" / "report"
    argv = ["build", "llama-2-7b", "--target", "groq-lpu", "--devices", "2", "--prompt", "0", "--gen", "1"]
    assert main([*argv, "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "needs at least" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_a_failure_after_costing_leaves_an_earlier_report_untouched(
    report_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report"
    out.mkdir()
    (out / "report.json").write_text("{}")
    (out / "old.txt").write_text("kept")

    def fail(*args: object, **kwargs: object) -> None:
        raise Q35Error("stage 'tile' failed for h100-sxm: no tile fits")

    monkeypatch.setattr("q35c.report.directory.dump_stages", fail)
    assert main([*ARGS, "-o", str(out)]) == 2
    assert "no tile fits" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["old.txt", "report.json"]
    assert leftovers(tmp_path) == []


def test_an_earlier_report_is_replaced_whole(report_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    out.mkdir()
    (out / "report.json").write_text("{}")
    (out / "stale.png").write_text("old")
    assert main([*ARGS, "-o", str(out)]) == 0
    assert not (out / "stale.png").exists()
    assert (out / "report.json").read_bytes() == (report_dir / "report.json").read_bytes()
    assert leftovers(tmp_path) == []


def test_a_directory_that_is_not_a_report_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "precious"
    out.mkdir()
    (out / "thesis.tex").write_text("do not delete")
    assert main([*ARGS, "-o", str(out)]) == 2
    assert "not a q35c report directory" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["thesis.tex"]


def test_ir_flags_do_not_combine_with_a_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*ARGS, "--print-ir-after-all", "-o", str(tmp_path / "r")]) == 2
    assert "do not combine" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_the_ir_module_is_the_decode_step_or_else_the_prefill() -> None:
    from q35c.predict.predictor import Report, Scenario

    assert ir_module(Report("m", None, Scenario(1, 512, 128))).phases == (("decode", 1, 576, 1), ("prefill", 512, 0, 1))
    assert ir_module(Report("m", None, Scenario(8, 512, 1))).phases == (("decode", 1, 512, 8), ("prefill", 512, 0, 8))
    assert ir_module(Report("m", None, Scenario(1, 64, 0))).phases == (("prefill", 64, 0, 1),)


def test_the_dumped_ir_parses_and_verifies(report_dir: Path) -> None:
    from xdsl.parser import Parser

    from q35c.driver.pipeline import make_context

    for target in TARGETS.split(","):
        dumps = sorted((report_dir / "ir" / target).glob("*/*.mlir"))
        assert dumps, f"no IR written for {target}"
        for path in dumps:
            Parser(make_context(), path.read_text(), str(path)).parse_module().verify()


def test_ir_stage_choices() -> None:
    from q35c.report.ir import StageChoice

    known = ["graph", "materialize", "tile", "schedule"]
    assert StageChoice.parse("final", known) == StageChoice() and StageChoice().wants(0, "graph", 4)
    assert not StageChoice().wants(3, "tile", 4) and StageChoice().wants(4, "schedule", 4)
    assert StageChoice.parse("final, tile", known) == StageChoice(named=frozenset({"tile"}))
    assert StageChoice.parse("tile,all", known).every
    with pytest.raises(Q35Error, match="needs final, all, or stage names"):
        StageChoice.parse(" , ", known)


def test_the_help_names_every_stage_a_report_can_hold() -> None:
    """`--ir-stages`' help (written out, so that `q35c build --help` imports no target) names the stages of every
    target's pipeline, placed or not, in pipeline order."""
    import re

    from q35c.cli.build import STAGES_HELP
    from q35c.report.ir import stage_choices
    from q35c.targets.spec import spec_names

    listed = re.search(r"stage names \(([^)]*)\)", STAGES_HELP)
    assert listed is not None
    assert [s.strip() for s in listed.group(1).split(",")] == stage_choices(spec_names())
