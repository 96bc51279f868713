"""The IR of every pipeline stage for every target and phase, written as `ir/<target>/<phase>/NN-<stage>.mlir`
in a report (`decode/`: the decode step, `prefill/`: the prefill).

`dump_stages(model, scheme, targets, directory, phases)` loads the model once per phase module (a compile key:
T tokens after C cached ones, for B sequences) and runs the targets' pipelines as a tree: stages that targets
share (materializing weights, lowering the graph) run once and their IR is printed once, then written into each
target's folder. `00-graph.mlir` is the imported q35 graph, the highest number the final IR the target's cost
model reads (`q35c cost FILE --target T` costs it again). Which stages are written is a `StageChoice`
(`q35c build -o DIR --ir-stages`): by default the graph and the final IR, which are what a reader of the
figures looks at (printing a 70B model's IR after every stage of every target takes longer than compiling it);
`all` writes every stage, or a list names the stages wanted.

The compiles are the cost model's own (`q35c.driver.cache`, a `Watch` on each phase's key), so the workloads
of the dumped IR are the ones the report's figures come from, and each module is compiled once per build.
It runs as `q35c.driver.tree`'s tree: where
the pipelines part (each target's tile sizes), the branches run in parallel forked processes on a machine with
several cores, and stages are not verified (the tests and `q35c build --target` verify them). It also returns,
per target, which weights each kernel function of the final IR is called with (`callers`), which is how a report
tells the attention projections from the MLP's in the per-layer breakdown.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import BlockArgument, SSAValue

from q35c.dialects.q35_storage import CODES
from q35c.driver.cache import CACHE, Key, Options, Request, Watch, WorkloadCache
from q35c.driver.pipeline import GRAPH_STAGE, Stage, module_text, stage_names
from q35c.ir import attrs
from q35c.targets.target import get_target
from q35c.util.errors import Q35Error
from q35c.util.forks import fork_call
from q35c.util.progress import Progress
from q35c.util.suggest import did_you_mean

_SHAPE = re.compile(r"\.\d+x")


FINAL = "final"
EVERY = "all"


@dataclass(frozen=True)
class StageChoice:
    """Which stages' IR a report directory holds: always the final IR (the costed one); `every` stage, or the
    graph and those `named`."""

    every: bool = False
    named: frozenset[str] = frozenset({GRAPH_STAGE})

    @staticmethod
    def parse(text: str, known: Sequence[str]) -> StageChoice:
        """`final`, `all`, or a comma list of the `known` stage names; Q35Error naming an unknown one."""
        words = [w.strip() for w in text.split(",") if w.strip()]
        if not words:
            raise Q35Error(f"--ir-stages needs final, all, or stage names ({', '.join(known)})")
        for word in words:
            if word not in (FINAL, EVERY, *known):
                hint = did_you_mean(word, [FINAL, EVERY, *known])
                raise Q35Error(
                    f"--ir-stages: no stage '{word}'{f'; {hint}' if hint else ''} (final, all, or stages of "
                    f"{', '.join(known)})"
                )
        if EVERY in words:
            return StageChoice(every=True)
        named = [w for w in words if w != FINAL]  # the final IR is always written
        return StageChoice(named=frozenset(named)) if named else StageChoice()

    def wants(self, index: int, stage: str, last: int) -> bool:
        """Whether the IR after stage number `index` (0: the graph) of a pipeline of `last` stages is written."""
        return self.every or index == last or stage in self.named


def stage_choices(targets: Sequence[str], options: Mapping[str, str] | None = None) -> list[str]:
    """The stage names the pipelines of `targets` (with `options`, placed over several devices or not) have, in
    pipeline order: what `--ir-stages` may name."""
    from q35c.targets.pipeline import SHARD_STAGE

    names = {GRAPH_STAGE: None, SHARD_STAGE: None}
    for name in targets:
        names.update(dict.fromkeys(stage_names(get_target(name).pipeline(dict(options or {})))))
    return list(names)


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


def dump_stages(
    model: str,
    scheme: str | None,
    targets: Sequence[str],
    directory: Path,
    phases: Mapping[str, tuple[int, int, int]],
    *,
    options: Mapping[str, str] | None = None,
    progress: Progress | None = None,
    cache: WorkloadCache | None = None,
    placements: Mapping[str, Mapping[str, str]] | None = None,
    also: Sequence[tuple[str, str]] = (),
    meanwhile: Callable[[], object] | None = None,
    stages: StageChoice | None = None,
) -> dict[str, TargetIR]:
    """Compile `model` for each phase (by name; (T, C, B) each: T tokens after C cached ones for B sequences)
    for each target and write `directory/<target>/<phase>/NN-<stage>.mlir`.

    The compiles are the cost model's (`cache`, `q35c.driver.cache.CACHE` by default, which keeps their
    workloads), all phases in one run, so one pool of processes compiles everything a report needs.
    Stages all targets share run once;
    where the pipelines part, the branches run in parallel processes when the machine has several cores.
    Q35Error when a stage fails (a tile that cannot fit). `progress` counts a step per stage compiled (once for
    a stage the targets share: `[2/39] 12 targets: materialize`). `placements` gives, per target, the pipeline
    options of its placement over several devices (`Placement.options`): those targets' modules are sharded.
    `also` names more modules to compile in the same run, not dumped, as (phase, target) for one device: what
    the cost model will read besides the dumped modules (a placed target's size). `meanwhile` is called in this
    process while the compiles run (in worker processes, on a machine with several cores). `stages` chooses the
    stages written (`StageChoice`: the graph and the final IR by default).
    """
    choice = stages or StageChoice()
    names = list(dict.fromkeys(targets))
    chosen = [get_target(name) for name in names]
    opts: Options = tuple(sorted((options or {}).items()))
    keys: dict[str, Key] = {phase: (model, scheme, t, c, b) for phase, (t, c, b) in phases.items()}
    per_target = {name: tuple(sorted(extra.items())) for name, extra in (placements or {}).items()}
    pipelines = {t.name: t.pipeline({**dict(opts), **dict(per_target.get(t.name, ()))}) for t in chosen}
    for name in names:
        for phase in keys:
            (directory / name / phase).mkdir(parents=True, exist_ok=True)

    writers = _Writers()

    def writer(phase: str) -> Callable[[int, str, tuple[str, ...], ModuleOp], None]:
        def write(index: int, stage: str, labels: tuple[str, ...], module: ModuleOp) -> None:
            wanted = [name for name in labels if choice.wants(index, stage, len(pipelines[name]))]
            if wanted:
                writers.write(module, [directory / _file(name, phase, index, stage) for name in wanted])

        return write

    watches = [Watch(key, writer(phase), lambda name, module: kernel_callers(module)) for phase, key in keys.items()]
    requests: list[Request] = [
        (k, target, per_target.get(target.name, ())) for k in dict.fromkeys(keys.values()) for target in chosen
    ]
    requests += [(keys[phase], get_target(name), ()) for phase, name in also if phase in keys]

    def nothing_more() -> list[Request]:
        assert meanwhile is not None
        meanwhile()
        return []

    more = None if meanwhile is None else nothing_more
    try:
        kept = (cache or CACHE).prepare(requests, opts, watches=watches, progress=progress, more=more)
    except BaseException:
        writers.wait(check=False)  # the compile's own error is the one to report
        raise
    writers.wait()
    result: dict[str, TargetIR] = {}
    for target in chosen:
        files = tuple(f for phase in keys for f in _files(target.name, phase, pipelines[target.name], choice))
        callers: dict[str, tuple[str, ...]] = {}
        for key in keys.values():
            for function, weights in kept.get(key, {}).get(target.name, {}).items():
                callers[function] = tuple(dict.fromkeys((*callers.get(function, ()), *weights)))
        result[target.name] = TargetIR(target.name, files, callers)
    return result


def _write_text(module: ModuleOp, paths: Sequence[Path]) -> None:
    text = module_text(module) + "\n"
    for path in paths:
        path.write_text(text, encoding="utf-8")


class _Writers:
    """Writes a module's text into files. In the process that made it, on a machine with several cores, a forked
    process prints and writes it (`fork_call`: it sees the module as it is now, while this process runs the next
    stage on it: the stages every target shares run here, one at a time, so the other cores would be idle);
    `wait` waits for them all. Elsewhere (a worker, one core, no fork) the text is written at once."""

    def __init__(self) -> None:
        self.home = os.getpid()
        self.children: dict[int, Path] = {}

    def write(self, module: ModuleOp, paths: Sequence[Path]) -> None:
        if not paths:
            return
        pid = fork_call(lambda: _write_text(module, paths)) if os.getpid() == self.home else None
        if pid is None:
            _write_text(module, paths)
        else:
            self.children[pid] = paths[0]

    def wait(self, check: bool = True) -> None:
        """Wait for every forked writer; with `check`, OSError naming a file one of them could not write."""
        failed = [path for pid, path in self.children.items() if os.waitpid(pid, 0)[1] != 0]
        self.children.clear()
        if failed and check:
            raise OSError(f"could not write {failed[0]}")


def _files(target: str, phase: str, stages: Sequence[Stage], choice: StageChoice) -> tuple[str, ...]:
    return tuple(
        _file(target, phase, index, stage)
        for index, stage in enumerate(stage_names(stages))
        if choice.wants(index, stage, len(stages))
    )


def _file(target: str, phase: str, index: int, stage: str) -> str:
    """Where the IR of `target`'s `phase` module after stage `index` goes, relative to the dump directory."""
    return f"{target}/{phase}/{index:02d}-{stage}.mlir"
