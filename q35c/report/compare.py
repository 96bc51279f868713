"""Several builds side by side: `q35c compare A/report.json B/report.json ...`.

Each argument is a `report.json` that `q35c build ... -o DIR` wrote (or what `--format json` printed), or a
report directory. The first is the baseline: for every metric, each later build's value is shown with its ratio
to the baseline's on the same target (build / baseline; `1.50x` means 50% more). The text starts with the
builds, one line per field (model, scheme, batch, prompt, gen) in which they differ (comparing schemes of one
model, or one scheme across models, is legitimate: the line only says what differs), and a summary: per metric,
which direction is better, and for each later build how many targets improved, worsened or stayed the same
(the ratio rounds to 1.00x) and the geometric mean of its ratios. A missing figure (a phase the scenario does
not run, a target that does not fit: `devices` 0 or an `error`) is `-`, with no ratio.

    load_build("out/q3p5")                    -> Build (Q35Error naming the file and what is wrong)
    side_by_side([b1, b2, b3])                -> Comparison
    render_side_by_side(comparison)           -> text; comparison.to_json() -> --format json

A file that cannot be read, is not JSON, or lacks what a report has (`model`, `targets`, each target's
`target` and numeric figures) is a Q35Error located at the file.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from q35c.util.errors import Location, Q35Error
from q35c.util.limits import MAX_INT_DIGITS, MAX_NESTING, line_col, read_source, too_deep

# (key in report.json, label, digits)
METRICS: tuple[tuple[str, str, int], ...] = (
    ("decode_tok_s", "decode tok/s", 1),
    ("ms_per_token", "ms/token", 2),
    ("prefill_tok_s", "prefill tok/s", 1),
    ("ttft_ms", "TTFT ms", 1),
    ("joules_per_token", "J/token", 2),
    ("avg_power_w", "W/device", 1),
    ("devices", "devices", 0),
    ("weight_bytes", "weights GB", 2),
)
SCALE = {"weight_bytes": 1e-9}
SCENARIO = ("batch", "prompt", "gen")
HIGHER_IS_BETTER = frozenset({"decode_tok_s", "prefill_tok_s"})
"""The metrics where more is better; in every other one (ms/token, TTFT, J/token, W, devices, GB) less is."""
NO_FIGURE_WITHOUT_DEVICES = frozenset(key for key, _, _ in METRICS) - {"weight_bytes"}
"""A target that does not fit (`devices` 0, or an `error`) has none of these; its weight bytes are still the
model's."""
SAME = 0.005
"""A ratio within this of 1 (shown as 1.00x) counts as unchanged in the summary."""


def direction(key: str) -> str:
    """`higher` or `lower`: which way a metric is better."""
    return "higher" if key in HIGHER_IS_BETTER else "lower"


@dataclass(frozen=True)
class Build:
    """One report: where it was read from, what it is, and its figures per target."""

    path: str
    model: str
    scheme: str | None
    scenario: tuple[int | None, ...]
    figures: dict[str, dict[str, float | None]]

    @property
    def label(self) -> str:
        return f"{self.model} {self.scheme or 'own schemes'}"


MAX_REPORT_BYTES = 64 * 2**20  # a report.json of every target is a few hundred kilobytes


def _integer(text: str) -> int | float:
    """A JSON integer; one of more digits than an i64 has becomes a float (inf beyond 1e308), which `_number`
    refuses or keeps, without Python's slow and limited conversion of very long integers."""
    return int(text) if len(text) <= MAX_INT_DIGITS else float(text)


def _fail(path: str, message: str) -> Q35Error:
    return Q35Error(message, Location(path))


