"""Compile a model for a target: load it, run the target's pipeline stage by stage, report each stage.

    result = compile_model("llama-2-7b", "h100-sxm", callback=IRPrinter(sys.stderr, after_all=True))
    for stage in result.stages:
        print(stage.line())

Bad input (an unknown target, an unknown stage name, a pass that rejects the model such as a tile that cannot
fit) raises `Q35Error`, which the command line reports with exit status 2. `IRDirectory` writes the per-stage
dumps through a temporary sibling directory renamed into place only when the whole pipeline succeeded.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from xdsl.dialects.builtin import ModuleOp
from xdsl.utils.exceptions import DiagnosticException

from q35c.driver.pipeline import GRAPH_STAGE, IRDumper, Stage, StageCallback, make_context, run_stages, stage_names
from q35c.frontend import Model, load_model
from q35c.ir import attrs
from q35c.targets.spec import HardwareSpec, load_spec, spec_names
from q35c.util.errors import Location, Q35Error


@dataclass(frozen=True)
class StageReport:
    """What one stage did: its name, description, wall time and the size of the IR after it."""

    index: int
    name: str
    description: str
    seconds: float
    ops: int

    def line(self) -> str:
        time_text = "      -  " if self.index == 0 else f"{self.seconds:7.3f} s"
        return f"{self.index:02d} {self.name:<12} {time_text} {self.ops:>8,} ops  {self.description}"


@dataclass(frozen=True, eq=False)
class CompileResult:
    """A compiled model: the final module, the target's spec, the stages run and their reports."""

    model: Model
    spec: HardwareSpec
    module: ModuleOp
    stages: tuple[Stage, ...]
    reports: tuple[StageReport, ...]

    def peak_lines(self) -> list[str]:
        """Peak bytes per memory level, as recorded by schedule-memory (one line per level)."""
        tiles = attrs.tile_level(self.module)
        main = self.spec.main_memory
        lines: list[str] = []
        for name, value in attrs.peak_bytes(self.module).items():
            text = f"peak {name}: {value:,} B"
            if name == main.name:
                text += f" per model copy (a device has {main.capacity_bytes:,.0f} B)"
            elif tiles is not None and tiles[0] == name:
                text += f" per tile (budget {tiles[1]:,} B)"
            lines.append(text)
        return lines


def target_spec(name: str) -> HardwareSpec:
    """The spec of a target by name; Q35Error listing the valid names otherwise."""
    if name not in spec_names():
        raise Q35Error(f"unknown target '{name}' (valid targets: {', '.join(spec_names())})")
    try:
        return load_spec(name)
    except ValueError as err:
        raise Q35Error(str(err)) from None


def target_stages(spec: HardwareSpec, options: Mapping[str, Any] | None = None) -> tuple[Stage, ...]:
    """The target's pipeline; Q35Error for bad options."""
    from q35c.targets.pipeline import pipeline_for

    try:
        return pipeline_for(spec, options)
    except ValueError as err:
        raise Q35Error(str(err)) from None


def check_stage_names(names: Sequence[str], stages: Sequence[Stage]) -> None:
    """Q35Error if any of `names` is not a stage of the pipeline (the imported graph counts as `graph`)."""
    valid = stage_names(stages)
    for name in names:
        if name not in valid:
            raise Q35Error(f"unknown stage '{name}' (stages: {', '.join(valid)})")


def _count_ops(module: ModuleOp) -> int:
    return sum(1 for _ in module.walk())


def _message(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def compile_model(
    model: str | Model,
    target: str,
    options: Mapping[str, Any] | None = None,
    callback: StageCallback | None = None,
    *,
    quant: str | None = None,
    seq: int = 1,
    context: int = 0,
) -> CompileResult:
    """Load `model` (unless given loaded) and run `target`'s pipeline on it, calling `callback(index, stage,
    module)` after import (index 0, stage `graph`) and after every stage."""
    spec = target_spec(target)
    stages = target_stages(spec, options)
    loaded = model if isinstance(model, Model) else load_model(model, quant=quant, seq=seq, context=context)
    module = loaded.module
    ctx = make_context()
    reports = [StageReport(0, GRAPH_STAGE, "the model's q35 graph as imported", 0.0, _count_ops(module))]
    if callback is not None:
        callback(0, GRAPH_STAGE, module)
    for index, stage in enumerate(stages, start=1):
        start = time.perf_counter()
        try:
            run_stages(module, (stage,), ctx)
        except DiagnosticException as err:
            raise Q35Error(
                f"stage '{stage.name}' failed for {spec.name}: {_message(err)}", Location(loaded.path)
            ) from None
        seconds = time.perf_counter() - start
        reports.append(StageReport(index, stage.name, stage.description, seconds, _count_ops(module)))
        if callback is not None:
            callback(index, stage.name, module)
    return CompileResult(loaded, spec, module, stages, tuple(reports))


@dataclass
class IRDirectory:
    """A context manager for `--dump-ir DIR`: dumps go to a temporary sibling, renamed to DIR on success and
    removed on failure, so a failed build leaves DIR as it was.

        with IRDirectory(Path("ir")) as dumps:
            compile_model("tiny", "host", callback=dumps.dumper)
    """

    path: Path
    tmp: Path = field(init=False)
    dumper: IRDumper = field(init=False)

    def __post_init__(self) -> None:
        self.tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        self.dumper = IRDumper(self.tmp)

    def __enter__(self) -> IRDirectory:
        shutil.rmtree(self.tmp, ignore_errors=True)
        try:
            self.tmp.mkdir(parents=True)
        except OSError as err:
            raise Q35Error(f"cannot create {self.path}: {err.strerror}", Location(str(self.path))) from None
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if error is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        old = self.path.with_name(f".{self.path.name}.{os.getpid()}.old")
        try:
            if self.path.exists():
                os.replace(self.path, old)
            os.replace(self.tmp, self.path)
        except OSError as err:
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise Q35Error(f"cannot write {self.path}: {err.strerror}", Location(str(self.path))) from None
        shutil.rmtree(old, ignore_errors=True)
