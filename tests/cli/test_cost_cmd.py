"""`q35c cost FILE --target T`: a module dumped by `q35c build --dump-ir` costs what the build's JSON says, and the
dumped modules are the scenario's phases with the batch in their IR."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from q35c.cli.main import main

TARGET = "h100-sxm"
SCENARIO = ["--batch", "8", "--prompt", "16", "--gen", "8"]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def dumped(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object]]:
    out = tmp_path_factory.mktemp("ir") / "ir"
    assert main(["build", "tiny", "--target", TARGET, *SCENARIO, "--dump-ir", str(out)]) == 0
    return out, {}


def test_dump_holds_the_costed_phase_modules(dumped: tuple[Path, dict[str, object]]) -> None:
    out, _ = dumped
    assert sorted(p.name for p in out.iterdir()) == ["decode", "prefill"]
    graph = (out / "decode" / "00-graph.mlir").read_text()
    # 8 sequences x 1 token: 8 activation rows; caches of 8 x C rows, C = 16 + 8 // 2 = 20 (mean 19.5, halves up).
    assert "func.func @main(%ids: tensor<8xi32>" in graph
    assert re.search(r"%k_cache: tensor<160x32xf16>", graph)
    assert "batch = 8 : i64" in graph
    prefill = (out / "prefill" / "00-graph.mlir").read_text()
    assert "%ids: tensor<128xi32>" in prefill and "tensor<0x32xf16>" in prefill


@pytest.mark.parametrize("phase", ["decode", "prefill"])
def test_cost_of_a_dumped_module_is_the_builds(
    phase: str, dumped: tuple[Path, dict[str, object]], capsys: pytest.CaptureFixture[str]
) -> None:
    out, _ = dumped
    code, text, _ = run(capsys, "build", "tiny", "--target", TARGET, *SCENARIO, "--format", "json")
    assert code == 0
    built = json.loads(text)["targets"][0][f"{phase}_cost"]
    code, text, _ = run(capsys, "cost", str(out / phase / "05-schedule.mlir"), "--target", TARGET, "--format", "json")
    assert code == 0
    found = json.loads(text)
    assert found["cost"] == built
    assert found["workload"]["batch"] == 8
    assert found["workload"]["rows"] == (8 if phase == "decode" else 128)
    assert found["workload"]["context"] == (20 if phase == "decode" else 0)


def test_cost_prints_workload_and_time(
    dumped: tuple[Path, dict[str, object]], capsys: pytest.CaptureFixture[str]
) -> None:
    out, _ = dumped
    code, text, _ = run(capsys, "cost", str(out / "decode" / "05-schedule.mlir"), "--target", TARGET)
    assert code == 0
    assert "batch 8, 8 row(s) in flight, context 20" in text and "bytes per level: hbm" in text and "time:" in text


def test_cost_refuses_a_module_of_another_target_or_stage(
    dumped: tuple[Path, dict[str, object]], capsys: pytest.CaptureFixture[str]
) -> None:
    out, _ = dumped
    code, _, err = run(capsys, "cost", str(out / "decode" / "05-schedule.mlir"), "--target", "m2-max")
    assert code == 2 and err.startswith("q35c: error: ") and "not m2-max's" in err
    code, _, err = run(capsys, "cost", str(out / "decode" / "03-tile.mlir"), "--target", TARGET)
    assert code == 2 and "no q35.memory_spaces" in err
    code, _, err = run(capsys, "cost", str(out / "nothing.mlir"), "--target", TARGET)
    assert code == 2 and "cannot read" in err


def test_seq_and_context_are_for_the_graph_only(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "build", "tiny", "--target", TARGET, "--seq", "4")
    assert code == 2 and "--emit graph only" in err
    code, out, _ = run(capsys, "build", "tiny", "--seq", "4", "--context", "2")
    assert code == 0 and "tensor<4xi32>" in out
