"""Rendering a target comparison (`q35c.predict.predictor.Report`) as a text table, as JSON or as CSV.

The table has one row per target:

    llama-2-70b, q3p5: batch 1, prompt 512, generate 128
    target     devices  decode tok/s  ms/token  prefill tok/s  TTFT ms  J/token  W/device  weights GB  KV GB  bottleneck
    h100-sxm         1         103.4      9.67         4210.2    121.6     2.31     239.1       32.85   0.17  hbm ...

followed by notes: where each family's figures come from and what a reader should keep in mind. JSON keeps
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


COLUMNS: tuple[Column, ...] = (
    ("target", lambda r: r.target),
    ("devices", lambda r: str(r.devices) if r.devices else "-"),
    ("decode tok/s", lambda r: _num(r.decode_tok_s)),
    ("ms/token", lambda r: _num(r.ms_per_token, 2)),
    ("prefill tok/s", lambda r: _num(r.prefill_tok_s)),
    ("TTFT ms", lambda r: _num(r.ttft_ms)),
    ("J/token", lambda r: _num(r.joules_per_token, 2)),
    ("W/device", lambda r: _num(r.avg_power_w)),
    ("weights GB", lambda r: _num(r.weight_bytes / 1e9, 2)),
    ("KV GB", lambda r: _num(r.kv_bytes / 1e9, 2)),
    ("roofline", lambda r: "-" if r.roofline_fraction is None else f"{100 * r.roofline_fraction:.0f}%"),
    ("bottleneck", lambda r: r.bottleneck),
)
LEFT = ("target", "bottleneck")


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
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    for row in rows:
        cells = [
            c.ljust(w) if name in LEFT else c.rjust(w) for c, w, (name, _) in zip(row, widths, COLUMNS, strict=True)
        ]
        lines.append("  ".join(cells).rstrip())
    lines.append("")
    lines.append("decode: one step at the mean context of generation (exact: step cost is linear in context);")
    lines.append("prefill tok/s = batch x prompt / TTFT; J/token and W/device during decode (W never above TDP).")
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
