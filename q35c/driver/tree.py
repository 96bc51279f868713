"""Several pipelines over one loaded module, run as a tree: stages they share run once.

Targets' pipelines share leading stages (materializing weights, lowering the graph) and part where their options
differ (each target's tile sizes). A `Tree` is one loaded module and the pipelines to run over it, by label (a
target's name); `run_trees` runs the stages several pipelines share once, clones the module where they part,
and calls `finish(label, module)` on each distinct pipeline's final IR (once for labels whose pipelines are
equal, which all get its result):

    tree = Tree(loaded.module, {"h100-sxm": stages_a, "m2-max": stages_b}, finish=lambda label, m: extract(m))
    (workloads,) = run_trees([tree], verify=False)        # {"h100-sxm": Workload, "m2-max": Workload}

The cost model's compiles (`q35c.driver.cache`) and the report's IR dumps (`q35c.report.ir`) both run this way.
Stages are applied by `q35c.driver.pipeline.Runner` (its rules for verification and errors; a failing stage is
reported for the first label that runs it). A stage that several pipelines share runs in this process; the
branches below, of every tree, are tasks that run in parallel forked processes on a machine with several cores
(sequentially otherwise), so `finish` must return something picklable, and `visit` -- called after each stage
with the labels that share it, wherever the module is -- may only have effects outside the process (writing
files). `on_step(labels, stage)` is called in this process for every node of every tree (the graph included),
relayed from the workers: a progress display.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing.context import BaseContext
from queue import Empty
from typing import Any, Generic, TypeVar

from xdsl.dialects.builtin import ModuleOp

from q35c.driver.pipeline import GRAPH_STAGE, Runner, Stage, make_context

R = TypeVar("R")
Pipeline = tuple[Stage, ...]
# Called after each stage (index 0: the graph as loaded) with the labels of the pipelines that share it.
TreeCallback = Callable[[int, str, tuple[str, ...], ModuleOp], None]
StepCallback = Callable[[tuple[str, ...], str], None]


@dataclass(frozen=True, eq=False)
class Tree(Generic[R]):
    """Pipelines to run over one loaded module (`source`: its file, for errors), and what to keep of each."""

    module: ModuleOp
    pipelines: Mapping[str, Pipeline]
    finish: Callable[[str, ModuleOp], R]
    source: str | None = None
    visit: TreeCallback | None = None


def count_nodes(pipelines: Iterable[Pipeline]) -> int:
    """The nodes of the tree of `pipelines` (the stages run, plus the graph): how often `on_step` is called."""
    return len({pipeline[:depth] for pipeline in pipelines for depth in range(1, len(pipeline) + 1)}) + 1


@dataclass(frozen=True, eq=False)
class _Task:
    """A branch: `stage` applied to `module` (the IR after `depth` stages of tree `tree`), and all below it."""

    tree: int
    module: ModuleOp
    depth: int
    stage: Stage
    labels: tuple[str, ...]


@dataclass(frozen=True, eq=False)
class _Walk(Generic[R]):
    """Runs the trees' stages (`runners[i]` for tree i), reporting each node to `step`."""

    trees: Sequence[Tree[R]]
    runners: Sequence[Runner]
    step: StepCallback | None

    def node(self, tree: int, index: int, stage: str, labels: tuple[str, ...], module: ModuleOp) -> None:
        visit = self.trees[tree].visit
        if visit is not None:
            visit(index, stage, labels, module)
        if self.step is not None:
            self.step(labels, stage)

    def split(
        self, tree: int, module: ModuleOp, depth: int, labels: Sequence[str], results: dict[str, R]
    ) -> list[tuple[Stage, tuple[str, ...]]]:
        """Finish the pipelines that end at `depth` (`finish` once: they are equal); the next stages of the
        others, with who runs them."""
        pipelines = self.trees[tree].pipelines
        branches: dict[Stage, list[str]] = {}
        ended: list[str] = []
        for label in labels:
            if len(pipelines[label]) == depth:
                ended.append(label)
            else:
                branches.setdefault(pipelines[label][depth], []).append(label)
        if ended:
            results.update(dict.fromkeys(ended, self.trees[tree].finish(ended[0], module)))
        return [(stage, tuple(members)) for stage, members in branches.items()]

    def trunk(self, tree: int, results: dict[str, R]) -> list[_Task]:
        """Run the stages several pipelines of `tree` share, in place; the branches from there on."""
        module, depth, labels = self.trees[tree].module, 0, tuple(self.trees[tree].pipelines)
        self.node(tree, 0, GRAPH_STAGE, labels, module)
        branches = self.split(tree, module, depth, labels, results)
        while len(branches) == 1 and len(branches[0][1]) > 1:
            stage, labels = branches[0]
            self.runners[tree].apply(stage, module, labels[0])
            depth += 1
            self.node(tree, depth, stage.name, labels, module)
            branches = self.split(tree, module, depth, labels, results)
        return [_Task(tree, module, depth, stage, members) for stage, members in branches]

    def branch(self, task: _Task, module: ModuleOp, results: dict[str, R]) -> None:
        """Run `task` on `module` (its module or a copy, changed in place) and everything below it."""
        self.runners[task.tree].apply(task.stage, module, task.labels[0])
        depth = task.depth + 1
        self.node(task.tree, depth, task.stage.name, task.labels, module)
        following = self.split(task.tree, module, depth, task.labels, results)
        for position, (stage, members) in enumerate(following):
            mine = module if position == len(following) - 1 else module.clone()
            self.branch(_Task(task.tree, mine, depth, stage, members), mine, results)


