"""Prediction ranges: figures recomputed with the specs' uncertain numbers at their bounds."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from q35c.predict.predictor import RESULT_KEYS, Predictor, Report, Scenario, TargetResult, compare
from q35c.predict.ranges import RANGED
from q35c.report.compare import parse_build
from q35c.report.table import ranged, render_csv, render_json, render_table
from q35c.targets.target import get_target
from q35c.targets.uncertainty import with_quantities


@pytest.fixture(scope="module")
def llama_q3p5() -> Report:
    return compare("llama-2-7b", "q3p5", "all")


def test_the_value_lies_within_its_range_for_every_figure_and_target(llama_q3p5: Report) -> None:
    for r in llama_q3p5.targets:
        for name in RANGED:
            value, low, high = getattr(r, name), getattr(r, f"{name}_low"), getattr(r, f"{name}_high")
            assert value is not None and low is not None and high is not None, (r.target, name)
            assert low <= value <= high, (r.target, name)


def test_static_power_gives_every_target_a_joules_range(llama_q3p5: Report) -> None:
    for r in llama_q3p5.targets:
        assert r.joules_per_token_low is not None and r.joules_per_token_high is not None
        assert r.joules_per_token_low < r.joules_per_token < r.joules_per_token_high, r.target


def test_json_and_csv_carry_low_and_high(llama_q3p5: Report) -> None:
    entry = json.loads(render_json(llama_q3p5))["targets"][0]
    header = render_csv(llama_q3p5).splitlines()[0].split(",")
    for name in RANGED:
        assert {f"{name}_low", f"{name}_high"} <= set(entry) and f"{name}_low" in RESULT_KEYS
        assert f"{name}_high" in header


def test_the_table_prints_value_and_range_aligned(llama_q3p5: Report) -> None:
    text = render_table(llama_q3p5)
    lines = text.splitlines()
    header, rows = lines[1], lines[2 : 2 + len(llama_q3p5.targets)]
    assert "value (low-high)" in text
    for name in ("decode tok/s", "J/token", "W/device"):
        start = header.index(name)
        assert all(row[start - 2 : start] == "  " for row in rows), name  # every column starts at its header
    groq = next(row for row in rows if row.startswith("groq-lpu"))
    assert f"{llama_q3p5.targets[1].joules_per_token:.2f} (" in groq


def test_widening_a_bound_widens_the_range() -> None:
    predictor = Predictor("tiny", "q3p5:g=32", Scenario(1, 16, 8))
    target = get_target("h100-sxm")
    static = target.spec.quantity("power.static_w")
    assert static.bounds is not None
    wider = replace(static, low=static.bounds[0] / 2, high=static.bounds[1] * 1.5)
    wide_target = replace(target, spec=with_quantities(target.spec, {"power.static_w": wider}))
    predictor.prepare([target])
    narrow, wide = predictor.predict(target), predictor.predict(wide_target)
    assert narrow.joules_per_token == wide.joules_per_token
    assert wide.joules_per_token_low is not None and narrow.joules_per_token_low is not None
    assert wide.joules_per_token_high is not None and narrow.joules_per_token_high is not None
    assert wide.joules_per_token_low < narrow.joules_per_token_low
    assert wide.joules_per_token_high > narrow.joules_per_token_high


def test_without_ranges_the_bounds_are_none() -> None:
    predictor = Predictor("tiny", "q3p5:g=32", Scenario(1, 16, 8))
    result: TargetResult = predictor.predict(get_target("h100-sxm"), with_ranges=False)
    assert result.decode_tok_s is not None and result.decode_tok_s_low is None


@pytest.mark.parametrize(
    ("args", "text"),
    [
        ((29.53, 21.2, 40.1, 1), "29.5 (21-41)"),
        ((5.87, 5.861, 5.975, 2), "5.87 (5.86-5.98)"),
        ((127.0, 127.0, 127.0, 1), "127.0"),
        ((1.26, None, None, 2), "1.26"),
        ((9547.6, 2912.0, 9581.0, 1), "9,547.6 (2,900-9,600)"),
    ],
)
def test_ranges_round_outward(args: tuple[float, float | None, float | None, int], text: str) -> None:
    assert ranged(*args) == text


def test_compare_reads_reports_with_and_without_ranges(llama_q3p5: Report) -> None:
    new = json.loads(render_json(llama_q3p5))
    old = json.loads(render_json(llama_q3p5))
    for entry in old["targets"]:
        for name in RANGED:
            del entry[f"{name}_low"], entry[f"{name}_high"]
    h100 = next(entry for entry in new["targets"] if entry["target"] == "h100-sxm")
    for data in (new, old):
        build = parse_build("report.json", data)
        assert build.figures["h100-sxm"]["decode_tok_s"] == h100["decode_tok_s"]
