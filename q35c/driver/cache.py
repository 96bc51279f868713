"""Compiling models for targets and extracting their workloads, cached for one run.

A workload is the `Workload` (`q35c.analysis.workload.extract`) of the IR a target's pipeline produces for a model
loaded with B = batch sequences, each of T = seq tokens in flight after C = context cached ones (B*T activation
rows, B*C cache rows: the batch is in the IR, nothing is scaled afterwards), the graph IR telling what attention
appends to the KV cache. Compiling is the slow part, so `WorkloadCache` keeps one workload per (model, scheme,
seq, context, batch) and pipeline: the tuple of `Stage`s the target's options produce (frozen passes with
their options, so equal
tuples run the same compile). Targets whose pipelines are equal share one compile; a target is never costed
from IR another pipeline produced, whatever its family or name.

`prepare` compiles everything a comparison needs at once: per (model, scheme, seq, context) the model is loaded
once and the targets' pipelines run as a tree (`q35c.driver.tree`), so stages they share (materializing weights,
lowering the graph, a tile stage with equal options) run once, and the branches -- of every (model, scheme, seq,
context) -- run in parallel processes on a machine with several cores. Stages are not verified here (see
`q35c.driver.pipeline.Runner`). A `Watch` has one key's compile do more on the way (a run may watch several
keys: the decode step and the prefill): the IR dumps are written so (`q35c.report.ir`), and the cost model reads
that compile's workloads instead of compiling it again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from xdsl.dialects.builtin import ModuleOp

from q35c.analysis.workload import Workload, extract, kv_appends
from q35c.driver.tree import Pipeline, StepCallback, Tree, TreeCallback, count_nodes, run_trees
from q35c.frontend import load_model
from q35c.targets.target import Target
from q35c.util.progress import Progress

Key = tuple[str, str | None, int, int, int]  # model, scheme, seq (T), context (C), batch (B)
Options = tuple[tuple[str, str], ...]  # pipeline options (see targets/pipeline.py), sorted


@dataclass(frozen=True, eq=False)
class Watch:
    """More to do while one key compiles, for every target requested with it even if cached: `visit` after each
    stage (the report's IR dumps: `q35c.report.ir`), and `finish` on each final IR (its results come back from
    `WorkloadCache.prepare` by target name)."""

    key: Key
    visit: TreeCallback
    finish: Callable[[str, ModuleOp], Any]


def _tree(key: Key, pipelines: Mapping[str, Pipeline], watch: Watch | None = None) -> Tree[tuple[Workload, Any]]:
    """The tree that compiles `key` with `pipelines` (by label) and extracts each one's workload (and what
    `watch` keeps)."""
    model, scheme, seq, context, batch = key
    loaded = load_model(model, quant=scheme, seq=seq, context=context, batch=batch)
    appends = kv_appends(loaded.module)

    def finish(label: str, module: ModuleOp) -> tuple[Workload, Any]:
        kept = None if watch is None else watch.finish(label, module)
        return extract(module, appends=appends, batch=batch), kept

    return Tree(loaded.module, pipelines, finish, loaded.path, None if watch is None else watch.visit)


def _steps(progress: Progress) -> StepCallback:
    def step(labels: tuple[str, ...], stage: str) -> None:
        progress.step(labels[0] if len(labels) == 1 else f"{len(labels)} targets", stage)

    return step


def compile_keys(
    jobs: Mapping[Key, Mapping[str, Pipeline]],
    *,
    watches: Sequence[Watch] = (),
    progress: Progress | None = None,
    parallel: bool = True,
) -> dict[Key, dict[str, tuple[Workload, Any]]]:
    """Load the model of each key once and run its pipelines (by label: a target's name) as a tree, all keys'
    branches in one pool of processes; per key and label, the workload and what the key's watch keeps (None
    where none watches it). Q35Error when a stage fails, naming the first label that runs it. `progress` counts a step
    per stage run (once for a stage several pipelines share)."""
    keys = list(jobs)
    if progress is not None:
        progress.add(sum(count_nodes(jobs[key].values()) for key in keys))
    watched = {w.key: w for w in watches}
    trees = [_tree(key, jobs[key], watched.get(key)) for key in keys]
    found = run_trees(trees, verify=False, on_step=None if progress is None else _steps(progress), parallel=parallel)
    return dict(zip(keys, found, strict=True))


def compile_key(key: Key, pipelines: Mapping[str, Pipeline]) -> dict[str, Workload]:
    """The workloads of one key, by label (`compile_keys`)."""
    return {label: work for label, (work, _) in compile_keys({key: pipelines})[key].items()}


@dataclass
class WorkloadCache:
    """Workloads already compiled in this run, by (model, scheme, seq, context, batch) and pipeline."""

    found: dict[tuple[Key, Pipeline], Workload] = field(default_factory=dict[tuple[Key, Pipeline], Workload])

    def prepare(
        self,
        requests: Sequence[tuple[Key, Target]],
        options: Options = (),
        *,
        watches: Sequence[Watch] = (),
        progress: Progress | None = None,
        per_target: Mapping[str, Options] | None = None,
    ) -> dict[Key, dict[str, Any]]:
        """Compile every (key, target) whose (key, pipeline) is not cached yet, each distinct one once, in one
        run (`compile_keys`); for a key a watch watches, every target requested with it too. `per_target` adds
        options for some targets (their placement). What each watch's `finish` returned, by key and target
        name."""
        watched = {w.key for w in watches}
        jobs: dict[Key, dict[str, Pipeline]] = {}
        for key, target in requests:
            own = dict((per_target or {}).get(target.name, ()))
            stages = target.pipeline({**dict(options), **own})
            if (key, stages) not in self.found or key in watched:
                jobs.setdefault(key, {})[target.name] = stages
        kept: dict[Key, dict[str, Any]] = {}
        for key, results in compile_keys(jobs, watches=watches, progress=progress).items():
            for label, (workload, extra) in results.items():
                self.found[(key, jobs[key][label])] = workload
                if key in watched:
                    kept.setdefault(key, {})[label] = extra
        return kept

    def get(self, key: Key, target: Target, options: Options = ()) -> Workload:
        """The workload of `key` compiled with `target`'s pipeline (compiled now if not cached)."""
        stages = target.pipeline(dict(options))
        if (key, stages) not in self.found:
            self.prepare([(key, target)], options)
        return self.found[(key, stages)]


CACHE = WorkloadCache()
