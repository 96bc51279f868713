"""`Stage`: one named step of a target's pipeline, the unit the targets declare and the driver runs.

A target's pipeline (`Target.pipeline`, `targets.pipeline`) is a tuple of stages; `q35c.driver.pipeline.Runner`
applies them with a callback after each (`--print-ir-after`, `--dump-ir`). Stages are frozen and compare by their
passes and options, so equal pipelines can share a compile.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.passes import ModulePass


@dataclass(frozen=True)
class Stage:
    """One named step of a target's pipeline: the passes it runs, in order."""

    name: str
    passes: tuple[ModulePass, ...]
    description: str = ""
