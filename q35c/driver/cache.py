"""Compiling models for targets and extracting their workloads, cached for one run.

A workload is the `Workload` (`q35c.analysis.workload.extract`) of the IR a target's pipeline produces for a model
loaded with T = seq tokens in flight after C = context cached ones, the graph IR telling what attention appends to
the KV cache. Compiling is the slow part, so `WorkloadCache` keeps one workload per (model, scheme, seq, context,
target family): targets of one family requested together share the compile of the first of them. Their
pipelines differ only in tile sizes (each target's on-chip budget), which move the same main-memory bytes, MACs
and kernels; what they change -- bytes staged on chip, and dequantization repeated per token tile in a prefill
-- is taken from the first target's IR for the others.

`prepare` compiles everything a comparison needs at once: per (model, scheme, seq, context) the model is loaded
once and the families' pipelines run as a tree, so stages they share (materializing weights, lowering the graph)
run once; on a machine with several cores, the (model, scheme, seq, context) groups compile in parallel
processes.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from xdsl.dialects.builtin import ModuleOp
from xdsl.utils.exceptions import PassFailedException

from q35c.analysis.workload import Workload, extract, kv_appends
from q35c.driver.pipeline import Stage, make_context
from q35c.frontend import load_model
from q35c.targets.target import Target
from q35c.util.errors import Q35Error

Key = tuple[str, str | None, int, int]  # model, scheme, seq (T), context (C)
Options = tuple[tuple[str, str], ...]  # pipeline options (see targets/pipelines.py), sorted
Variant = tuple[str, Options]  # a target family and the options its pipeline runs with
Job = tuple[Variant, tuple[Stage, ...]]


def stages_for(target: Target, options: dict[str, Any] | None = None) -> tuple[Stage, ...]:
    """The stages that compile a model for `target` (its family's pipeline)."""
    return tuple(target.pipeline(options))


def compile_key(key: Key, jobs: Sequence[Job]) -> dict[Variant, Workload]:
    """Load the model once for `key` and run each family's pipeline, sharing leading stages; workloads by family."""
    model, scheme, seq, context = key
    loaded = load_model(model, quant=scheme, seq=seq, context=context)
    appends = kv_appends(loaded.module)
    ctx = make_context()
    found: dict[Variant, Workload] = {}

    def run(module: ModuleOp, depth: int, group: list[Job]) -> None:
        for family, stages in group:
            if len(stages) == depth:
                found[family] = extract(module, appends=appends)
        branches: dict[Stage, list[Job]] = {}
        for job in group:
            if len(job[1]) > depth:
                branches.setdefault(job[1][depth], []).append(job)
        for index, (stage, members) in enumerate(branches.items()):
            mine = module if index == len(branches) - 1 else module.clone()
            try:
                for p in stage.passes:
                    p.apply(ctx, mine)
            except PassFailedException as err:
                raise Q35Error(f"{model}: stage {stage.name}: {err}") from None
            run(mine, depth + 1, members)

    run(loaded.module, 0, list(jobs))
    return found


def _parallel() -> bool:
    return (os.cpu_count() or 1) > 1 and "fork" in multiprocessing.get_all_start_methods()


def _tasks(groups: list[tuple[Key, list[Job]]], workers: int) -> list[tuple[Key, list[Job]]]:
    """One task per key, except that keys of a last, partial round are split by family over the idle workers."""
    whole = len(groups) - len(groups) % workers
    tasks = groups[:whole]
    rest = groups[whole:]
    for key, jobs in rest:
        parts = max(1, min(len(jobs), workers // len(rest)))
        tasks += [(key, jobs[i::parts]) for i in range(parts)]
    return tasks


@dataclass
class WorkloadCache:
    """Workloads already compiled in this run, by (model, scheme, seq, context) and target family."""

    found: dict[tuple[Key, Variant], Workload] = field(default_factory=dict[tuple[Key, Variant], Workload])

    def prepare(self, requests: Sequence[tuple[Key, Target]], options: Options = ()) -> None:
        """Compile every (key, target) not cached yet; the first target of a family stands for the family."""
        todo: dict[Key, dict[Variant, tuple[Stage, ...]]] = {}
        for key, target in requests:
            variant = (target.family, options)
            if (key, variant) not in self.found and variant not in todo.get(key, {}):
                todo.setdefault(key, {})[variant] = stages_for(target, dict(options))
        groups = [(key, list(jobs.items())) for key, jobs in todo.items()]
        workers = min(len(groups), os.cpu_count() or 1) if _parallel() else 1
        if workers > 1:
            tasks = _tasks(groups, workers)
            with ProcessPoolExecutor(workers, multiprocessing.get_context("fork")) as pool:
                results = list(pool.map(compile_key, *zip(*tasks, strict=True)))
        else:
            tasks = groups
            results = [compile_key(key, jobs) for key, jobs in groups]
        for (key, _), workloads in zip(tasks, results, strict=True):
            for variant, workload in workloads.items():
                self.found[(key, variant)] = workload

    def get(self, key: Key, target: Target, options: Options = ()) -> Workload:
        """The workload of `key` for `target`'s family (compiled with `target`'s pipeline if not cached)."""
        if (key, (target.family, options)) not in self.found:
            self.prepare([(key, target)], options)
        return self.found[(key, (target.family, options))]


CACHE = WorkloadCache()
