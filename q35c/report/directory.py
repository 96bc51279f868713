"""`q35c build MODEL --target ... -o DIR`: a report directory, written whole or not at all.

    DIR/report.json   `--format json`'s object, each target extended by its breakdown, roofline and sources
    DIR/report.md     the comparison, per-layer breakdown, roofline, assumptions, sources, IR (`q35c.report.markdown`)
    DIR/report.csv    one row per target
    DIR/*.png         throughput, energy, roofline, breakdown (`q35c.report.plots`)
    DIR/ir/<target>/NN-<stage>.mlir   the decode step's IR after every stage (`q35c.report.ir`)

Everything is written into a temporary sibling (`.DIR.<pid>.tmp`) that is renamed to DIR at the end, so a
build that fails (a model no target can hold, a stage that fails, an interrupt) leaves nothing behind, and
DIR's previous contents untouched. An existing DIR is replaced only if it is an earlier report (it holds a
`report.json`) or empty: the old one is renamed aside, the new one into place, then the old one removed. Any
other existing path is refused (exit 2), so `-o` never deletes a directory that is not a q35c report.

The same inputs give byte-identical report.json, report.md and report.csv: they hold no dates and no paths
outside DIR.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from q35c.predict.predictor import compare, resolve_targets
from q35c.report.build import BuildReport, collect, ir_module
from q35c.report.ir import dump_stages
from q35c.report.table import render_csv
from q35c.util.errors import Location, Q35Error
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


def _missing_parents(path: Path) -> list[Path]:
    """The ancestors of `path` that do not exist yet, innermost first."""
    missing: list[Path] = []
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        missing.append(parent)
        parent = parent.parent
    return missing


def _replace(tmp: Path, path: Path) -> None:
    """Move `tmp` into place as `path`, setting an earlier report aside first and removing it after."""
    old = path.with_name(f".{path.name}.{os.getpid()}.old")
    moved = False
    try:
        if path.exists():
            os.replace(path, old)
            moved = True
        os.replace(tmp, path)
    except OSError as err:
        if moved and not path.exists():
            os.replace(old, path)
        raise Q35Error(f"cannot write {path}: {err.strerror}", Location(str(path))) from None
    if moved:
        shutil.rmtree(old, ignore_errors=True)


def write_files(build: BuildReport, directory: Path) -> None:
    """report.json, report.md, report.csv and the plots, into an existing `directory`."""
    from q35c.report.markdown import render_markdown
    from q35c.report.plots import write_plots

    (directory / "report.json").write_text(json.dumps(build.to_json(), indent=2) + "\n", encoding="utf-8")
    (directory / "report.md").write_text(render_markdown(build), encoding="utf-8")
    (directory / "report.csv").write_text(render_csv(build.report), encoding="utf-8")
    write_plots(build, directory)


def build_report(request: Request, outdir: Path | str, progress: Progress | None = None) -> BuildReport:
    """Predict, dump the IR, and write the report directory `outdir` (see the module docstring)."""
    path = Path(outdir)
    check_destination(path)
    show = progress or Progress(sys.stderr, enabled=False)
    options: Mapping[str, str] = dict(request.options)
    count = len(resolve_targets(request.targets))
    show.note("cost model", f"compiling {request.model} (decode step and prefill) for {count} target(s)")
    report = compare(
        request.model,
        request.scheme,
        request.targets,
        batch=request.batch,
        prompt=request.prompt,
        gen=request.gen,
        devices=request.devices,
        options=options,
    )
    names = [r.target for r in report.targets]
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    created = _missing_parents(path)
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            tmp.mkdir(parents=True)
        except OSError as err:
            raise Q35Error(f"cannot create {path}: {err.strerror}", Location(str(path))) from None
        module = ir_module(report)
        ir = dump_stages(
            request.model,
            request.scheme,
            names,
            tmp / "ir",
            seq=module.seq,
            context=module.context,
            options=options,
            progress=show,
        )
        show.note("report", "report.json, report.md, report.csv, plots")
        build = collect(report, ir, request.options, request.devices)
        write_files(build, tmp)
        _replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for parent in created:
            try:
                parent.rmdir()
            except OSError:
                break
        raise
    return build
