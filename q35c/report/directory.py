"""`q35c build MODEL --target ... -o DIR`: a report directory, written whole or not at all.

    DIR/report.json   `--format json`'s object, each target extended by its breakdown, roofline and sources
    DIR/report.md     the comparison, per-layer breakdown, roofline, assumptions, sources, IR (`q35c.report.markdown`)
    DIR/report.csv    one row per target
    DIR/*.png         throughput, energy, roofline, breakdown (`q35c.report.plots`)
    DIR/ir/<target>/decode/NN-<stage>.mlir    the decode step's IR after every stage (`q35c.report.ir`)
    DIR/ir/<target>/prefill/NN-<stage>.mlir   the prefill's: the two modules the figures are costed from
    DIR/accuracy.md, .json, .png              with `--accuracy` (a GGUF model): what --quant costs in accuracy

Everything is written into a temporary sibling (`.DIR.<pid>.tmp`) that is renamed to DIR at the end
(`q35c.util.output.AtomicDirectory`), so a build that fails (a model no target can hold, a stage that fails, an
interrupt) leaves nothing behind, and DIR's previous contents untouched. An existing DIR is replaced only if it
is an earlier report (it holds a `report.json`) or empty (`check_destination`, this module's rule): the old one
is renamed aside, the new one into place, then the old one removed. Any other existing path is refused (exit
2), so `-o` never deletes a directory that is not a q35c report.

The same inputs give byte-identical report.json, report.md and report.csv: they hold no dates and no paths
outside DIR.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from q35c.frontend import load_graph
from q35c.predict.predictor import Predictor, Report, Scenario, compare, resolve_targets, scenario_lengths
from q35c.report.build import BuildReport, IRModule, collect, ir_module
from q35c.report.ir import FINAL, StageChoice, TargetIR, dump_stages, stage_choices
from q35c.report.plots import load_matplotlib
from q35c.report.table import render_csv
from q35c.targets.target import get_target
from q35c.util.errors import Location, Q35Error
from q35c.util.output import AtomicDirectory
from q35c.util.progress import Progress


@dataclass(frozen=True)
class Request:
    """What to build: the model, scheme and targets, and the scenario as `compare` takes it."""

    model: str
    scheme: str | None
    targets: str
    batch: int = 1
    prompt: int | None = None
    gen: int | None = None
    devices: int | None = None
    options: tuple[tuple[str, str], ...] = ()
    tp: int | None = None
    pp: int | None = None
    ir_stages: str = FINAL  # which stages' IR ir/ holds (`StageChoice.parse`)


def check_destination(path: Path) -> None:
    """Q35Error unless `path` is free, an empty directory or an earlier report directory."""
    if not path.exists() and not path.is_symlink():
        return
    if path.is_dir() and not path.is_symlink() and ((path / "report.json").is_file() or not any(path.iterdir())):
        return
    raise Q35Error(
        f"{path} exists and is not a q35c report directory (no report.json): choose another -o, or remove it",
        Location(str(path)),
    )


def write_files(build: BuildReport, directory: Path) -> None:
    """report.json, report.md, report.csv and the plots, into an existing `directory`."""
    from q35c.report.markdown import render_markdown
    from q35c.report.plots import write_plots

    (directory / "report.json").write_text(json.dumps(build.to_json(), indent=2) + "\n", encoding="utf-8")
    (directory / "report.md").write_text(render_markdown(build), encoding="utf-8")
    (directory / "report.csv").write_text(render_csv(build.report), encoding="utf-8")
    write_plots(build, directory)


def planned_module(request: Request) -> IRModule | None:
    """The modules the report will dump, which are those its costs need, known before costing (the scenario
    `compare` derives from the same request); None for a request `compare` rejects."""
    graph = load_graph(request.model, quant=request.scheme)
    prompt, gen = scenario_lengths(request.prompt, request.gen, graph.max_context, graph.source)
    if request.batch < 1 or prompt + gen < 1:
        return None
    return ir_module(Report(request.model, request.scheme, Scenario(request.batch, prompt, gen)))


def planned_placements(request: Request, names: Sequence[str]) -> dict[str, dict[str, str]]:
    """The pipeline options of each target `compare` will place over several devices (`Predictor.placements`),
    known before anything is compiled, so that one dump compiles the modules the cost model needs."""
    graph = load_graph(request.model, quant=request.scheme)
    prompt, gen = scenario_lengths(request.prompt, request.gen, graph.max_context, graph.source)
    predictor = Predictor(request.model, request.scheme, Scenario(request.batch, prompt, gen))
    found = predictor.placements([get_target(n) for n in names], request.devices, request.tp, request.pp)
    return {name: placement.options() for name, placement in found.items()}


def build_report(
    request: Request,
    outdir: Path | str,
    progress: Progress | None = None,
    extra: Callable[[Path], str] | None = None,
) -> BuildReport:
    """Compile, dump the IR, predict, and write the report directory `outdir` (see the module docstring).
    `extra(directory)` writes more files into the directory being written (`q35c build --accuracy`: the
    accuracy study) and returns a section appended to report.md; a failure there leaves nothing, as any other.

    Each phase module the IR dumps show is compiled once, for both the dumps and the costs: the dumps are
    written while the cost model's compiles run (`dump_stages`), so `compare` finds every workload it needs
    compiled."""
    path = Path(outdir)
    check_destination(path)
    show = progress or Progress(sys.stderr, enabled=False)
    options: Mapping[str, str] = dict(request.options)
    names = resolve_targets(request.targets)
    stages = StageChoice.parse(request.ir_stages, stage_choices(names, options))
    plan = planned_module(request)
    show.note("cost model", f"compiling {request.model} (decode step and prefill) for {len(names)} target(s)")
    with AtomicDirectory(path) as out:

        def dump(module: IRModule, placed: Mapping[str, Mapping[str, str]] | None = None) -> dict[str, TargetIR]:
            ir_dir = out.tmp / "ir"
            shutil.rmtree(ir_dir, ignore_errors=True)
            phases = module.keys()
            # With pipeline options, `compare` sizes placed targets from this phase's module as is.
            sizing = "decode" if "decode" in phases else "prefill"
            return dump_stages(
                request.model,
                request.scheme,
                names,
                ir_dir,
                phases,
                options=options,
                progress=show,
                placements=placed,
                also=[(sizing, name) for name in placed or {}] if options else [],
                meanwhile=load_matplotlib,  # the plots' library loads while the workers compile
                stages=stages,
            )

        planned = {} if plan is None else planned_placements(request, names)
        ir = None if plan is None else dump(plan, planned)
        report = compare(
            request.model,
            request.scheme,
            request.targets,
            batch=request.batch,
            prompt=request.prompt,
            gen=request.gen,
            devices=request.devices,
            tp=request.tp,
            pp=request.pp,
            options=options,
        )
        placed = {r.target: r.placement.options() for r in report.targets if r.placement.devices > 1}
        if plan is None or plan != ir_module(report) or placed != planned:
            ir = dump(ir_module(report), placed)  # the modules compare costed: its scenario, sharded where placed
        assert ir is not None
        show.note("report", "report.json, report.md, report.csv, plots")
        build = collect(report, ir, request.options, request.devices)
        write_files(build, out.tmp)
        if extra is not None:
            section = extra(out.tmp)
            with (out.tmp / "report.md").open("a", encoding="utf-8") as markdown:
                markdown.write("\n" + section)
    return build
