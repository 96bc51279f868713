"""`q35c compare REPORT ...`: builds side by side with ratios to the first, and clear errors for bad files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from q35c.cli.main import main

METRIC_KEYS = ("decode_tok_s", "ms_per_token", "prefill_tok_s", "ttft_ms", "joules_per_token", "avg_power_w",
               "devices", "weight_bytes")  # fmt: skip


def entry(target: str, scale: float) -> dict[str, Any]:
    return {
        "target": target,
        "devices": 1,
        "decode_tok_s": 100.0 * scale,
        "ms_per_token": 10.0 / scale,
        "prefill_tok_s": 1000.0 * scale,
        "ttft_ms": 500.0 / scale,
        "joules_per_token": 2.0 / scale,
        "avg_power_w": 200.0,
        "weight_bytes": 32e9 / scale,
        "bottleneck": "hbm bandwidth (90%)",
    }


def write(path: Path, data: Any) -> str:
    path.write_text(json.dumps(data))
    return str(path)


def report(scheme: str, scale: float, targets: tuple[str, ...] = ("h100-sxm", "groq-lpu")) -> dict[str, Any]:
    return {"model": "llama-2-70b", "scheme": scheme, "batch": 1, "prompt": 512, "gen": 128,
            "targets": [entry(t, scale) for t in targets]}  # fmt: skip


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["compare", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_table_shows_each_metric_with_ratios_to_the_baseline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = write(tmp_path / "q3p5.json", report("q3p5", 1.0))
    b = write(tmp_path / "int4.json", report("int4", 0.8))
    c = write(tmp_path / "fp16.json", report("fp16", 0.25, ("h100-sxm", "mi300x")))
    code, out, err = run(capsys, a, b, c)
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == f"[1] {a}: llama-2-70b q3p5, batch 1, prompt 512, gen 128 (baseline)"
    assert lines[1].startswith(f"[2] {b}: llama-2-70b int4") and lines[2].startswith(f"[3] {c}: llama-2-70b fp16")
    assert "ratios: build / baseline [1] on the same target" in out
    block = out[out.index("\ndecode tok/s (higher is better)\n") :].splitlines()[2:6]
    assert block[0].split() == ["target", "[1]", "[2]", "[2]/[1]", "[3]", "[3]/[1]"]
    assert block[1].split() == ["h100-sxm", "100.0", "80.0", "0.80x", "25.0", "0.25x"]
    assert block[2].split() == ["groq-lpu", "100.0", "80.0", "0.80x", "-", "-"]
    assert block[3].split() == ["mi300x", "-", "-", "-", "25.0", "-"]
    assert "\nweights GB (lower is better)\n" in out and "\nJ/token (lower is better)\n" in out


def test_json_has_values_and_ratios_per_metric(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = write(tmp_path / "a.json", report("q3p5", 1.0))
    b = write(tmp_path / "b.json", report("int8", 0.5))
    code, out, _ = run(capsys, a, b, "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert data["baseline"] == a and [x["scheme"] for x in data["builds"]] == ["q3p5", "int8"]
    assert set(data["metrics"]) == set(METRIC_KEYS)
    row = data["metrics"]["decode_tok_s"][0]
    assert row == {"target": "h100-sxm", "values": [100.0, 50.0], "ratios": [1.0, 0.5]}


def test_a_report_directory_stands_for_its_report_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "out").mkdir()
    write(tmp_path / "out" / "report.json", report("q3p5", 1.0))
    code, out, _ = run(capsys, str(tmp_path / "out"), str(tmp_path / "out" / "report.json"))
    assert code == 0 and "1.00x" in out


def test_each_differing_field_gets_one_line_at_the_top(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = report("int4", 1.0)
    other.update(model="llama-2-7b", batch=8, gen=64)
    code, out, _ = run(capsys, write(tmp_path / "a.json", report("q3p5", 1.0)), write(tmp_path / "b.json", other))
    assert code == 0
    lines = out.splitlines()
    assert lines[2:6] == [
        "note: model differs: [1] llama-2-70b, [2] llama-2-7b",
        "note: scheme differs: [1] q3p5, [2] int4",
        "note: batch differs: [1] 1, [2] 8",
        "note: gen differs: [1] 128, [2] 64",
    ]
    assert "prompt differs" not in out and "\ndecode tok/s (higher is better)\n" in out  # and it goes on


def test_same_builds_have_no_difference_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = write(tmp_path / "a.json", report("q3p5", 1.0))
    code, out, _ = run(capsys, a, a, "--format", "json")
    assert code == 0 and json.loads(out)["differences"] == {}
    _, out, _ = run(capsys, a, a)
    assert "differs" not in out


def test_json_names_the_differences(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = report("q3p5", 1.0)
    other["prompt"] = 1024
    code, out, _ = run(capsys, write(tmp_path / "a.json", report("q3p5", 1.0)), write(tmp_path / "b.json", other),
                       "--format", "json")  # fmt: skip
    assert code == 0 and json.loads(out)["differences"] == {"prompt": [512, 1024]}


def test_a_summary_per_metric_comes_first_with_its_direction(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = write(tmp_path / "a.json", report("q3p5", 1.0))
    b = report("int4", 2.0)
    b["targets"][1] = entry("groq-lpu", 0.5)  # faster on h100-sxm, slower on groq-lpu
    c = write(tmp_path / "c.json", report("fp16", 0.5))
    code, out, _ = run(capsys, a, write(tmp_path / "b.json", b), c)
    assert code == 0
    summary = out[out.index("\nsummary") : out.index("\ndecode tok/s (")].splitlines()
    assert summary[2].split() == ["metric", "better", "[2]", "vs", "[1]", "[3]", "vs", "[1]"]
    rows = {line[:14].strip(): line[14:].split() for line in summary[3:] if line}
    assert rows["decode tok/s"][:9] == ["higher", "1", "better,", "1", "worse,", "0", "same;", "geomean", "1.00x"]
    assert rows["decode tok/s"][9:] == ["0", "better,", "2", "worse,", "0", "same;", "geomean", "0.50x"]
    assert rows["ms/token"][0] == "lower" and rows["ms/token"][-8:] == ["0", "better,", "2", "worse,", "0", "same;",
                                                                         "geomean", "2.00x"]  # fmt: skip
    assert rows["W/device"][1:7] == ["0", "better,", "0", "worse,", "2", "same;"]
    for label, better in (("ms/token", "lower"), ("TTFT ms", "lower"), ("J/token", "lower"), ("W/device", "lower"),
                          ("prefill tok/s", "higher"), ("weights GB", "lower")):  # fmt: skip
        assert f"\n{label} ({better} is better)\n" in out


def test_json_summary_counts_and_geomean(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = write(tmp_path / "a.json", report("q3p5", 1.0))
    b = write(tmp_path / "b.json", report("int4", 0.8, ("h100-sxm", "mi300x")))
    code, out, _ = run(capsys, a, b, "--format", "json")
    data = json.loads(out)
    assert code == 0 and set(data["summary"]) == set(METRIC_KEYS)
    decode = data["summary"]["decode_tok_s"]
    assert decode["better"] == "higher" and data["summary"]["ttft_ms"]["better"] == "lower"
    (s,) = decode["builds"]
    assert (s["build"], s["targets"], s["improved"], s["worsened"], s["unchanged"]) == (2, 1, 0, 1, 0)
    assert s["geomean_ratio"] == pytest.approx(0.8)


def test_a_target_without_figures_is_a_dash_everywhere(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = report("q3p5", 1.0, ("h100-sxm", "host"))
    host = base["targets"][1]
    host.update(devices=0, error="does not fit: needs 35 GB, has 16 GB")
    for key in ("decode_tok_s", "ms_per_token", "prefill_tok_s", "ttft_ms", "joules_per_token", "avg_power_w"):
        host[key] = None
    other = report("int4", 1.0, ("h100-sxm", "host"))
    code, out, _ = run(capsys, write(tmp_path / "a.json", base), write(tmp_path / "b.json", other))
    assert code == 0
    blocks = out.split("\n\n")[2:]
    for block in blocks:
        (row,) = [line.split() for line in block.splitlines() if line.startswith("host")]
        if block.startswith("weights GB"):
            assert row == ["host", "32.00", "32.00", "1.00x"]  # the model's weights, fit or not
        else:
            assert row[1] == "-" and row[3] == "-", block  # no figure, no ratio
    assert "host  0" not in out
    code, out, _ = run(capsys, write(tmp_path / "a.json", base), "--format", "json")
    assert json.loads(out)["metrics"]["devices"][1] == {"target": "host", "values": [None], "ratios": [None]}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "not a q35c report: expected a JSON object, got list"),
        ('{"model": "m"}', "not a q35c report: no 'targets'"),
        ('{"model": "m", "targets": []}', "'targets' must be a non-empty list"),
        ('{"model": "m", "targets": [{"devices": 1}]}', "targets[0]: expected an object with a 'target' name"),
        ('{"model": "m", "targets": [{"target": "h100-sxm"}]}', "targets[0] (h100-sxm): no 'decode_tok_s'"),
    ],
)
def test_invalid_reports_exit_2_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    good = write(tmp_path / "good.json", report("q3p5", 1.0))
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    code, out, err = run(capsys, good, str(bad))
    assert code == 2 and out == ""
    assert err.startswith(f"q35c: error: {bad}") and message in err and "Traceback" not in err


def test_a_wrong_type_says_where(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = report("q3p5", 1.0)
    data["targets"][1]["joules_per_token"] = "fast"
    code, _, err = run(capsys, write(tmp_path / "r.json", data))
    assert code == 2 and 'targets[1].joules_per_token: expected a number or null, got "fast"' in err


def test_a_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, str(tmp_path / "nope.json"))
    assert code == 2 and f"{tmp_path / 'nope.json'}: no such file" in err


def test_invalid_json_gives_line_and_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{\n  "model": ,\n}')
    code, _, err = run(capsys, str(bad))
    assert code == 2 and f"{bad}:2:12: not valid JSON" in err


def test_real_builds_side_by_side(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for scheme in ("q3p5:g=32", "int8"):
        argv = ["build", "tiny", "--quant", scheme, "--target", "h100-sxm", "--prompt", "16", "--gen", "8"]
        assert main([*argv, "-o", str(tmp_path / scheme.replace(":", "_"))]) == 0
    capsys.readouterr()
    code, out, _ = run(capsys, str(tmp_path / "q3p5_g=32"), str(tmp_path / "int8"), "--format", "json")
    assert code == 0
    data = json.loads(out)
    weights = data["metrics"]["weight_bytes"][0]
    assert weights["target"] == "h100-sxm" and weights["ratios"][1] > 1  # int8 weights are larger than q3p5's
