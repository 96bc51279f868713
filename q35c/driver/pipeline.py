"""Pipelines: a target's ordered, named stages of passes, run with a callback after each stage.

The callback is how `--print-ir-after-all`, `--print-ir-after=STAGE` and `--dump-ir DIR` work: stage 0 is the
graph IR as imported (named `graph`), stage i the IR after the i-th stage, and the last one the final IR.

    stages = (Stage("unpack", (UnpackBitsPass(),)), Stage("tile", (TilePass(),)))
    run_stages(module, stages, make_context(), IRPrinter(sys.stderr, after_all=True))
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation
from xdsl.passes import ModulePass
from xdsl.printer import Printer

GRAPH_STAGE = "graph"

# Called after each stage with (index, stage name, module); index 0 is the imported graph.
StageCallback = Callable[[int, str, ModuleOp], None]


@dataclass(frozen=True)
class Stage:
    """One named step of a target's pipeline: the passes it runs, in order."""

    name: str
    passes: tuple[ModulePass, ...]
    description: str = ""


def make_context() -> Context:
    """A context with every dialect q35c reads or writes: q35 and the upstream ones lowering produces."""
    from xdsl.dialects import get_all_dialects

    from q35c.universe import DIALECTS

    ctx = Context()
    for name, factory in {**get_all_dialects(), **DIALECTS}.items():
        ctx.register_dialect(name, factory)
    return ctx


def module_text(module: Operation) -> str:
    """A module (or any op) as MLIR text in the custom (pretty) form, which mlir-opt reads too."""
    out = io.StringIO()
    Printer(stream=out).print_op(module)
    return out.getvalue()


def stage_names(stages: Sequence[Stage]) -> list[str]:
    return [GRAPH_STAGE, *(stage.name for stage in stages)]


def run_stages(
    module: ModuleOp, stages: Sequence[Stage], ctx: Context, callback: StageCallback | None = None
) -> ModuleOp:
    """Run `stages` over `module` in place, verifying after each stage, and return it."""
    if callback is not None:
        callback(0, GRAPH_STAGE, module)
    for index, stage in enumerate(stages, start=1):
        for p in stage.passes:
            p.apply(ctx, module)
        module.verify()
        if callback is not None:
            callback(index, stage.name, module)
    return module


def dump_header(stage: str) -> str:
    """The MLIR-style header printed before a stage's IR."""
    return f"// -----// IR Dump After {stage} //----- //"


@dataclass
class IRPrinter:
    """Prints the IR after all stages, or after the named ones, to a stream (stderr on the command line)."""

    stream: TextIO
    after_all: bool = False
    after: frozenset[str] = frozenset()

    def __call__(self, index: int, stage: str, module: ModuleOp) -> None:
        if self.after_all or stage in self.after:
            self.stream.write(f"{dump_header(stage)}\n{module_text(module)}\n\n")


@dataclass
class IRDumper:
    """Writes `NN-<stage>.mlir` for every stage into `directory` (created if needed)."""

    directory: Path
    written: list[Path] = field(default_factory=list[Path])

    def __call__(self, index: int, stage: str, module: ModuleOp) -> None:
        os.makedirs(self.directory, exist_ok=True)
        path = self.directory / f"{index:02d}-{stage}.mlir"
        path.write_text(module_text(module) + "\n")
        self.written.append(path)


def chain(*callbacks: StageCallback | None) -> StageCallback:
    """One callback that calls each of the given ones in turn."""
    active = [c for c in callbacks if c is not None]

    def call(index: int, stage: str, module: ModuleOp) -> None:
        for c in active:
            c(index, stage, module)

    return call
