"""Everything a report directory holds besides the comparison itself, gathered once: per target the per-layer
breakdown of each pass, its roofline points, the hardware figures it used with their sources, its efficiency
constants and the calibration rows behind them, and the IR files written for it.

    report = compare("llama-2-70b", "q3p5", "all")
    ir = dump_stages("llama-2-70b", "q3p5", [r.target for r in report.targets], Path("ir"), ir_module(report).keys())
    build = collect(report, ir)
    json.dumps(build.to_json())

The workloads come from `compare`'s cache (`q35c.driver.cache.CACHE`), so nothing is compiled again; the costs
from the targets' own cost models (`q35c.report.breakdown`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from q35c import __version__
from q35c.predict.predictor import Predictor, Report, TargetResult
from q35c.report.breakdown import Breakdown, breakdown
from q35c.report.ir import TargetIR
from q35c.report.roofline import RooflinePoint, roofline_point
from q35c.report.sources import Citation, citations
from q35c.targets.calibration import Efficiency, Row, rows_for
from q35c.targets.spec import spec_names
from q35c.targets.target import get_target

Options = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class TargetDetail:
    """What the report adds to one target's `TargetResult`."""

    target: str
    decode: Breakdown | None
    prefill: Breakdown | None
    roofline: tuple[RooflinePoint, ...]
    citations: tuple[Citation, ...]
    efficiency: Efficiency
    calibration: tuple[Row, ...]
    ir_files: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        e = self.efficiency
        return {
            "breakdown": {
                "decode": None if self.decode is None else self.decode.to_json(),
                "prefill": None if self.prefill is None else self.prefill.to_json(),
            },
            "roofline": [p.to_json() for p in self.roofline],
            "efficiency": {
                "bandwidth": e.bandwidth,
                "compute": e.compute,
                "kernel_overhead_s": e.kernel_overhead_s,
                "calibration_rows": [r.id for r in self.calibration],
            },
            "sources": [{"figure": c.path, **c.quantity.to_dict()} for c in self.citations],
            "ir_files": [f"ir/{f}" for f in self.ir_files],
        }


@dataclass(frozen=True)
class IRModule:
    """Which modules the IR dumps show, one per phase: (phase, T tokens, C cached tokens, B sequences) -- the
    modules the figures were costed from."""

    phases: tuple[tuple[str, int, int, int], ...]

    def keys(self) -> dict[str, tuple[int, int, int]]:
        """(T, C, B) by phase, as `dump_stages` takes them."""
        return {phase: (t, c, b) for phase, t, c, b in self.phases}

    def describe(self, phase: str) -> str:
        t, c, b = self.keys()[phase]
        if phase == "decode":
            return f"the decode step: {b} sequence(s) x T = {t} token after C = {c} cached tokens each"
        return f"the prefill: {b} sequence(s) x T = {t} prompt tokens, empty cache"

    def to_json(self) -> dict[str, Any]:
        return {
            phase: {"seq": t, "context": c, "batch": b, "description": self.describe(phase)}
            for phase, t, c, b in self.phases
        }


@dataclass(frozen=True)
class BuildReport:
    """A comparison plus the details a report directory shows for each target."""

    report: Report
    options: Options
    module: IRModule
    details: tuple[TargetDetail, ...]
    devices: int | None = None

    def detail(self, target: str) -> TargetDetail:
        return next(d for d in self.details if d.target == target)

    def command(self) -> str:
        """The `q35c build` command line that makes this report again (`DIR` standing for the directory)."""
        r, s = self.report, self.report.scenario
        names = [t.target for t in r.targets]
        parts = ["q35c build", r.model]
        if r.scheme is not None:
            parts.append(f"--quant {r.scheme}")
        parts.append(f"--target {'all' if names == spec_names() else ','.join(names)}")
        parts.append(f"--batch {s.batch} --prompt {s.prompt} --gen {s.gen}")
        if self.devices is not None:
            parts.append(f"--devices {self.devices}")
        parts += [f"--option {key}={value}" for key, value in self.options]
        return " ".join([*parts, "-o DIR"])

    def to_json(self) -> dict[str, Any]:
        """`--format json`'s object (model, scheme, scenario, targets), each target extended by its details."""
        data = self.report.to_json()
        data["q35c_version"] = __version__
        data["options"] = dict(self.options)
        data["devices_asked"] = self.devices
        data["command"] = self.command()
        data["ir_modules"] = self.module.to_json()
        for entry, detail in zip(data["targets"], self.details, strict=True):
            entry.update(detail.to_json())
        return data


def ir_module(report: Report) -> IRModule:
    """The modules a report dumps: those its figures are costed from (`Scenario.phases`)."""
    s = report.scenario
    return IRModule(tuple((phase, t, c, s.batch) for phase, (t, c) in s.phases().items()))


def _detail(report: Report, result: TargetResult, options: Options, ir: TargetIR | None) -> TargetDetail:
    target = get_target(result.target)
    files = () if ir is None else ir.files
    callers = {} if ir is None else ir.callers
    cited = tuple(citations(target.spec, result))
    rows = rows_for(target.family)
    if result.error is not None:
        return TargetDetail(result.target, None, None, (), cited, target.efficiency, rows, files)
    predictor = Predictor(report.model, report.scheme, report.scenario, options)
    parts: dict[str, Breakdown] = {}
    for phase in ("decode", "prefill"):
        work = predictor.placed(phase, target, result.placement)
        if work is not None:
            parts[phase] = breakdown(target, work, phase, callers=callers)
    points = [
        roofline_point(target.spec, phase, cost)
        for phase, cost in (("decode", result.decode), ("prefill", result.prefill))
        if cost is not None
    ]
    return TargetDetail(
        result.target,
        parts.get("decode"),
        parts.get("prefill"),
        tuple(p for p in points if p is not None),
        cited,
        target.efficiency,
        rows,
        files,
    )


def collect(
    report: Report, ir: Mapping[str, TargetIR], options: Options = (), devices: int | None = None
) -> BuildReport:
    """The details of every target of `report` (`ir` as `q35c.report.ir.dump_stages` returned it); `options` and
    `devices` as given to `compare`."""
    details = tuple(_detail(report, r, options, ir.get(r.target)) for r in report.targets)
    return BuildReport(report, options, ir_module(report), details, devices)