def _number(path: str, where: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _fail(path, f"{where}: expected a number or null, got {json.dumps(value)}")
    return float(value)


def parse_build(path: str, data: Any) -> Build:
    """A Build from the parsed JSON of `path`; Q35Error saying what is missing or of the wrong type."""
    if not isinstance(data, dict):
        raise _fail(path, f"not a q35c report: expected a JSON object, got {type(data).__name__}")
    for key in ("model", "targets"):
        if key not in data:
            raise _fail(path, f"not a q35c report: no '{key}' (write one with q35c build ... -o DIR)")
    if not isinstance(data["model"], str):
        raise _fail(path, "'model' must be a string")
    scheme = data.get("scheme")
    if scheme is not None and not isinstance(scheme, str):
        raise _fail(path, "'scheme' must be a string or null")
    targets = data["targets"]
    if not isinstance(targets, list) or not targets:
        raise _fail(path, "'targets' must be a non-empty list")
    figures: dict[str, dict[str, float | None]] = {}
    for i, entry in enumerate(targets):
        if not isinstance(entry, dict) or not isinstance(entry.get("target"), str):
            raise _fail(path, f"targets[{i}]: expected an object with a 'target' name")
        name = entry["target"]
        if name in figures:
            raise _fail(path, f"targets[{i}]: target '{name}' appears twice")
        row: dict[str, float | None] = {}
        for key, _, _ in METRICS:
            if key not in entry:
                raise _fail(path, f"targets[{i}] ({name}): no '{key}'")
            row[key] = _number(path, f"targets[{i}].{key}", entry[key])
        if entry.get("error") is not None or not row["devices"]:
            row.update(dict.fromkeys(NO_FIGURE_WITHOUT_DEVICES))  # does not fit: no figures, not 0 devices
        figures[name] = row
    scenario = tuple(data.get(key) if isinstance(data.get(key), int) else None for key in SCENARIO)
    return Build(path, data["model"], scheme, scenario, figures)


def load_build(path: str) -> Build:
    """Read a report.json (or DIR/report.json); Q35Error naming the file and the problem."""
    file = Path(path)
    if file.is_dir():
        file = file / "report.json"
        path = str(file)
    if not file.exists():
        raise _fail(path, "no such file")
    text = read_source(path, MAX_REPORT_BYTES, "a report.json")
    deep = too_deep(text, escapes=True)
    if deep is not None:
        line, col, context = line_col(text, deep)
        raise Q35Error(f"arrays and objects nest more than {MAX_NESTING} deep", Location(path, line, col), context)
    try:
        data = json.loads(text, parse_int=_integer)
    except json.JSONDecodeError as err:
        raise Q35Error(f"not valid JSON: {err.msg}", Location(path, err.lineno, err.colno)) from None
    return parse_build(path, data)


@dataclass(frozen=True)
class Row:
    """One target's values of one metric across the builds, and each build's ratio to the baseline's."""

    target: str
    values: tuple[float | None, ...]

    @property
    def ratios(self) -> tuple[float | None, ...]:
        base = self.values[0]
        return tuple(None if base is None or v is None or base == 0 else v / base for v in self.values)


@dataclass(frozen=True)
class Comparison:
    """Builds side by side: per metric, a row per target (in order of first appearance)."""

    builds: tuple[Build, ...]
    targets: tuple[str, ...]

    def row(self, key: str, target: str) -> Row:
        scale = SCALE.get(key, 1.0)
        values = []
        for b in self.builds:
            v = b.figures.get(target, {}).get(key)
            values.append(None if v is None else v * scale)
        return Row(target, tuple(values))

    def same_scenario(self) -> bool:
        return len({b.scenario for b in self.builds}) == 1

    def differences(self) -> dict[str, list[Any]]:
        """The fields (model, scheme, batch, prompt, gen) in which the builds differ: each build's value."""
        fields: dict[str, list[Any]] = {
            "model": [b.model for b in self.builds],
            "scheme": [b.scheme for b in self.builds],
            **{key: [b.scenario[i] for b in self.builds] for i, key in enumerate(SCENARIO)},
        }
        return {key: values for key, values in fields.items() if len(set(values)) > 1}

    def summary(self, key: str) -> list[dict[str, Any]]:
        """Per later build, against the baseline on the targets both have a figure for: how many improved,
        worsened and stayed the same (the ratio within SAME of 1), and the geometric mean of the ratios."""
        sign = 1 if direction(key) == "higher" else -1
        rows = [self.row(key, t).ratios for t in self.targets]
        out = []
        for i in range(1, len(self.builds)):
            ratios = [r[i] for r in rows if r[i] is not None and r[i] > 0]
            same = sum(abs(r - 1) < SAME for r in ratios)
            better = sum(sign * (r - 1) >= SAME for r in ratios)
            geomean = math.exp(sum(math.log(r) for r in ratios) / len(ratios)) if ratios else None
            worse = len(ratios) - better - same
            out.append({"build": i + 1, "targets": len(ratios), "improved": better, "worsened": worse,
                        "unchanged": same, "geomean_ratio": geomean})  # fmt: skip
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "baseline": self.builds[0].path,
            "builds": [
                {"path": b.path, "model": b.model, "scheme": b.scheme, **dict(zip(SCENARIO, b.scenario, strict=True))}
                for b in self.builds
            ],
            "metrics": {
                key: [
                    {"target": t, "values": list(r.values), "ratios": list(r.ratios)}
                    for t in self.targets
                    for r in (self.row(key, t),)
                ]
                for key, _, _ in METRICS
            },
            "differences": self.differences(),
            "summary": {key: {"better": direction(key), "builds": self.summary(key)} for key, _, _ in METRICS},
        }


