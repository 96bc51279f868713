"""`report.md`: a report directory's readable summary, in Markdown.

Sections: the comparison table (the same columns as `q35c build --target`'s table) with its notes and plots;
where the time goes (the per-layer breakdown of each pass, from the cost model's per-kernel costs); the
roofline; the assumptions (scenario, efficiency constants and the calibration rows they were fitted to, what
is uncertain); the source of every hardware figure used; the IR files. The text depends only on the build's
inputs: no dates, no absolute paths, so two identical builds write identical files.
"""

from __future__ import annotations

from collections.abc import Sequence

from q35c.predict.predictor import Report
from q35c.report.breakdown import KIND_ORDER, Breakdown
from q35c.report.build import BuildReport, TargetDetail
from q35c.report.plots import PLOTS
from q35c.report.table import COLUMNS, LEFT, time_unit
from q35c.targets.spec import load_spec

REPORT_FILES = (
    ("report.md", "this summary"),
    ("report.json", "every figure unrounded, with each pass's full cost, breakdown, roofline points and sources"),
    ("report.csv", "one row per target, the JSON's scalar keys as columns"),
)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], left: Sequence[int] = (0,)) -> list[str]:
    """A Markdown table; columns not in `left` are right-aligned."""
    align = ["---" if i in left else "---:" for i in range(len(headers))]
    lines = ["| " + " | ".join(_cell(h) for h in headers) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def figure(value: float) -> str:
    """A spec value: integers with thousands separators, others in 4 significant digits."""
    if value == int(value) and abs(value) < 1e7:
        return f"{int(value):,}"
    return f"{value:.4g}"


def _time(seconds: float, scale: float) -> str:
    value = seconds * scale
    return f"{value:.3g}" if value < 100 else f"{value:,.0f}"


def scheme_text(report: Report) -> str:
    return f"`{report.scheme}`" if report.scheme else "the model's own schemes"


def comparison(report: Report) -> list[str]:
    s = report.scenario
    lines = ["## Comparison", ""]
    lines.append(
        f"{report.model}, {scheme_text(report)}: batch {s.batch}, a {s.prompt}-token prompt, {s.gen} generated "
        "tokens. Decode figures are one compiled step of the batch at the mean context of generation, rounded "
        "halves up (a step's cost is linear in its context); prefill tok/s = batch x prompt / TTFT; J/token and "
        "W/device during decode (W never above TDP); bottleneck (N%): the resource that bound the most of the "
        "decode step's time (the prefill's where there is no decode), N% its share of that time; roofline: the "
        "phase's roofline bound (per kernel, its slowest resource at the spec's rates, no efficiency or launch "
        "overhead, summed) / its predicted time, how close the prediction is to the roofline (the same measure "
        "as the Roofline section's). "
        "`value (low-high)`: the range of a figure with the specs' uncertain numbers at their bounds, the "
        "device count held (worst-case corners; see What is uncertain)."
    )
    lines.append("")
    headers = [name for name, _ in COLUMNS]
    left = [i for i, name in enumerate(headers) if name in LEFT]
    lines += table(headers, [[cell(r) for _, cell in COLUMNS] for r in report.targets], left)
    lines.append("")
    notes: dict[str, list[str]] = {}
    for r in report.targets:
        for note in (*r.notes, *(() if r.error is None else (r.error,))):
            notes.setdefault(note, []).append(r.target)
    lines += [f"- {', '.join(names)}: {note}" for note, names in notes.items()]
    lines += ["", f"![{PLOTS['throughput']}](throughput.png)", "", f"![{PLOTS['energy']}](energy.png)", ""]
    return lines


def _kinds(parts: Sequence[Breakdown]) -> list[str]:
    present = {kind for b in parts for kind, _, _ in b.by_kind()}
    return [k for k in KIND_ORDER if k in present] + sorted(present - set(KIND_ORDER))


def _phase_table(build: BuildReport, phase: str) -> list[str]:
    rows: list[tuple[str, Breakdown]] = []
    for d in build.details:
        b = d.decode if phase == "decode" else d.prefill
        if b is not None:
            rows.append((d.target, b))
    if not rows:
        return []
    kinds = _kinds([b for _, b in rows])
    unit, scale = time_unit(max(b.seconds for _, b in rows))
    headers = ["target", *kinds, f"total {unit}"]
    body: list[list[str]] = []
    for name, b in rows:
        found = {k: s for k, s, _ in b.by_kind()}
        cells = [f"{_time(found[k], scale)} ({100 * found[k] / b.seconds:.0f}%)" if k in found else "-" for k in kinds]
        body.append([name, *cells, _time(b.seconds, scale)])
    what = "per decode step (share of the step)" if phase == "decode" else "of the prefill (share of TTFT)"
    return [f"**{phase.capitalize()}**: {unit} {what}.", "", *table(headers, body), ""]


def _kernel_details(detail: TargetDetail) -> list[str]:
    passes = [b for b in (detail.decode, detail.prefill) if b is not None]
    if not passes:
        return []
    unit, scale = time_unit(max(b.seconds for b in passes))
    body: list[list[str]] = []
    for b in passes:
        for p in b.parts:
            share = 100 * p.cost.seconds / b.seconds if b.seconds else 0.0
            body.append([b.phase, p.kind, p.label, str(p.calls), _time(p.cost.seconds, scale), f"{share:.1f}%",
                         p.cost.bottleneck])  # fmt: skip
        if b.communication.seconds > 0:
            c = b.communication
            body.append([b.phase, "communication", "device links", "-", _time(c.seconds, scale),
                         f"{100 * c.seconds / b.seconds:.1f}%", c.bottleneck])  # fmt: skip
    headers = ["phase", "kind", "kernel", "calls", unit, "share", "bound by"]
    lines = [f"<details><summary>{detail.target}: every kernel</summary>", ""]
    return [*lines, *table(headers, body, left=(0, 1, 2, 6)), "", "</details>", ""]


def breakdown_section(build: BuildReport) -> list[str]:
    lines = ["## Where the time goes", ""]
    lines.append(
        "Each pass's time by kind of layer, from the cost model's own per-kernel costs (each kernel's cost times "
        "its calls per pass, plus device-to-device communication): the parts add up to ms/token and TTFT above. "
        "Matmul kernels are assigned by the weights they are called with in the final IR (attention projections: "
        "q, k, v, o; MLP projections: gate, up, down); attention includes rope."
    )
    lines.append("")
    lines += _phase_table(build, "decode")
    lines += _phase_table(build, "prefill")
    lines += [f"![{PLOTS['breakdown']}](breakdown.png)", ""]
    for d in build.details:
        lines += _kernel_details(d)
    return lines


def roofline_section(build: BuildReport) -> list[str]:
    lines = ["## Roofline", ""]
    lines.append(
        "Per working device: ops are everything the cost model charged to a compute unit (a MAC counts 2; "
        "unpacking and element-wise ops included), bytes the traffic to the memory level the weights live in. "
        "`bound` = ops / the roofline bound (per kernel, its slowest resource at the spec's rates, summed); "
        "`roofline` = the roofline bound / the predicted time = achieved / bound, the Comparison's `roofline` "
        "column. The spec roof is min(peak, intensity x bandwidth) with the highest spec peak among the units "
        "and dtypes the pass used and that memory level's bandwidth; a bound far below it means another "
        "resource set the time (`bound by`: the resources that bound the most, with their shares of the time)."
    )
    lines.append("")
    body: list[list[str]] = []
    for d in build.details:
        for p in d.roofline:
            body.append([
                d.target,
                p.phase,
                f"{p.intensity:.3g}",
                f"{p.achieved_ops_per_s / 1e12:.3g}",
                f"{p.bound_ops_per_s / 1e12:.3g}",
                "-" if p.roofline_fraction is None else f"{100 * p.roofline_fraction:.0f}%",
                f"{p.roof_ops_per_s / 1e12:.3g}",
                f"{p.peak} {p.peak_ops_per_s / 1e12:.4g} T, {p.memory} {p.bandwidth_bytes_per_s / 1e12:.4g} TB/s",
                p.bound_by(),
            ])  # fmt: skip
    headers = ["target", "phase", "ops/byte", "achieved Tops/s", "bound Tops/s", "roofline", "spec roof Tops/s",
               "peak, bandwidth", "bound by"]  # fmt: skip
    lines += table(headers, body, left=(0, 1, 7, 8))
    lines += ["", f"![{PLOTS['roofline']}](roofline.png)", ""]
    return lines


def _efficiency_rows(build: BuildReport) -> tuple[list[list[str]], list[list[str]]]:
    families: dict[str, tuple[TargetDetail, list[str]]] = {}
    for d in build.details:
        family = next(r.family for r in build.report.targets if r.target == d.target)
        families.setdefault(family, (d, []))[1].append(d.target)
    eff_rows: list[list[str]] = []
    cal_rows: list[list[str]] = []
    for family, (d, names) in families.items():
        e = d.efficiency
        ids = ", ".join(r.id for r in d.calibration) or "none (nothing fitted)"
        eff_rows.append([family, ", ".join(names), f"{e.bandwidth:.3g}", f"{e.compute:.3g}",
                         f"{e.kernel_overhead_s * 1e6:.3g} us", ids])  # fmt: skip
        for r in d.calibration:
            cal_rows.append([r.id, r.target, r.model, r.scheme, r.phase, f"{r.batch}/{r.prompt}/{r.gen}",
                             f"{r.measured_tok_s:g}", r.source])  # fmt: skip
    return eff_rows, cal_rows


def _uncertain(build: BuildReport) -> list[str]:
    found: dict[str, list[str]] = {}
    for d in build.details:
        for c in d.citations:
            q = c.quantity
            if q.confidence == "uncertain":
                spread = "" if q.bounds is None else f" ({figure(q.bounds[0])}-{figure(q.bounds[1])})"
                found.setdefault(f"`{c.path}` = {figure(q.value)}{spread}: {q.note}", []).append(d.target)
    return [f"- {', '.join(names)}: {text}" for text, names in found.items()]


def assumptions(build: BuildReport) -> list[str]:
    s = build.report.scenario
    lines = ["## Assumptions", ""]
    items = [
        f"Scenario: batch {s.batch}, prompt {s.prompt} tokens, {s.gen} generated tokens"
        + (f", {build.devices} device(s) asked for" if build.devices else ", the fewest devices that hold the model")
        + (f"; pipeline options {', '.join(f'{k}={v}' for k, v in build.options)}" if build.options else "")
        + ".",
        f"Decode: one step of {s.batch} sequence(s) x T = 1 token, compiled at C = {s.decode_context()} cached "
        f"tokens each: the mean context of generation, P + (G - 1) / 2 = {s.prompt + (s.gen - 1) / 2:g}, rounded "
        "to the nearest integer, halves up; a step's cost is linear in its context, so this is the mean over the "
        "generated tokens (half a token above it for an even G).",
        f"Prefill: {s.batch} sequence(s) x T = {s.prompt} tokens with an empty cache; TTFT is its time.",
        "The batch is compiled into both modules (B*T activation rows, B*C KV-cache rows); no count is scaled "
        "after compilation.",
        "Devices: the fewest that hold weights, the KV cache at prompt + generated tokens for the whole batch, "
        "and a decode step's live activations (GPUs: a power of two, tensor parallel; Groq: chips in a pipeline "
        "of tensor-parallel groups).",
        "Energy: bytes x pJ/bit of each memory level plus ops x pJ/op, plus static power x devices x time; a "
        "kernel whose dynamic power would exceed TDP - static is slowed to fit (bottleneck `power (TDP)`).",
        "Costs come from the IR each target's pipeline produced (see IR below), never from a parameter count.",
    ]
    lines += [f"- {item}" for item in items]
    eff_rows, cal_rows = _efficiency_rows(build)
    lines += ["", "Efficiency constants: a few per target family, fitted only to published measurements (the "
              "calibration rows below); nothing else is tuned.", ""]  # fmt: skip
    lines += table(["family", "targets", "bandwidth", "compute", "per kernel", "calibration rows"], eff_rows,
                   left=(0, 1, 5))  # fmt: skip
    if cal_rows:
        lines += ["", "Calibration rows (batch/prompt/gen; measured tokens/s):", ""]
        headers = ["id", "target", "model", "scheme", "phase", "B/P/G", "measured tok/s", "source"]
        lines += table(headers, cal_rows, left=(0, 1, 2, 3, 4, 7))
    lines += ["", "### What is uncertain", ""]
    lines.append(
        "Hardware figures this report used that their spec marks uncertain (an estimate or an assumption; each "
        "spec's note says why), with the low and high each spec gives. The ranges in the comparison cost the same "
        "compiled workloads with these numbers at their bounds, first one at a time, then all at once at the "
        "corner that moves each figure furthest either way; the range holds the value, the corner and every "
        "one-at-a-time result. Numbers that set the device count (main-memory capacity, system limits) are held:"
    )
    lines += ["", *(_uncertain(build) or ["- none"]), ""]
    lines.append(
        "Also: per-op energies are 45 nm reference values unless a spec scales them (likely overestimates); "
        "a re-read inside a kernel is served by the nearest level whose capacity holds its working set, with no "
        "partial hits and no other kernel's data in a shared cache; on-chip levels without a bandwidth figure "
        "cost bytes and energy, not time. The efficiency constants rest on the few calibration rows listed; "
        "families without rows run at their spec's peaks."
    )
    lines.append("")
    return lines


def sources(build: BuildReport) -> list[str]:
    lines = ["## Hardware figures and their sources", ""]
    lines.append(
        "Every hardware number the predictions used, per target, as its spec (`targets/specs/<target>.toml`) "
        "states it: value, confidence (sourced, derived, uncertain, measured) and source, with the derivation or "
        "the reason for doubt."
    )
    lines.append("")
    for d in build.details:
        spec = load_spec(d.target)
        lines += [f"### {d.target}", "", spec.description, ""]
        body = [[f"`{c.path}`", figure(c.quantity.value), c.quantity.confidence,
                 c.quantity.source + (f": {c.quantity.note}" if c.quantity.note else "")]
                for c in d.citations]  # fmt: skip
        lines += table(["figure", "value", "confidence", "source"], body, left=(0, 2, 3))
        lines.append("")
    return lines


def ir_section(build: BuildReport) -> list[str]:
    lines = ["## IR", ""]
    lines.append(
        "`ir/<target>/<phase>/NN-<stage>.mlir` holds the IR of each target's pipeline for the modules the "
        "figures were costed from: "
        + "; ".join(f"`{phase}/`, {build.module.describe(phase)}" for phase, _, _, _ in build.module.phases)
        + ". `00-graph.mlir` is the q35 graph as imported; the highest number is the final IR, the one the "
        "target's cost model read (`q35c cost FILE --target T` prints its workload and cost again). By default "
        "only these two are written; `--ir-stages all` writes the IR after every stage (NN numbers the stage in "
        "the pipeline), `--ir-stages tile,unpack` the stages named. Stages the targets share are compiled once "
        "(identical files)."
    )
    lines.append("")
    body = [[d.target, ", ".join(f.split("/", 1)[1].removesuffix(".mlir") for f in d.ir_files)]
            for d in build.details]  # fmt: skip
    lines += table(["target", "ir/<target>/"], body, left=(0, 1))
    lines.append("")
    return lines


def files_section() -> list[str]:
    lines = ["## Files", ""]
    lines += [f"- `{name}`: {what}" for name, what in REPORT_FILES]
    lines += [f"- `{name}.png`: {what}" for name, what in PLOTS.items()]
    lines += ["- `ir/`: the IR of every stage of each phase (decode/, prefill/) for every target (above)", ""]
    return lines


def render_markdown(build: BuildReport) -> str:
    """The whole report.md."""
    report = build.report
    title = f"# {report.model}, {report.scheme or 'own schemes'}: {len(report.targets)} target(s)"
    intro = [
        title,
        "",
        f"What {report.model} quantized with {scheme_text(report)} would do on each target, predicted by q35c's "
        "cost model from the IR each target's pipeline produced and the targets' hardware specs. Made with:",
        "",
        f"    {build.command()}",
        "",
    ]
    sections = [
        comparison(report),
        breakdown_section(build),
        roofline_section(build),
        assumptions(build),
        sources(build),
        ir_section(build),
        files_section(),
    ]
    lines = intro + [line for section in sections for line in section]
    return "\n".join(lines).rstrip() + "\n"
