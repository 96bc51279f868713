"""The table's footnotes say what its `bottleneck` share and `roofline` column are, and report.md's Roofline
section uses the same `roofline` measure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from q35c.cli.main import main
from q35c.predict.predictor import Report, compare
from q35c.report.table import BOTTLENECK_NOTE, ROOFLINE_NOTE, render_table


@pytest.fixture(scope="module")
def tiny() -> Report:
    return compare("tiny", "q3p5:g=32", "h100-sxm,groq-lpu", prompt=16, gen=8)


def test_the_footnotes_define_the_bottleneck_share_and_the_roofline_column(tiny: Report) -> None:
    lines = render_table(tiny).splitlines()
    assert BOTTLENECK_NOTE in lines and ROOFLINE_NOTE in lines
    assert "share" in BOTTLENECK_NOTE and "time" in BOTTLENECK_NOTE
    assert "roofline bound" in ROOFLINE_NOTE and "/ its predicted time" in ROOFLINE_NOTE
    assert max(len(BOTTLENECK_NOTE), len(ROOFLINE_NOTE)) <= 120


def test_the_footnotes_match_how_the_columns_are_computed(tiny: Report) -> None:
    for r in tiny.targets:
        cost = r.decode  # the decode step's, as the notes say
        assert cost is not None and r.roofline_fraction is not None
        assert r.roofline_fraction == pytest.approx(cost.roofline_seconds / cost.seconds)
        name = cost.bottleneck
        assert r.bottleneck == f"{name} ({100 * cost.limits[name] / cost.seconds:.0f}%)"
        assert all(cost.limits[name] >= v for v in cost.limits.values())  # the resource that bound the most


def test_report_md_says_which_roofline_is_which(tmp_path: Path) -> None:
    out = tmp_path / "r"
    argv = ["build", "tiny", "--quant", "q3p5:g=32", "--target", "h100-sxm", "--prompt", "16", "--gen", "8"]
    assert main([*argv, "-o", str(out)]) == 0
    text = (out / "report.md").read_text()
    comparison = text[text.index("## Comparison") : text.index("## Roofline")]
    roofline = text[text.index("## Roofline") :]
    assert "roofline: the phase's roofline bound" in comparison and "/ its predicted time" in comparison
    assert "the same measure as the Roofline section's" in comparison and "of roof" not in text
    assert "bottleneck (N%)" in comparison and "its share of that time" in comparison
    assert "`roofline` = the roofline bound / the predicted time = achieved / bound" in roofline
    row = next(line for line in roofline.splitlines() if line.startswith("| h100-sxm | decode"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    headers = [c.strip() for c in roofline.split("| target |")[1].splitlines()[0].strip("|").split("|")]
    shown = dict(zip(["target", *headers], cells, strict=True))
    report = json.loads((out / "report.json").read_text())
    h100 = next(t for t in report["targets"] if t["target"] == "h100-sxm")
    assert shown["roofline"] == f"{100 * h100['roofline_fraction']:.0f}%"  # the table's decode figure, same meaning
