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
from q35c.frontend import Model, load_model
from q35c.ir.clone import clone
from q35c.targets.target import Target
from q35c.util.progress import Progress

Key = tuple[str, str | None, int, int, int]  # model, scheme, seq (T), context (C), batch (B)
Options = tuple[tuple[str, str], ...]  # pipeline options (see targets/pipeline.py), sorted
Request = tuple[Key, Target] | tuple[Key, Target, Options]  # a module to compile for a target (with more options)


@dataclass(frozen=True, eq=False)
class Watch:
    """More to do while one key compiles, for every target requested with it even if cached: `visit` after each
    stage (the report's IR dumps: `q35c.report.ir`), and `finish` on each final IR (its results come back from
    `WorkloadCache.prepare` by target name)."""

    key: Key
    visit: TreeCallback
    finish: Callable[[str, ModuleOp], Any]


def _tree(
    key: Key, module: ModuleOp, source: str, pipelines: Mapping[str, Pipeline], watch: Watch | None = None
) -> Tree[tuple[Workload, Any]]:
    """The tree that compiles `module` (`key`'s model, loaded from `source`) with `pipelines` (by label) and
    extracts each one's workload (and what `watch` keeps)."""
    batch = key[4]
    appends = kv_appends(module)

    def finish(label: str, module: ModuleOp) -> tuple[Workload, Any]:
        kept = None if watch is None else watch.finish(label, module)
        return extract(module, appends=appends, batch=batch), kept

    return Tree(module, pipelines, finish, source, None if watch is None else watch.visit)


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
    found = compile_trees([(key, jobs[key]) for key in keys], watches=watches, progress=progress, parallel=parallel)
    return dict(zip(keys, found, strict=True))


def compile_trees(
    jobs: Sequence[tuple[Key, Mapping[str, Pipeline]]],
    *,
    watches: Sequence[Watch] = (),
    progress: Progress | None = None,
    parallel: bool = True,
    more: Callable[[], Sequence[tuple[Key, Mapping[str, Pipeline]]]] | None = None,
) -> list[dict[str, tuple[Workload, Any]]]:
    """`compile_keys` for trees given in order, a key possibly in several (the same target's pipelines with and
    without a placement): each key's model is loaded once, and later trees of a key run on copies of it. A
    key's watch watches its first tree. `more` (see `run_trees`) gives more trees once these have started;
    their results follow."""
    watched = {w.key: w for w in watches}
    loaded: dict[Key, Model] = {}
    pristine: dict[Key, ModuleOp] = {}  # a copy of each key's module as loaded, for `more`'s trees

    def trees(batch: Sequence[tuple[Key, Mapping[str, Pipeline]]], last: bool) -> list[Tree[tuple[Workload, Any]]]:
        """The trees of `batch` (`last`: no batch follows), each on its own module: a key's model loaded now,
        a copy of it for its later trees, and for a key loaded by an earlier batch (whose module its stages may
        have changed since) the copy kept of it as loaded, itself for its last tree of the last batch."""
        if progress is not None:
            progress.add(sum(count_nodes(pipelines.values()) for _, pipelines in batch))
        found = []
        fresh: set[Key] = set()
        for position, (key, pipelines) in enumerate(batch):
            if key in fresh:
                found.append(_tree(key, clone(loaded[key].module), loaded[key].path, pipelines))
                continue
            if key in loaded:
                final = last and all(k != key for k, _ in batch[position + 1 :])
                module = pristine.pop(key) if final else clone(pristine[key])
                found.append(_tree(key, module, loaded[key].path, pipelines))
                continue
            model, scheme, seq, context, batch_size = key
            loaded[key] = load_model(model, quant=scheme, seq=seq, context=context, batch=batch_size)
            fresh.add(key)
            if not last:
                pristine[key] = clone(loaded[key].module)
            found.append(_tree(key, loaded[key].module, loaded[key].path, pipelines, watched.get(key)))
        return found

    later = None if more is None else lambda: trees(more(), last=True)
    return run_trees(
        trees(jobs, last=more is None),
        verify=False,
        on_step=None if progress is None else _steps(progress),
        parallel=parallel,
        more=later,
    )