def run_trees(
    trees: Sequence[Tree[R]], *, verify: bool, on_step: StepCallback | None = None, parallel: bool = True
) -> list[dict[str, R]]:
    """Run every tree's pipelines (see the module docstring); per tree, `finish`'s result by label.

    `verify` is `Runner.verify`; `parallel` False runs everything in this process."""
    results: list[dict[str, R]] = [{} for _ in trees]
    ctx = make_context()
    walk = _Walk(trees, [Runner(verify=verify, source=tree.source, ctx=ctx) for tree in trees], on_step)
    tasks = [task for index in range(len(trees)) for task in walk.trunk(index, results[index])]
    workers = _workers(len(tasks)) if parallel else 1
    if workers > 1:
        for index, found in _run_parallel(walk, tasks, workers, on_step):
            results[index].update(found)
    else:
        for position, task in enumerate(tasks):
            last = all(later.module is not task.module for later in tasks[position + 1 :])
            walk.branch(task, task.module if last else task.module.clone(), results[task.tree])
    return results


def _workers(tasks: int) -> int:
    if "fork" not in multiprocessing.get_all_start_methods():
        return 1
    return max(1, min(tasks, os.cpu_count() or 1))


# What a forked worker needs: the walk (the trees), the tasks, and the queue its steps go to (or None).
_FORKED: tuple[_Walk[Any], list[_Task], Any] | None = None


def _run_task(index: int) -> tuple[int, dict[str, Any]]:
    """In a forked worker: run task `index` on a copy of its module; (its tree, the results it found)."""
    assert _FORKED is not None
    walk, tasks, queue = _FORKED
    if queue is not None:
        walk = _Walk(walk.trees, walk.runners, lambda labels, stage: queue.put((labels, stage)))
    task = tasks[index]
    found: dict[str, Any] = {}
    walk.branch(task, task.module.clone(), found)
    return task.tree, found


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _exit_with(parent: int) -> None:
    """In a new worker: make sure it ends when `parent` does, so a killed build leaves no process behind. On
    Linux the kernel kills it (PR_SET_PDEATHSIG); elsewhere a daemon thread watches the parent's pid."""
    armed = False
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            armed = libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
        except (OSError, AttributeError):
            armed = False
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)
    if not armed:
        threading.Thread(target=_watch, args=(parent,), daemon=True).start()


def _watch(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


def worker_pool(workers: int, context: BaseContext) -> ProcessPoolExecutor:
    """A process pool whose workers exit when this process dies, even by kill -9 (`_exit_with`)."""
    return ProcessPoolExecutor(workers, context, initializer=_exit_with, initargs=(os.getpid(),))


def _run_parallel(
    walk: _Walk[R], tasks: list[_Task], workers: int, on_step: StepCallback | None
) -> list[tuple[int, dict[str, R]]]:
    """Run `tasks` in `workers` forked processes, relaying their steps to `on_step`; results in task order."""
    global _FORKED
    context = multiprocessing.get_context("fork")
    queue = context.Queue() if on_step is not None else None
    _FORKED = (walk, tasks, queue)

    def relay() -> None:
        while queue is not None and on_step is not None:
            try:
                labels, stage = queue.get_nowait()
            except Empty:
                return
            on_step(labels, stage)

    try:
        with worker_pool(workers, context) as pool:
            futures: list[Future[tuple[int, dict[str, R]]]] = [pool.submit(_run_task, i) for i in range(len(tasks))]
            pending = set(futures)
            while pending:
                _, pending = wait(pending, timeout=0.1)
                relay()
            results = [future.result() for future in futures]
        relay()
    finally:
        _FORKED = None
    return results
