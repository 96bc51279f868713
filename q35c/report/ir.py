"""The IR of every pipeline stage for every target, written as `ir/<target>/NN-<stage>.mlir` in a report.

`dump_stages(model, scheme, targets, directory, context=C)` loads the model once as a decode step (T = 1 token
after C cached ones) and runs the targets' pipelines as a tree: stages that targets share (materializing
weights, lowering the graph) run once and their IR is printed once, then written into each target's folder.
`00-graph.mlir` is the imported q35 graph, the highest number the final IR the target's cost model reads.

Where the pipelines part (each target's tile sizes), the branches run in parallel forked processes on a machine
with several cores, as `q35c.driver.cache` does for the cost model's compiles. It also returns, per target, which
weights each kernel function of the final IR is called with (`callers`), which is how a report tells the
attention projections from the MLP's in the per-layer breakdown.
"""

from __future__ import annotations

import multiprocessing
import os
import re
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty
from typing import Any

from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import BlockArgument, SSAValue
from xdsl.utils.exceptions import DiagnosticException

from q35c.dialects.q35_storage import CODES
from q35c.driver.pipeline import GRAPH_STAGE, Stage, make_context, module_text
from q35c.frontend import load_model
from q35c.ir import attrs
from q35c.targets.target import get_target
from q35c.util.errors import Location, Q35Error
from q35c.util.progress import Progress

_SHAPE = re.compile(r"\.\d+x")


@dataclass(frozen=True)
class TargetIR:
    """What the dumps of one target hold: its files (relative to the report directory) and, per kernel function
    of its final IR, the weights it is called with (`q_proj`, `o_proj`: the weights' names in their block)."""

    target: str
    files: tuple[str, ...]
    callers: Mapping[str, tuple[str, ...]]


def kernel_key(function: str) -> str:
    """A kernel function's name without the tokens in flight (`linear.1x8192x8192.q3p5...` -> `linear.8192x8192.
    q3p5...`), so that a decode step's and a prefill's versions of one kernel match."""
    return _SHAPE.sub(".", function, count=1)


def kernel_callers(module: ModuleOp) -> dict[str, tuple[str, ...]]:
    """For each kernel function (`q35.kernel` on a `func.func`), the weights passed to it at its call sites: the
    parameters of the `codes` storage arguments, last component only (`decoder.3.q_proj` -> `q_proj`)."""
    kernels = {op.sym_name.data for op in module.ops if isinstance(op, func.FuncOp) and attrs.kernel_kind(op)}
    callers = attrs.first_callers(module)
    found: dict[str, list[str]] = {}
    for op in module.walk():
        if not isinstance(op, func.CallOp):
            continue
        callee = op.callee.string_value()
        if callee not in kernels:
            continue
        names = found.setdefault(kernel_key(callee), [])
        for value in op.arguments:
            if not _is_codes(value):
                continue
            param = attrs.weight_param(value, callers)
            if param is not None and (name := param.rsplit(".", 1)[-1]) not in names:
                names.append(name)
    return {key: tuple(names) for key, names in sorted(found.items())}


def _is_codes(value: SSAValue) -> bool:
    """Whether a value is a weight's `codes` storage argument (`q35.storage = "codes"`)."""
    return isinstance(value, BlockArgument) and attrs.arg_attr(value, attrs.STORAGE_ATTR) == CODES


def _apply(stage: Stage, module: ModuleOp, target: str, source: str) -> None:
    """Run one stage's passes, as the cost model's compiles do (`q35c.driver.cache`: verified by the tests, not on
    every build, since verifying a 70B model's IR after every stage of every target costs seconds)."""
    try:
        for p in stage.passes:
            p.apply(_CONTEXT, module)
    except DiagnosticException as err:
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise Q35Error(f"stage '{stage.name}' failed for {target}: {message}", Location(source)) from None


_CONTEXT = make_context()
Branch = tuple[Stage, tuple[str, ...]]  # the next stage and the targets whose pipelines run it


