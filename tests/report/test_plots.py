"""The plots say what they show: energy on a linear axis, whiskers over the uncertain range, a log axis labelled
as one, and a roofline with one panel per family whose legend gives the table's roofline figure."""

from __future__ import annotations

from pathlib import Path

import pytest

from q35c.predict.predictor import compare
from q35c.report.build import BuildReport, collect
from q35c.report.plots import RANGE_NOTE, _bars, _figure, plot_energy, plot_roofline, plot_throughput

TARGETS = ["h100-sxm", "a100-sxm", "groq-lpu", "m2-max"]


@pytest.fixture(scope="module")
def build() -> BuildReport:
    return collect(compare("tiny", "q3p5:g=32", TARGETS, prompt=16, gen=8), {})


def test_energy_is_drawn_on_a_linear_axis_from_zero(build: BuildReport, tmp_path: Path) -> None:
    values = [r.joules_per_token for r in build.report.targets if r.joules_per_token]
    assert max(values) / min(values) > 30  # wide enough that the bars would have gone log
    fig = plot_energy(build.report, tmp_path / "energy.png")
    ax = fig.axes[0]
    assert ax.get_xscale() == "linear" and ax.get_xlim()[0] == 0
    assert RANGE_NOTE in fig.get_supxlabel()


def test_a_log_axis_says_so_and_whiskers_span_the_range(tmp_path: Path) -> None:
    fig = _figure(6, 3)
    ax = fig.subplots()
    _bars(ax, ["a", "b"], [1.0, 100.0], "tokens/s", spans=[(0.5, 2.0), (80.0, 120.0)])
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "tokens/s (log scale)"
    segments = [seg for c in ax.collections for seg in c.get_segments()]
    ends = sorted((seg[0][0], seg[1][0]) for seg in segments)
    assert ends == [(0.5, 2.0), (80.0, 120.0)]


def test_a_whisker_past_a_linear_axis_writes_where_it_ends() -> None:
    fig = _figure(6, 3)
    ax = fig.subplots()
    _bars(ax, ["a", "b"], [1.0, 10.0], "J", 1, [(0.5, 2.0), (5.0, 300.0)], allow_log=False)
    assert ax.get_xscale() == "linear" and ax.get_xlim()[1] < 300
    assert any("whisker to 300.0" in t.get_text() for t in ax.texts)


def test_throughput_uses_log_only_with_a_label(build: BuildReport, tmp_path: Path) -> None:
    fig = plot_throughput(build.report, tmp_path / "throughput.png")
    for ax in fig.axes:
        assert (ax.get_xscale() == "log") == ax.get_xlabel().endswith("(log scale)")


def test_roofline_has_a_panel_per_family_and_the_tables_roofline(build: BuildReport, tmp_path: Path) -> None:
    fig = plot_roofline(build, tmp_path / "roofline.png")
    panels = [ax for ax in fig.axes if ax.get_visible()]
    families = list(dict.fromkeys(r.family for r in build.report.targets))
    assert [ax.get_title().split(":")[0] for ax in panels] == families
    for r in build.report.targets:
        legend = next(ax.get_legend() for ax in panels if ax.get_title().startswith(f"{r.family}:"))
        labels = [t.get_text() for t in legend.get_texts()]
        assert r.roofline_fraction is not None
        assert any(label.startswith(f"{r.target}: decode {100 * r.roofline_fraction:.0f}%") for label in labels)
    groq = next(ax for ax in panels if ax.get_title().startswith("groq:"))
    assert "sram" in groq.get_title()
