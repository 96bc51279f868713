"""Compile a model for a target: load it, run the target's pipeline stage by stage, report each stage.

    result = compile_model("llama-2-7b", "h100-sxm", callback=IRPrinter(sys.stderr, after_all=True))
    for stage in result.stages:
        print(stage.line())

Bad input (an unknown target, an unknown stage name, a pass that rejects the model such as a tile that cannot
fit) raises `Q35Error`, which the command line reports with exit status 2 (the rules of
`q35c.driver.pipeline.Runner`, verifying after every stage). `IRDirectory` writes the per-stage dumps through a
temporary sibling directory renamed into place only when the whole pipeline succeeded.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from xdsl.dialects.builtin import ModuleOp

from q35c.driver.pipeline import GRAPH_STAGE, IRDumper, Runner, Stage, StageCallback, chain, stage_names
from q35c.frontend import Model, load_model
from q35c.ir import attrs
from q35c.targets.registry import get_target
from q35c.targets.spec import HardwareSpec
from q35c.util.errors import Q35Error
from q35c.util.output import AtomicDirectory


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
                text += (
                    f" per model copy (a device has {main.usable_bytes:,.0f} B usable of {main.capacity_bytes:,.0f} B)"
                )
            elif tiles is not None and tiles[0] == name:
                text += f" per tile (budget {tiles[1]:,} B)"
            lines.append(text)
        return lines


def check_stage_names(names: Sequence[str], stages: Sequence[Stage]) -> None:
    """Q35Error if any of `names` is not a stage of the pipeline (the imported graph counts as `graph`)."""
    valid = stage_names(stages)
    for name in names:
        if name not in valid:
            raise Q35Error(f"unknown stage '{name}' (stages: {', '.join(valid)})")


def _count_ops(module: ModuleOp) -> int:
    return sum(1 for _ in module.walk())


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
    chosen = get_target(target)
    spec, stages = chosen.spec, chosen.pipeline(options)
    loaded = model if isinstance(model, Model) else load_model(model, quant=quant, seq=seq, context=context)
    counts: list[int] = []

    def count(index: int, stage: str, module: ModuleOp) -> None:
        counts.append(_count_ops(module))

    runner = Runner(verify=True, target=spec.name, source=loaded.path)
    seconds = runner.run(loaded.module, stages, chain(count, callback))
    reports = [StageReport(0, GRAPH_STAGE, "the model's q35 graph as imported", 0.0, counts[0])]
    for index, stage in enumerate(stages, start=1):
        reports.append(StageReport(index, stage.name, stage.description, seconds[index - 1], counts[index]))
    return CompileResult(loaded, spec, loaded.module, stages, tuple(reports))


@dataclass
class IRDirectory(AtomicDirectory):
    """A context manager for `--dump-ir DIR`: an `AtomicDirectory` whose `dumper` writes the stages' IR into it, so
    a failed build leaves DIR as it was.

        with IRDirectory(Path("ir")) as dumps:
            compile_model("tiny", "host", callback=dumps.dumper)
    """

    dumper: IRDumper = field(init=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.dumper = IRDumper(self.tmp)

    def __enter__(self) -> IRDirectory:
        super().__enter__()
        return self


def compile_phases(
    keys: Mapping[str, tuple[str, str | None, int, int, int]],
    target: str,
    options: Mapping[str, Any] | None = None,
    callback: Callable[[str], StageCallback | None] | None = None,
    on_phase: Callable[[str, CompileResult], None] | None = None,
) -> dict[str, CompileResult]:
    """Compile the module of each phase (by name: `decode`, `prefill`; a cache key (model, scheme, T, C, B)
    each) for `target`, verified after every stage, with `callback(phase)` after each stage; and keep each
    final module's workload in the cost model's cache (`q35c.driver.cache.CACHE`), so costing the same phases
    compiles nothing again. `on_phase` is called with each phase's result as soon as it is compiled."""
    from q35c.analysis.workload import extract
    from q35c.driver.cache import CACHE

    results: dict[str, CompileResult] = {}
    for phase, key in keys.items():
        model, scheme, seq, context, batch = key
        loaded = load_model(model, quant=scheme, seq=seq, context=context, batch=batch)
        result = compile_model(loaded, target, options, None if callback is None else callback(phase))
        CACHE.found[(key, result.stages)] = extract(result.module, batch=batch)
        results[phase] = result
        if on_phase is not None:
            on_phase(phase, result)
    return results
