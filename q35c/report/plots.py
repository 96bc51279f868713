"""The plots of a report directory, drawn with matplotlib (the Agg canvas, no pyplot state):

    throughput.png   decode and prefill tokens/s per target (bars; log axis when the range is wide)
    energy.png       joules per generated token per target (always a linear axis)
    roofline.png     each target's decode and prefill against its roof and its own roofline bound (ops/byte vs
                     ops/s, log-log, one panel per family)
    breakdown.png    each pass's time by kind of layer, stacked, per target

`write_plots(build, directory)` writes all four. PNG metadata carries no software version or date, so the
same build draws the same bytes with the same matplotlib and fonts.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from q35c.predict.predictor import Report, TargetResult
from q35c.report.breakdown import KIND_ORDER, Breakdown
from q35c.report.roofline import RooflinePoint
from q35c.report.table import time_unit
from q35c.util.forks import fork_call

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from q35c.report.build import BuildReport

PLOTS = {
    "throughput": "decode and prefill tokens/s per target",
    "energy": "joules per generated token per target",
    "roofline": "roofline: each target's decode step and prefill against its roof",
    "breakdown": "time per kind of layer, decode step and prefill, per target",
}
WIDE = 30.0  # a max/min ratio above this gets a log axis
METADATA: dict[str, Any] = {"Software": None}
DPI = 110


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _save(fig: Figure, path: Path) -> None:
    fig.savefig(path, format="png", dpi=DPI, metadata=METADATA)


def title(report: Report) -> str:
    s = report.scenario
    return f"{report.model}, {report.scheme or 'own schemes'}: batch {s.batch}, prompt {s.prompt}, gen {s.gen}"


def _bars(
    ax: Axes,
    names: Sequence[str],
    values: Sequence[float],
    label: str,
    digits: int = 1,
    spans: Sequence[tuple[float, float] | None] = (),
    allow_log: bool = True,
) -> None:
    """Horizontal bars, first target at the top, each with its value and, where `spans` gives one, a whisker over
    its range. A log axis (said so in the label) only when `allow_log` and the range is wide; on a linear axis a
    whisker longer than the axis stops at its edge with its end written there."""
    positions = list(range(len(names)))[::-1]
    ax.barh(positions, values, color="#4c72b0")
    ax.set_yticks(positions, labels=list(names))
    positive = [v for v in values if v > 0]
    spans = list(spans) or [None] * len(values)
    highs = [s[1] for s in spans if s is not None and math.isfinite(s[1])]
    logscale = allow_log and log_range(positive)
    if logscale:
        ax.set_xscale("log")
        limit = max([*positive, *highs]) * 4
        ax.set_xlim(min([*positive, *(s[0] for s in spans if s is not None and s[0] > 0)]) / 2, limit)
        label += " (log scale)"
    else:
        limit = max(positive, default=1.0) * 1.35
        ax.set_xlim(0, limit)
    ax.set_xlabel(label)
    for y, v, span in zip(positions, values, spans, strict=True):
        end, text = v, f"{v:,.{digits}f}"
        if span is not None and span[0] <= v <= span[1] and span[1] > span[0]:
            end = min(span[1], limit * 0.8)
            ax.errorbar([v], [y], xerr=[[v - span[0]], [end - v]], fmt="none", ecolor="black", elinewidth=0.8,
                        capsize=0 if end < span[1] else 3)  # fmt: skip
            if end < span[1]:
                text += f" (whisker to {span[1]:,.{digits}f})"
        ax.annotate(text, (end, y), xytext=(3, 0), textcoords="offset points", va="center", fontsize=8)
    ax.grid(axis="x", alpha=0.3)


def _span(r: TargetResult, name: str) -> tuple[float, float] | None:
    low, high = getattr(r, f"{name}_low"), getattr(r, f"{name}_high")
    return None if low is None or high is None else (low, high)


RANGE_NOTE = "whiskers: the range over the specs' uncertain numbers at their bounds"


def _fitting(report: Report) -> list[TargetResult]:
    return [r for r in report.targets if r.error is None]


def _name(r: TargetResult) -> str:
    """A target's bar label: its name, with the device count when it takes more than one."""
    return r.target if r.devices <= 1 else f"{r.target} x{r.devices}"


def _unfit_note(fig: Figure, report: Report) -> None:
    """The footnote: what the whiskers are, and the targets left out."""
    unfit = [r.target for r in report.targets if r.error is not None]
    text = RANGE_NOTE + (f"; not shown (cannot hold the model): {', '.join(unfit)}" if unfit else "")
    fig.supxlabel(text, fontsize=8, color="gray", x=0.01, ha="left")


