"""`q35c build MODEL --target ...`: the comparison table, the JSON schema, errors, and fidelity to calibration."""

from __future__ import annotations

import json

import pytest

from q35c.cli.main import main
from q35c.predict.predictor import predict_row
from q35c.targets.calibration import ROWS
from q35c.targets.spec import spec_names

JSON_KEYS = {
    "target",
    "devices",
    "decode_tok_s",
    "ms_per_token",
    "prefill_tok_s",
    "ttft_ms",
    "joules_per_token",
    "avg_power_w",
    "weight_bytes",
    "kv_bytes",
    "bottleneck",
    "roofline_fraction",
}
SMALL = ["--prompt", "16", "--gen", "8"]


def build(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["build", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_json_has_the_model_scheme_and_one_entry_per_target(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = build(capsys, "tiny", "--quant", "q3p5:g=32", "--target", "h100-sxm,groq-lpu", *SMALL,
                           "--format", "json")  # fmt: skip
    assert code == 0 and err == ""
    data = json.loads(out)
    assert data["model"] == "tiny" and data["scheme"] == "q3p5:g=32"
    assert [t["target"] for t in data["targets"]] == ["h100-sxm", "groq-lpu"]
    for entry in data["targets"]:
        assert set(entry) >= JSON_KEYS
        assert entry["devices"] >= 1 and entry["decode_tok_s"] > 0 and entry["prefill_tok_s"] > 0
        assert entry["ms_per_token"] == pytest.approx(1e3 / entry["decode_tok_s"])
        assert entry["prefill_tok_s"] == pytest.approx(16 / (entry["ttft_ms"] / 1e3))
        assert 0 < entry["roofline_fraction"] <= 1


def test_all_prints_a_row_per_target(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = build(capsys, "tiny", "--target", "all", *SMALL)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("tiny, ") and "decode tok/s" in lines[1] and "bottleneck" in lines[1]
    rows = lines[2 : 2 + len(spec_names())]
    assert [row.split()[0] for row in rows] == spec_names()


def test_one_target_prints_its_stages_then_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = build(capsys, "tiny", "--target", "m2-max", *SMALL)
    assert code == 0
    assert (
        out.startswith("tiny for m2-max (apple), the decode step: batch 1 x 1 token after")
        and "\ntiny, the model's own schemes: batch 1" in out
    )


def test_unknown_target_exits_2_listing_the_valid_ones(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = build(capsys, "tiny", "--target", "h100-sxm,tpu", *SMALL)
    assert code == 2 and "unknown target 'tpu'" in err and "groq-lpu" in err and "Traceback" not in err


def test_too_few_devices_exit_2_saying_how_many_are_needed(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = build(capsys, "llama-2-7b", "--target", "groq-lpu", "--devices", "2", "--prompt", "0", "--gen", "1")
    assert code == 2 and "needs at least" in err and "Traceback" not in err


def test_a_model_no_target_can_hold_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = build(capsys, "llama-2-70b", "--quant", "fp16", "--target", "m2-max", "--prompt", "0", "--gen", "1")
    assert code == 2 and "at most 1" in err and "m2-max" in err


def test_ir_flags_need_a_single_target(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = build(capsys, "tiny", "--target", "all", "--print-ir-after-all", *SMALL)
    assert code == 2 and "single --target" in err


def test_scenario_longer_than_the_model_context_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = build(capsys, "tiny", "--target", "host", "--prompt", "500", "--gen", "100", "--format", "json")
    assert code == 2 and "context length 512" in err


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_calibration_rows_are_predicted_within_15_percent(row: object) -> None:
    from q35c.targets.calibration import Row

    assert isinstance(row, Row)
    assert predict_row(row) == pytest.approx(row.measured_tok_s, rel=0.15)