def side_by_side(builds: Sequence[Build]) -> Comparison:
    """Compare `builds`, the first being the baseline."""
    targets = list(dict.fromkeys(t for b in builds for t in b.figures))
    return Comparison(tuple(builds), tuple(targets))


def _value(v: float | None, digits: int) -> str:
    if v is None:
        return "-"
    if v != 0 and abs(v) < 10 ** (-digits):
        return f"{v:.2g}"
    return f"{v:,.{digits}f}"


def _ratio(r: float | None) -> str:
    return "-" if r is None else f"{r:.2f}x"


def _align(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
            .rstrip() for row in rows]  # fmt: skip


def _field(value: Any) -> str:
    return "own schemes" if value is None else str(value)


def _summary(comparison: Comparison) -> list[str]:
    """Per metric: which way is better, and each later build's improved / worsened / same counts and geomean."""
    rows = [["metric", "better"] + [f"[{i}] vs [1]" for i in range(2, len(comparison.builds) + 1)]]
    for key, label, _ in METRICS:
        cells = [label, direction(key)]
        for s in comparison.summary(key):
            if not s["targets"]:
                cells.append("-")
                continue
            cells.append(f"{s['improved']} better, {s['worsened']} worse, {s['unchanged']} same; "
                         f"geomean {_ratio(s['geomean_ratio'])}")  # fmt: skip
        rows.append(cells)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]


def render_side_by_side(comparison: Comparison) -> str:
    """Text: the builds (numbered, [1] the baseline), a line per field they differ in, a summary per metric,
    then one block per metric with values and ratios."""
    builds = comparison.builds
    lines = []
    for i, b in enumerate(builds, start=1):
        scenario = ", ".join(f"{k} {v}" for k, v in zip(SCENARIO, b.scenario, strict=True) if v is not None)
        tag = " (baseline)" if i == 1 else ""
        lines.append(f"[{i}] {b.path}: {b.label}" + (f", {scenario}" if scenario else "") + tag)
    for key, values in comparison.differences().items():
        each = ", ".join(f"[{i}] {_field(v)}" for i, v in enumerate(values, start=1))
        lines.append(f"note: {key} differs: {each}")
    lines.append("ratios: build / baseline [1] on the same target; - where a build has no figure")
    if len(builds) > 1:
        lines += ["", "summary (targets with a figure in both; same = ratio 1.00x; geomean of the ratios):"]
        lines += _summary(comparison)
    headers = ["target", "[1]"]
    for i in range(2, len(builds) + 1):
        headers += [f"[{i}]", f"[{i}]/[1]"]
    for key, label, digits in METRICS:
        rows = [headers]
        for target in comparison.targets:
            row = comparison.row(key, target)
            cells = [target, _value(row.values[0], digits)]
            for v, r in zip(row.values[1:], row.ratios[1:], strict=True):
                cells += [_value(v, digits), _ratio(r)]
            rows.append(cells)
        lines += ["", f"{label} ({direction(key)} is better)", *_align(rows)]
    return "\n".join(lines)
