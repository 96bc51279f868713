"""The plots of a report directory, drawn with matplotlib (the Agg canvas, no pyplot state):

    throughput.png   decode and prefill tokens/s per target (bars; log axis when the range is wide)
    energy.png       joules per generated token per target
    roofline.png     each target's decode and prefill against its roof (ops/byte vs ops/s, log-log)
    breakdown.png    each pass's time by kind of layer, stacked, per target

`write_plots(build, directory)` writes all four. PNG metadata carries no software version or date, so the
same build draws the same bytes with the same matplotlib and fonts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from q35c.predict.predictor import Report, TargetResult
from q35c.report.breakdown import KIND_ORDER, Breakdown
from q35c.report.table import time_unit

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


def _bars(ax: Axes, names: Sequence[str], values: Sequence[float], label: str, digits: int = 1) -> None:
    """Horizontal bars, first target at the top, each with its value; log axis when the range is wide."""
    positions = list(range(len(names)))[::-1]
    ax.barh(positions, values, color="#4c72b0")
    ax.set_yticks(positions, labels=list(names))
    ax.set_xlabel(label)
    positive = [v for v in values if v > 0]
    if log_range(positive):
        ax.set_xscale("log")
        ax.set_xlim(min(positive) / 2, max(positive) * 4)
    elif positive:
        ax.set_xlim(0, max(positive) * 1.25)
    for y, v in zip(positions, values, strict=True):
        ax.annotate(f"{v:,.{digits}f}", (v, y), xytext=(3, 0), textcoords="offset points", va="center", fontsize=8)
    ax.grid(axis="x", alpha=0.3)


def _fitting(report: Report) -> list[TargetResult]:
    return [r for r in report.targets if r.error is None]


def _name(r: TargetResult) -> str:
    """A target's bar label: its name, with the device count when it takes more than one."""
    return r.target if r.devices <= 1 else f"{r.target} x{r.devices}"


def _unfit_note(fig: Figure, report: Report) -> None:
    unfit = [r.target for r in report.targets if r.error is not None]
    if unfit:
        fig.text(0.01, 0.005, f"not shown (cannot hold the model): {', '.join(unfit)}", fontsize=8, color="gray")


def plot_throughput(report: Report, path: Path) -> None:
    results = _fitting(report)
    fig = _figure(11, 0.45 * len(results) + 1.6)
    left, right = fig.subplots(1, 2)
    decode = [r for r in results if r.decode_tok_s is not None]
    prefill = [r for r in results if r.prefill_tok_s is not None]
    _bars(left, [_name(r) for r in decode], [r.decode_tok_s or 0.0 for r in decode], "decode tokens/s")
    _bars(right, [_name(r) for r in prefill], [r.prefill_tok_s or 0.0 for r in prefill], "prefill tokens/s")
    fig.suptitle(f"{title(report)}\n(x N: devices the model needs)" if any(r.devices > 1 for r in results)
                 else title(report))  # fmt: skip
    _unfit_note(fig, report)
    _save(fig, path)


def plot_energy(report: Report, path: Path) -> None:
    results = [r for r in _fitting(report) if r.joules_per_token is not None]
    fig = _figure(7, 0.45 * len(results) + 1.6)
    ax = fig.subplots()
    _bars(ax, [_name(r) for r in results], [r.joules_per_token or 0.0 for r in results], "joules per token", 2)
    ax.set_title(f"{title(report)}\nenergy per generated token (decode)", fontsize=10)
    _unfit_note(fig, report)
    _save(fig, path)


def plot_roofline(build: BuildReport, path: Path) -> None:
    import matplotlib as mpl

    points = [p for d in build.details for p in d.roofline]
    fig = _figure(9, 6.5)
    ax = fig.subplots()
    ax.set_xscale("log")
    ax.set_yscale("log")
    if points:
        low = min(p.intensity for p in points if p.intensity > 0) / 4
        high = max(max(p.intensity for p in points), max(p.peak_ops_per_s / p.bandwidth_bytes_per_s for p in points))
        high *= 4
        xs = [low * (high / low) ** (i / 200) for i in range(201)]
        colors = mpl.colormaps["tab20"]
        hues = [*range(0, 20, 2), *range(1, 20, 2)]  # the ten strong colours first, then their light partners
        targets = list(dict.fromkeys(p.target for p in points))
        for i, name in enumerate(targets):
            color = colors(hues[i % 20])
            mine = [p for p in points if p.target == name]
            roof = max(mine, key=lambda p: p.peak_ops_per_s)
            ax.plot(xs, [roof.roof_at(x) for x in xs], color=color, lw=1, alpha=0.7, label=name)
            for p in mine:
                marker = "o" if p.phase == "decode" else "^"
                ax.plot([p.intensity], [p.achieved_ops_per_s], marker=marker, color=color, ms=7, ls="none",
                        markeredgecolor="black", markeredgewidth=0.5)  # fmt: skip
        ax.plot([], [], marker="o", color="gray", ls="none", label="decode step")
        ax.plot([], [], marker="^", color="gray", ls="none", label="prefill")
        ax.legend(fontsize=7, ncols=2, loc="lower right")
    ax.set_xlabel("operational intensity (ops per byte of weight-memory traffic)")
    ax.set_ylabel("achieved ops/s per working device")
    ax.grid(which="major", alpha=0.3)
    ax.set_title(f"{title(build.report)}\nroofline: each target's roof from its spec (peak, bandwidth)", fontsize=10)
    _save(fig, path)


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


def plot_breakdown(build: BuildReport, path: Path) -> None:
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


def write_plots(build: BuildReport, directory: Path) -> list[Path]:
    """Draw the four plots into `directory`; returns their paths."""
    paths = {name: directory / f"{name}.png" for name in PLOTS}
    plot_throughput(build.report, paths["throughput"])
    plot_energy(build.report, paths["energy"])
    plot_roofline(build, paths["roofline"])
    plot_breakdown(build, paths["breakdown"])
    return list(paths.values())


def log_range(values: Sequence[float]) -> bool:
    """Whether `values` span a range wide enough for a log axis."""
    positive = [v for v in values if v > 0]
    return bool(positive) and max(positive) / min(positive) > WIDE and math.isfinite(max(positive))