@dataclass
class _Tree:
    """The targets' pipelines run as a tree over one loaded module, writing each stage's IR once per target."""

    directory: Path
    pipelines: Mapping[str, tuple[Stage, ...]]
    source: str
    on_step: Callable[[str, str], None]
    files: dict[str, list[str]] = field(default_factory=dict[str, list[str]])
    callers: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict[str, dict[str, tuple[str, ...]]])

    def write(self, names: Sequence[str], index: int, stage: str, module: ModuleOp) -> None:
        text = module_text(module) + "\n"
        for name in names:
            relative = f"{name}/{index:02d}-{stage}.mlir"
            (self.directory / relative).write_text(text, encoding="utf-8")
            self.files.setdefault(name, []).append(relative)
        self.on_step(names[0] if len(names) == 1 else f"{len(names)} targets", stage)

    def branches(self, module: ModuleOp, depth: int, names: Sequence[str]) -> list[Branch]:
        """The stages that follow `depth` (targets whose pipeline ends there get their callers recorded)."""
        found: dict[Stage, list[str]] = {}
        for name in names:
            if len(self.pipelines[name]) == depth:
                self.callers[name] = kernel_callers(module)
            else:
                found.setdefault(self.pipelines[name][depth], []).append(name)
        return [(stage, tuple(members)) for stage, members in found.items()]

    def run(self, module: ModuleOp, depth: int, branch: Branch) -> None:
        """Apply `branch`'s stage to `module` (in place), write its IR, and go on down the tree."""
        stage, names = branch
        _apply(stage, module, names[0], self.source)
        self.write(names, depth + 1, stage.name, module)
        following = self.branches(module, depth + 1, names)
        for position, nxt in enumerate(following):
            self.run(module if position == len(following) - 1 else module.clone(), depth + 1, nxt)

    def trunk(self, module: ModuleOp, names: Sequence[str]) -> tuple[int, list[Branch]]:
        """Run the stages every target shares; (depth reached, the branches from there)."""
        depth = 0
        following = self.branches(module, depth, names)
        while len(following) == 1 and following[0][1] == tuple(names):
            stage = following[0][0]
            _apply(stage, module, names[0], self.source)
            self.write(names, depth + 1, stage.name, module)
            depth += 1
            following = self.branches(module, depth, names)
        return depth, following


# What a forked worker needs: the tree, the module at the end of the trunk, its depth, the branches, a queue.
_FORKED: tuple[_Tree, ModuleOp, int, list[Branch], Any] | None = None


def _run_branch(index: int) -> tuple[dict[str, list[str]], dict[str, dict[str, tuple[str, ...]]]]:
    """In a forked worker: run branch `index` on a copy of the trunk's module; the files and callers it found."""
    assert _FORKED is not None
    tree, module, depth, branches, queue = _FORKED
    mine = _Tree(tree.directory, tree.pipelines, tree.source, lambda who, what: queue.put((who, what)))
    mine.run(module.clone(), depth, branches[index])
    return mine.files, mine.callers


def _workers(branches: int) -> int:
    if "fork" not in multiprocessing.get_all_start_methods():
        return 1
    return max(1, min(branches, os.cpu_count() or 1))


def _run_parallel(tree: _Tree, module: ModuleOp, depth: int, branches: list[Branch], workers: int) -> None:
    """Run the branches in `workers` forked processes, relaying their steps to `tree.on_step`."""
    global _FORKED
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    _FORKED = (tree, module, depth, branches, queue)

    def relay() -> None:
        while True:
            try:
                who, what = queue.get_nowait()
            except Empty:
                return
            tree.on_step(who, what)

    try:
        with ProcessPoolExecutor(workers, context) as pool:
            pending = {pool.submit(_run_branch, i) for i in range(len(branches))}
            while pending:
                done, pending = wait(pending, timeout=0.1)
                relay()
                for future in done:
                    files, callers = future.result()
                    for name, written in files.items():
                        tree.files.setdefault(name, []).extend(written)
                    tree.callers.update(callers)
        relay()
    finally:
        _FORKED = None


def dump_stages(
    model: str,
    scheme: str | None,
    targets: Sequence[str],
    directory: Path,
    *,
    seq: int = 1,
    context: int = 0,
    options: Mapping[str, str] | None = None,
    progress: Progress | None = None,
) -> dict[str, TargetIR]:
    """Compile `model` with T = `seq` tokens after C = `context` cached ones (a decode step by default) for each
    target and write `directory/<target>/NN-<stage>.mlir`.

    Stages all targets share run once; where the pipelines part, the branches run in parallel processes when
    the machine has several cores. Q35Error when a stage fails (a tile that cannot fit). `progress` counts a
    step per stage compiled (once for a stage the targets share: `[2/39] 12 targets: materialize`).
    """
    names = list(dict.fromkeys(targets))
    pipelines = {name: tuple(get_target(name).pipeline(dict(options or {}))) for name in names}
    if progress is not None:
        prefixes = {pipeline[:depth] for pipeline in pipelines.values() for depth in range(1, len(pipeline) + 1)}
        progress.add(len(prefixes) + 1)
    loaded = load_model(model, quant=scheme, seq=seq, context=context)
    for name in names:
        (directory / name).mkdir(parents=True, exist_ok=True)
    tree = _Tree(directory, pipelines, loaded.path, progress.step if progress is not None else lambda who, what: None)
    module = loaded.module
    tree.write(names, 0, GRAPH_STAGE, module)
    depth, branches = tree.trunk(module, names)
    workers = _workers(len(branches))
    if workers > 1:
        _run_parallel(tree, module, depth, branches, workers)
    else:
        for position, branch in enumerate(branches):
            tree.run(module if position == len(branches) - 1 else module.clone(), depth, branch)
    return {name: TargetIR(name, tuple(tree.files[name]), tree.callers.get(name, {})) for name in names}