def compile_key(key: Key, pipelines: Mapping[str, Pipeline]) -> dict[str, Workload]:
    """The workloads of one key, by label (`compile_keys`)."""
    return {label: work for label, (work, _) in compile_keys({key: pipelines})[key].items()}


@dataclass
class WorkloadCache:
    """Workloads already compiled in this run, by (model, scheme, seq, context, batch) and pipeline."""

    found: dict[tuple[Key, Pipeline], Workload] = field(default_factory=dict[tuple[Key, Pipeline], Workload])

    def prepare(
        self,
        requests: Sequence[Request],
        options: Options = (),
        *,
        watches: Sequence[Watch] = (),
        progress: Progress | None = None,
        per_target: Mapping[str, Options] | None = None,
        more: Callable[[], Sequence[Request]] | None = None,
    ) -> dict[Key, dict[str, Any]]:
        """Compile every (key, target) whose (key, pipeline) is not cached yet, each distinct one once, in one
        run (`compile_trees`); for a key a watch watches, every target requested with it too. `per_target` adds
        options for some targets (their placement); a request (key, target, extra) adds `extra` instead, so one
        run may compile a target's module both as is and placed over several devices. `more`, called once the
        requests' compiles have started, gives more requests for the same run (those it takes to work them
        out overlap the compiles). What each watch's `finish` returned, by key and target name."""
        watched = {w.key for w in watches}
        jobs: list[tuple[Key, dict[str, Pipeline]]] = []
        self._plan(requests, options, per_target, watched, jobs)
        first_batch = len(jobs)

        def more_jobs() -> list[tuple[Key, dict[str, Pipeline]]]:
            assert more is not None
            self._plan(more(), options, per_target, watched, jobs, first_batch)
            return jobs[first_batch:]

        found = compile_trees(
            jobs[:first_batch], watches=watches, progress=progress, more=None if more is None else more_jobs
        )
        kept: dict[Key, dict[str, Any]] = {}
        firsts = {id(pipelines) for pipelines in {k: p for k, p in reversed(jobs)}.values()}
        for (key, pipelines), results in zip(jobs, found, strict=True):
            for label, (workload, extra) in results.items():
                self.found[(key, pipelines[label])] = workload
                if key in watched and id(pipelines) in firsts:
                    kept.setdefault(key, {})[label] = extra
        return kept

    def _plan(
        self,
        requests: Sequence[Request],
        options: Options,
        per_target: Mapping[str, Options] | None,
        watched: set[Key],
        jobs: list[tuple[Key, dict[str, Pipeline]]],
        start: int = 0,
    ) -> None:
        """Add the trees that compile `requests` to `jobs`, new trees and those from `start` on taking more: one
        tree per key where it can (equal pipelines together, a target's name once per tree); nothing for a
        pipeline cached or already in `jobs`."""
        for request in requests:
            key, target = request[0], request[1]
            own = dict(request[2]) if len(request) == 3 else dict((per_target or {}).get(target.name, ()))
            stages = target.pipeline({**dict(options), **own})
            if (key, stages) in self.found and key not in watched:
                continue
            if any(k == key and stages in p.values() for k, p in jobs[:start]):
                continue  # compiled in this run, in a batch already started
            trees = [pipelines for k, pipelines in jobs[start:] if k == key]
            same = [p for p in trees if stages in p.values()]
            tree = next((p for p in same if target.name not in p), None)
            if tree is None and same:
                continue  # compiled in this run under another name
            tree = tree if tree is not None else next((p for p in trees if target.name not in p), None)
            if tree is None:
                jobs.append((key, tree := {}))
            tree[target.name] = stages

    def get(self, key: Key, target: Target, options: Options = ()) -> Workload:
        """The workload of `key` compiled with `target`'s pipeline (compiled now if not cached)."""
        stages = target.pipeline(dict(options))
        if (key, stages) not in self.found:
            self.prepare([(key, target)], options)
        return self.found[(key, stages)]


CACHE = WorkloadCache()