def plot_throughput(report: Report, path: Path) -> Figure:
    results = _fitting(report)
    fig = _figure(11, 0.45 * len(results) + 1.8)
    left, right = fig.subplots(1, 2)
    decode = [r for r in results if r.decode_tok_s is not None]
    prefill = [r for r in results if r.prefill_tok_s is not None]
    _bars(left, [_name(r) for r in decode], [r.decode_tok_s or 0.0 for r in decode], "decode tokens/s", 1,
          [_span(r, "decode_tok_s") for r in decode])  # fmt: skip
    _bars(right, [_name(r) for r in prefill], [r.prefill_tok_s or 0.0 for r in prefill], "prefill tokens/s", 1,
          [_span(r, "prefill_tok_s") for r in prefill])  # fmt: skip
    devices = "\n(x N: devices the model needs)" if any(r.devices > 1 for r in results) else ""
    fig.suptitle(title(report) + devices)
    _unfit_note(fig, report)
    _save(fig, path)
    return fig


def plot_energy(report: Report, path: Path) -> Figure:
    """Joules per token on a linear axis always: a log axis would exaggerate differences between bars."""
    results = [r for r in _fitting(report) if r.joules_per_token is not None]
    fig = _figure(7, 0.45 * len(results) + 1.8)
    ax = fig.subplots()
    _bars(ax, [_name(r) for r in results], [r.joules_per_token or 0.0 for r in results], "joules per token", 2,
          [_span(r, "joules_per_token") for r in results], allow_log=False)  # fmt: skip
    ax.set_title(f"{title(report)}\nenergy per generated token (decode)", fontsize=10)
    _unfit_note(fig, report)
    _save(fig, path)
    return fig


MARKERS = ("o", "s", "D", "^", "v", "P", "X", "*")
STYLES: tuple[Any, ...] = ("-", "--", "-.", ":", (0, (5, 1, 1, 1)), (0, (1, 3)))
FAR_BELOW = 0.5
"""A pass whose roofline bound is under this share of its spec roof gets a note naming what set its time."""


def _intensities(points: Sequence[RooflinePoint]) -> list[float]:
    low = min(p.intensity for p in points if p.intensity > 0) / 4
    high = 4 * max(max(p.intensity for p in points), max(p.peak_ops_per_s / p.bandwidth_bytes_per_s for p in points))
    return [low * (high / low) ** (i / 200) for i in range(201)]


def _roofline_panel(ax: Axes, family: str, points: Sequence[RooflinePoint], xs: Sequence[float]) -> None:
    """One family's targets: each roof a line (colour and dash per target), each pass a marker (filled: decode,
    hollow: prefill) joined to a tick at its roofline bound; the legend gives each pass's roofline %."""
    import matplotlib as mpl
    from matplotlib.lines import Line2D

    colors = mpl.colormaps["tab10"]
    handles: list[Line2D] = []
    notes: list[str] = []
    for i, name in enumerate(dict.fromkeys(p.target for p in points)):
        color, marker, style = colors(i % 10), MARKERS[i % len(MARKERS)], STYLES[i % len(STYLES)]
        mine = [p for p in points if p.target == name]
        roof = max(mine, key=lambda p: p.peak_ops_per_s)
        ax.plot(xs, [roof.roof_at(x) for x in xs], color=color, ls=style, lw=1.2, alpha=0.85)
        for p in mine:
            ax.plot([p.intensity] * 2, [p.achieved_ops_per_s, p.bound_ops_per_s], color=color, lw=0.8)
            ax.plot([p.intensity], [p.bound_ops_per_s], marker="_", ms=11, mew=1.6, color=color, ls="none")
            face = color if p.phase == "decode" else "white"
            ax.plot([p.intensity], [p.achieved_ops_per_s], marker=marker, ms=7, mfc=face, mec=color, mew=1.3,
                    ls="none")  # fmt: skip
            if p.bound_ops_per_s < FAR_BELOW * p.roof_ops_per_s:
                share = p.bound_ops_per_s / p.roof_ops_per_s
                notes.append(f"{name} {p.phase} (bound at {share:.0%} of the roof): {p.bound_by()}")
        shares = ", ".join(
            f"{p.phase} {100 * p.roofline_fraction:.0f}%" for p in mine if p.roofline_fraction is not None
        )
        handles.append(Line2D([], [], color=color, ls=style, marker=marker, label=f"{name}: {shares}"))
    ax.legend(handles=handles, fontsize=7, loc="upper left", title="target: roofline %", title_fontsize=7)
    memories = "/".join(dict.fromkeys(p.memory for p in points))
    ax.set_title(f"{family}: roofs from spec peak and {memories} bandwidth", fontsize=9)
    if notes:
        text = "bound far below the roof; what set the time (share):\n" + "\n".join(notes)
        ax.text(0.98, 0.03, text, transform=ax.transAxes, ha="right", va="bottom", fontsize=7,
                bbox={"facecolor": "white", "edgecolor": "gray", "alpha": 0.9})  # fmt: skip
    ax.grid(which="major", alpha=0.3)


