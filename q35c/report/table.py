"""Rendering a target comparison (`q35c.predict.predictor.Report`) as a text table, as JSON or as CSV.

The table has one row per target:

   llama-2-7b, q3p5: batch 1, prompt 512, generate 128
   target     devices  decode tok/s            ms/token              prefill tok/s              ...  J/token
   groq-lpu        16         170.2 (167-171)      5.87 (5.86-5.98)        9,547.6 (2,900-9,600)  ...  7.12 (3.5-15)
   h100-sxm         1         126.8                7.89                   10,345.8 (10,328-10,346)  ...  1.26 (0.61-2.5)

Decode and prefill tok/s, ms/token and J/token show their range, `value (low-high)`: the figure with the spec's
uncertain numbers at their bounds (`q35c.predict.ranges`); a figure they do not move shows its value alone. The
bounds are rounded outward to two significant digits, more where that would widen the range by half. The table
is followed by notes: where each family's figures come from and what a reader should keep in mind. JSON keeps
every number unrounded, plus each phase's full cost (time, traffic per memory level, ops per unit, energy per
component, and the seconds each resource bound). CSV has one row per target, the JSON's scalar keys as
columns (numbers unrounded, empty where there is none).

A report directory (`q35c build ... -o DIR`) adds Markdown (`q35c.report.markdown`), plots (`q35c.report.plots`) and
the IR of every stage; `q35c.report.directory` writes it.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable
from typing import Any

from q35c.predict.predictor import RESULT_KEYS, Report, TargetResult

Column = tuple[str, Callable[[TargetResult], str]]


def _num(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "-"
    if value != 0 and abs(value) < 10 ** (-digits):
        return f"{value:.2g}"
    return f"{value:,.{digits}f}"


def _bound(value: float, significant: int, up: bool) -> tuple[float, str]:
    """`value` rounded outward (down for a low bound, up for a high one) to `significant` digits, and as text
    (`21`, `0.61`, `9,600`)."""
    if value == 0:
        return 0.0, "0"
    step = 10.0 ** (math.floor(math.log10(abs(value))) - significant + 1)
    rounded = (math.ceil(value / step - 1e-9) if up else math.floor(value / step + 1e-9)) * step
    return rounded, f"{rounded:,.{max(0, -round(math.log10(step)))}f}"


def ranged(value: float | None, low: float | None, high: float | None, digits: int = 1) -> str:
    """`value (low-high)`, the bounds rounded outward to two significant digits, or more where that would
    widen the range by half; the value alone when it has no range or the range is a point."""
    text = _num(value, digits)
    if value is None or low is None or high is None or low == high:
        return text
    for significant in range(2, 7):
        (lo, lo_text), (hi, hi_text) = _bound(low, significant, False), _bound(high, significant, True)
        if hi - lo <= 1.5 * (high - low):
            break
    return f"{text} ({lo_text}-{hi_text})"


def _devices(r: TargetResult) -> str:
    """`16 (8x2)`: the devices, and tensor-parallel x pipeline degrees where there are several."""
    if not r.devices:
        return "-"
    return str(r.devices) if r.devices == 1 else f"{r.devices} ({r.tp}x{r.pp})"


def _figure(name: str, digits: int) -> Callable[[TargetResult], str]:
    return lambda r: ranged(getattr(r, name), getattr(r, f"{name}_low"), getattr(r, f"{name}_high"), digits)


COLUMNS: tuple[Column, ...] = (
    ("target", lambda r: r.target),
    ("devices", lambda r: _devices(r)),
    ("decode tok/s", _figure("decode_tok_s", 1)),
    ("ms/token", _figure("ms_per_token", 2)),
    ("prefill tok/s", _figure("prefill_tok_s", 1)),
    ("TTFT ms", lambda r: _num(r.ttft_ms)),
    ("J/token", _figure("joules_per_token", 2)),
    ("W/device", lambda r: _num(r.avg_power_w)),
    ("weights GB", lambda r: _num(r.weight_bytes / 1e9, 2)),
    ("KV GB", lambda r: _num(r.kv_bytes / 1e9, 2)),
    ("roofline", lambda r: "-" if r.roofline_fraction is None else f"{100 * r.roofline_fraction:.0f}%"),
    ("bottleneck", lambda r: r.bottleneck),
)
LEFT = ("target", "bottleneck")
RANGED = ("decode tok/s", "ms/token", "prefill tok/s", "J/token")
"""Columns of `value (low-high)` cells: the values right-aligned, their ranges after them."""


BOTTLENECK_NOTE = (
    "bottleneck (N%): the resource that bound the most of the phase's time (decode, else prefill); N% = its share."
)
ROOFLINE_NOTE = (
    "roofline: the phase's roofline bound (spec rates, no efficiency or overhead) / its predicted time; 100% = at it."
)
"""The footnotes defining the `bottleneck` and `roofline` columns (`describe_bottleneck`, `roofline_fraction`
in `q35c.predict.predictor`)."""


def time_unit(seconds: float) -> tuple[str, float]:
    """(unit, scale) in which `seconds`, the largest time of a table, reads well: ms, us or ns."""
    for name, scale in (("ms", 1e3), ("us", 1e6)):
        if seconds * scale >= 1:
            return name, scale
    return "ns", 1e9


def render_table(report: Report) -> str:
    """The comparison as an aligned text table with notes underneath."""
    s = report.scenario
    scheme = report.scheme or "the model's own schemes"
    lines = [f"{report.model}, {scheme}: batch {s.batch}, prompt {s.prompt}, generate {s.gen}"]
    rows = [[name for name, _ in COLUMNS]] + [[cell(r) for _, cell in COLUMNS] for r in report.targets]
    for i, (name, _) in enumerate(COLUMNS):
        if name in RANGED:
            _align_ranges(rows, i)
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    for row in rows:
        cells = [
            c.ljust(w) if name in LEFT or name in RANGED else c.rjust(w)
            for c, w, (name, _) in zip(row, widths, COLUMNS, strict=True)
        ]
        lines.append("  ".join(cells).rstrip())
    lines.append("")
    lines.append("decode: one compiled step of the batch at the mean context of generation, rounded halves up;")
    lines.append("prefill tok/s = batch x prompt / TTFT; J/token and W/device during decode (W never above TDP).")
    lines.append("value (low-high): the range over the specs' uncertain numbers at their bounds, device count held.")
    lines.append(BOTTLENECK_NOTE)
    lines.append(ROOFLINE_NOTE)
    if any(r.devices > 1 for r in report.targets):
        lines.append("devices N (TxP): T tensor-parallel devices per pipeline stage x P stages (per-user figures: one")
        lines.append("token through every stage in turn).")
    for r in report.targets:
        if r.pipeline_tok_s is not None and r.pipeline_joules_per_token is not None:
            lines.append(
                f"{r.target}: with each of its {r.pp} stages busy on another batch, the pipeline delivers "
                f"{_num(r.pipeline_tok_s)} tok/s at {r.pipeline_joules_per_token:.3g} J/token."
            )
    notes: dict[str, list[str]] = {}
    for r in report.targets:
        for note in r.notes:
            notes.setdefault(note, []).append(r.target)
    for note, names in notes.items():
        lines.append(f"  {', '.join(names)}: {note}")
    for r in report.targets:
        if r.error is not None:
            lines.append(f"  {r.target}: {r.error}")
    return "\n".join(lines)


def _align_ranges(rows: list[list[str]], column: int) -> None:
    """Right-align the values of a ranged column (the header with them), leaving each range after its value."""
    parts = [row[column].partition(" (") for row in rows[1:]]
    width = max([len(rows[0][column])] + [len(value) for value, _, _ in parts])
    rows[0][column] = rows[0][column].rjust(width)
    for row, (value, sep, spread) in zip(rows[1:], parts, strict=True):
        row[column] = value.rjust(width) + (f" ({spread}" if sep else "")


def render_json(report: Report) -> str:
    """The comparison as JSON: `model`, `scheme`, the scenario and `targets` (one object per target)."""
    return json.dumps(report.to_json(), indent=2, sort_keys=False)


CSV_SCENARIO = ("model", "scheme", "batch", "prompt", "gen")
CSV_TARGET = (*RESULT_KEYS, "error")


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def render_csv(report: Report) -> str:
    """One row per target: the scenario (model, scheme, batch, prompt, gen) and the target's figures."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow((*CSV_SCENARIO, *CSV_TARGET))
    data = report.to_json()
    for entry in data["targets"]:
        row = [data[key] for key in CSV_SCENARIO] + [entry.get(key) for key in CSV_TARGET]
        writer.writerow([_csv_cell(v) for v in row])
    return out.getvalue()
