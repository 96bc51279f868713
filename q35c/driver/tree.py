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
import gc
import itertools
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, wait
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from multiprocessing.context import BaseContext
from queue import Empty
from typing import Any, Generic, TypeVar

from xdsl.dialects.builtin import ModuleOp

from q35c.driver.pipeline import GRAPH_STAGE, Runner, Stage, make_context
from q35c.ir.clone import clone

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
            mine = module if position == len(following) - 1 else clone(module)
            self.branch(_Task(task.tree, mine, depth, stage, members), mine, results)


def run_trees(
    trees: Sequence[Tree[R]],
    *,
    verify: bool,
    on_step: StepCallback | None = None,
    parallel: bool = True,
    more: Callable[[], Sequence[Tree[R]]] | None = None,
) -> list[dict[str, R]]:
    """Run every tree's pipelines (see the module docstring); per tree, `finish`'s result by label.

    `verify` is `Runner.verify`; `parallel` False runs everything in this process. `more`, when given, is called
    here once the trees' branches have started (in workers, on a machine with several cores): the trees it
    returns run too, their results following, so that what decides them (where a model is placed) is worked
    out while the first ones compile."""
    with collecting_less():
        with ExitStack() as stack:
            first = _Batch(trees, verify, on_step, parallel, stack)
            batches = [first] if more is None else [first, _Batch(more(), verify, on_step, parallel, stack)]
            results = [found for batch in batches for found in batch.finish()]
        for batch in batches:  # the steps the workers sent as they exited
            if batch.pool is not None:
                batch.pool.relay()
        return results


# The cyclic garbage collector's thresholds while compiling (CPython's defaults: 700, 10, 10).
COLLECT_THRESHOLDS = (50_000, 20, 10)


@contextmanager
def collecting_less() -> Iterator[None]:
    """Compiling allocates millions of short-lived IR objects whose references form cycles (an op and the block
    holding it), so the cyclic garbage collector, at its default thresholds, takes a fifth of a compile's time.
    Within this it runs less often (every generation still runs, so memory stays bounded)."""
    old = gc.get_threshold()
    gc.set_threshold(*COLLECT_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*old)


class _Batch(Generic[R]):
    """Trees whose shared stages have run here and whose branches run in a pool of forked workers (started at
    once, waited for by `finish`), or here, in `finish`, with one worker."""

    def __init__(
        self, trees: Sequence[Tree[R]], verify: bool, on_step: StepCallback | None, parallel: bool, stack: ExitStack
    ) -> None:
        self.results: list[dict[str, R]] = [{} for _ in trees]
        ctx = make_context()
        self.walk = _Walk(trees, [Runner(verify=verify, source=tree.source, ctx=ctx) for tree in trees], on_step)
        self.tasks = [task for index in range(len(trees)) for task in self.walk.trunk(index, self.results[index])]
        workers = _workers(len(self.tasks)) if parallel else 1
        self.pool = _Pool(self.walk, self.tasks, workers, on_step, stack) if workers > 1 else None

    def finish(self) -> list[dict[str, R]]:
        if self.pool is not None:
            for index, found in self.pool.wait():
                self.results[index].update(found)
            return self.results
        for position, task in enumerate(self.tasks):
            last = all(later.module is not task.module for later in self.tasks[position + 1 :])
            self.walk.branch(task, task.module if last else clone(task.module), self.results[task.tree])
        return self.results


def _workers(tasks: int) -> int:
    if "fork" not in multiprocessing.get_all_start_methods():
        return 1
    return max(1, min(tasks, os.cpu_count() or 1))


# What the forked workers of each pool (by number) need: the walk (the trees), the tasks, and the queue their
# steps go to (or None).
_FORKED: dict[int, tuple[_Walk[Any], list[_Task], Any]] = {}
_POOLS = itertools.count()


def _run_task(pool: int, index: int) -> tuple[int, dict[str, Any]]:
    """In a forked worker of pool `pool`: run task `index` on its module (this process's copy, changed in place;
    a copy of that when another task starts from the same module: this worker may run it next); (its tree, the
    results it found)."""
    walk, tasks, queue = _FORKED[pool]
    if queue is not None:
        walk = _Walk(walk.trees, walk.runners, lambda labels, stage: queue.put((labels, stage)))
    task = tasks[index]
    shared = any(other.module is task.module for other in tasks if other is not task)
    found: dict[str, Any] = {}
    walk.branch(task, clone(task.module) if shared else task.module, found)
    return task.tree, found


# What `map_forked`'s workers call: the function given, by item index.
_MAPPED: Callable[[int], Any] | None = None


def _call_mapped(index: int) -> Any:
    assert _MAPPED is not None
    return _MAPPED(index)


def map_forked(function: Callable[[int], R], count: int) -> list[R]:
    """`[function(i) for i in range(count)]`, shared among forked processes on a machine with several cores
    (each sees this process as it is now; `function`'s results must be picklable, and its effects inside the
    workers are lost)."""
    global _MAPPED
    workers = _workers(count)
    if workers <= 1:
        return [function(i) for i in range(count)]
    _MAPPED = function
    gc.freeze()
    try:
        with worker_pool(workers, multiprocessing.get_context("fork")) as pool:
            return list(pool.map(_call_mapped, range(count)))
    finally:
        _MAPPED = None
        gc.unfreeze()


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


def _size(walk: _Walk[Any], task: _Task) -> int:
    """The stages `task` runs: its own and all below it."""
    pipelines = walk.trees[task.tree].pipelines
    return count_nodes(pipelines[label][task.depth :] for label in task.labels) - 1


class _Pool(Generic[R]):
    """`tasks` running in `workers` forked processes (longest first, by the stages below each, so that no long
    branch starts last), their steps relayed to `on_step`; `stack` shuts the pool down, and lets the objects
    frozen for it be collected again."""

    def __init__(
        self, walk: _Walk[R], tasks: list[_Task], workers: int, on_step: StepCallback | None, stack: ExitStack
    ) -> None:
        context = multiprocessing.get_context("fork")
        self.on_step = on_step
        self.queue = context.Queue() if on_step is not None else None
        number = next(_POOLS)
        _FORKED[number] = (walk, tasks, self.queue)
        stack.callback(_FORKED.pop, number)
        # What exists now stays out of the workers' collections: they neither walk nor copy its pages.
        gc.freeze()
        stack.callback(gc.unfreeze)
        pool = stack.enter_context(worker_pool(workers, context))
        order = sorted(range(len(tasks)), key=lambda i: -_size(walk, tasks[i]))
        submitted = {i: pool.submit(_run_task, number, i) for i in order}
        self.futures: list[Future[tuple[int, dict[str, R]]]] = [submitted[i] for i in range(len(tasks))]

    def relay(self) -> None:
        while self.queue is not None and self.on_step is not None:
            try:
                labels, stage = self.queue.get_nowait()
            except Empty:
                return
            self.on_step(labels, stage)

    def wait(self) -> list[tuple[int, dict[str, R]]]:
        """The tasks' results, in task order."""
        pending = set(self.futures)
        while pending:
            _, pending = wait(pending, timeout=0.1)
            self.relay()
        results = [future.result() for future in self.futures]
        self.relay()
        return results