def plot_roofline(build: BuildReport, path: Path) -> Figure:
    """One panel per target family, on shared log-log axes."""
    from matplotlib.lines import Line2D

    points = [p for d in build.details for p in d.roofline]
    family = {r.target: r.family for r in build.report.targets}
    families = list(dict.fromkeys(family[p.target] for p in points)) or [""]
    cols = len(families) if len(families) <= 3 else 2
    rows = math.ceil(len(families) / cols)
    fig = _figure(5.2 * cols + 0.6, 4.6 * rows + 1.3)
    axes = fig.subplots(rows, cols, squeeze=False, sharex=True, sharey=True).flatten()
    for ax in axes:
        ax.set_xscale("log")
        ax.set_yscale("log")
    if points:
        xs = _intensities(points)
        for ax, name in zip(axes, families, strict=False):
            _roofline_panel(ax, name, [p for p in points if family[p.target] == name], xs)
    for ax in axes[len(families) :]:
        ax.set_visible(False)
    for i, ax in enumerate(axes[: len(families)]):
        if i + cols >= len(families):  # the lowest panel of its column
            ax.set_xlabel("ops per byte of traffic to the memory holding the weights", fontsize=8)
            ax.xaxis.set_tick_params(labelbottom=True)
        if i % cols == 0:
            ax.set_ylabel("ops/s per working device", fontsize=8)
    key = [
        Line2D([], [], marker="o", color="gray", ls="none", label="decode step (filled)"),
        Line2D([], [], marker="o", mfc="white", color="gray", ls="none", label="prefill (hollow)"),
        Line2D([], [], marker="_", ms=11, mew=1.6, color="gray", ls="none", label="the pass's roofline bound"),
        Line2D([], [], color="gray", label="the spec roof: min(peak, intensity x bandwidth)"),
    ]
    fig.legend(handles=key, loc="outside lower center", ncols=4, fontsize=8)
    fig.suptitle(
        f"{title(build.report)}\nroofline % = roofline bound / predicted time (each kernel's slowest resource at "
        "spec rates, summed), as in the table",
        fontsize=10,
    )
    _save(fig, path)
    return fig


def _phase(ax: Axes, rows: Sequence[tuple[str, Breakdown]], phase: str, kinds: Sequence[str]) -> None:
    import matplotlib as mpl

    colors = mpl.colormaps["tab10"]
    positions = list(range(len(rows)))[::-1]
    starts = [0.0] * len(rows)
    for i, kind in enumerate(kinds):
        shares = []
        for _, b in rows:
            found = {k: s for k, s, _ in b.by_kind()}
            shares.append(100 * found.get(kind, 0.0) / b.seconds if b.seconds else 0.0)
        ax.barh(positions, shares, left=starts, color=colors(i % 10), label=kind)
        starts = [a + b for a, b in zip(starts, shares, strict=True)]
    labels = [f"{name} ({_time(b.seconds)})" for name, b in rows]
    ax.set_yticks(positions, labels=labels)
    ax.set_xlim(0, 100)
    ax.set_xlabel(f"share of the {phase} time (%)")
    ax.set_title("decode step" if phase == "decode" else "prefill (TTFT)", fontsize=10)


def _time(seconds: float) -> str:
    unit, scale = time_unit(seconds)
    value = seconds * scale
    return f"{value:.3g} {unit}" if value < 100 else f"{value:,.0f} {unit}"


def plot_breakdown(build: BuildReport, path: Path) -> Figure:
    decode = [(d.target, d.decode) for d in build.details if d.decode is not None]
    prefill = [(d.target, d.prefill) for d in build.details if d.prefill is not None]
    present = {k for _, b in decode + prefill for k, _, _ in b.by_kind()}
    kinds = [k for k in KIND_ORDER if k in present] + sorted(present - set(KIND_ORDER))
    panels = [(rows, phase) for rows, phase in ((decode, "decode"), (prefill, "prefill")) if rows]
    fig = _figure(12, 0.45 * max((len(r) for r, _ in panels), default=1) + 2.2)
    axes = fig.subplots(1, max(1, len(panels)), squeeze=False)[0]
    for ax, (rows, phase) in zip(axes, panels, strict=False):
        _phase(ax, rows, phase, kinds)
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=min(5, len(labels)), fontsize=8)
    fig.suptitle(f"{title(build.report)}: where the time goes")
    _save(fig, path)
    return fig


def write_plots(build: BuildReport, directory: Path) -> list[Path]:
    """Draw the four plots into `directory`; returns their paths. On a machine with several cores a forked
    process draws the roofline and the energy plot (about as long as the other two) meanwhile; should it fail,
    they are drawn here."""
    load_matplotlib()  # once, before the fork
    paths = {name: directory / f"{name}.png" for name in PLOTS}

    def forked() -> None:
        plot_roofline(build, paths["roofline"])
        plot_energy(build.report, paths["energy"])

    child = fork_call(forked)
    drawn = False
    try:
        plot_throughput(build.report, paths["throughput"])
        plot_breakdown(build, paths["breakdown"])
    finally:
        drawn = child is not None and os.waitpid(child, 0)[1] == 0
    if not drawn:
        forked()
    return list(paths.values())


def load_matplotlib() -> None:
    """Import what drawing and saving the plots takes (a large library: a report loads it while it compiles)."""
    import matplotlib.backends.backend_agg
    import matplotlib.figure  # noqa: F401


def log_range(values: Sequence[float]) -> bool:
    """Whether `values` span a range wide enough for a log axis."""
    positive = [v for v in values if v > 0]
    return bool(positive) and max(positive) / min(positive) > WIDE and math.isfinite(max(positive))
