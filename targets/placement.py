"""Placement: how many devices a model runs on, and how it spreads over them (tensor parallel x pipeline stages).

The rule (`choose`), the same for every family; only the numbers differ (`devices_per_node`, `max_devices` and
whether nodes are linked: a `[network]` in the spec, or `system.hops_between_nodes` for a direct topology):

1. Tensor parallelism stays within a node: tp <= devices per node, and tp must be a degree the model can take
   (`passes.shard.valid_tp`: it divides the query heads and the FFN width, the KV heads or a multiple of them,
   and leaves row-split K in whole quantization groups).
2. Pipeline stages go across nodes (or chip groups): pp = devices / tp, at most one stage per decoder layer.
   Layers are spread as evenly as possible, the extra ones to the stages between the first (which also holds
   the embedding) and the last (the lm_head).
3. For N devices within a node, tp = N (it must be valid); beyond a node, the largest valid tp <= devices per
   node that divides N, and pp = N / tp. `--tp T --pp P` choose any realisable placement explicitly (pipeline
   stages inside a node, for one).
4. With no count given, the fewest devices whose placement holds the model: per stage, one device holds its
   share of the stage's weights (the shard pass's slices: row and column splits, replicated norms, embedding
   and any replicated KV heads), its KV cache at P + G tokens x B, and the live activations, within the usable
   memory of one device.

A placement that cannot be realised is bad input (Q35Error listing valid choices); a model that no allowed
placement can hold is `DoesNotFit` (the result of that target says why).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp

from q35c.ir.clone import clone
from q35c.passes.shard import (
    ShardError,
    ShardPass,
    StageMemory,
    StageSplit,
    TensorParallel,
    check_tp,
    decoder_calls,
    stage_layers,
)
from q35c.targets.cost import DoesNotFit, Footprint
from q35c.util.errors import Q35Error
from q35c.util.limits import MAX_DEVICES


@dataclass(frozen=True)
class Placement:
    """tp devices per tensor-parallel group, pp pipeline stages with `layers` decoder layers each."""

    tp: int = 1
    pp: int = 1
    layers: tuple[int, ...] = ()
    notes: tuple[str, ...] = ()  # what the split does beyond the rule: replicated KV heads, weights kept whole

    @property
    def devices(self) -> int:
        return self.tp * self.pp

    def options(self) -> dict[str, str]:
        """The pipeline options that compile this placement (`shard` stage); none for one device."""
        if self.devices == 1:
            return {}
        return {"tp": str(self.tp), "pp": str(self.pp), "layers": ",".join(str(n) for n in self.layers)}

    def describe(self) -> str:
        if self.devices == 1:
            return "one device"
        parts = []
        if self.tp > 1:
            parts.append(f"tensor parallel over {self.tp}")
        if self.pp > 1:
            if len(set(self.layers)) == 1:
                each = self.layers[0]
                split = f"{each} layer{'s' if each != 1 else ''} each"
            else:
                split = "/".join(str(n) for n in self.layers) + " layers"
            parts.append(f"{self.pp} pipeline stages ({split})")
        return " x ".join(parts)


@dataclass(frozen=True)
class Limits:
    """What a target allows: devices in a node (a tensor-parallel group's limit), in total, and why."""

    per_node: int
    total: int
    reason: str


def _clone_sharded(graph: ModuleOp, placement: Placement) -> ModuleOp:
    module = clone(graph)
    layers = ",".join(str(n) for n in placement.layers)
    ShardPass(tp=placement.tp, pp=placement.pp, layers=layers).apply(Context(), module)
    return module


@lru_cache(maxsize=16)
def _tensor_parallel(graph: ModuleOp, tp: int) -> ModuleOp:
    """`graph` sharded `tp` ways in one pipeline stage (`graph` itself for one way: that changes nothing the
    sizing reads); each pipeline split of it is sized without a copy (`StageSplit`)."""
    return graph if tp == 1 else _clone_sharded(graph, Placement(tp, 1))


@lru_cache(maxsize=16)
def _split(graph: ModuleOp, tp: int) -> StageSplit:
    """What sizing the pipeline splits of `graph` sharded `tp` ways reads (`StageSplit`), gathered once."""
    return StageSplit(_tensor_parallel(graph, tp))


@lru_cache(maxsize=256)
def _memory(graph: ModuleOp, placement: Placement) -> tuple[StageMemory, ...]:
    layers = ",".join(str(n) for n in placement.layers)
    return tuple(_split(graph, placement.tp).split(placement.pp, layers))


def per_device(graph: ModuleOp, placement: Placement, tokens: int, activations: float) -> Footprint:
    """What one device of the placement's fullest stage holds: its weights, KV cache at `tokens` cached tokens
    (x batch already in `tokens`), and `activations`."""
    stages = _memory(graph, placement)
    worst = max(stages, key=lambda s: s.weight_bytes + s.kv_bytes_per_token * tokens)
    return Footprint(worst.weight_bytes, worst.kv_bytes_per_token * tokens, activations)


@lru_cache(maxsize=4096)
def _tp_check(graph: ModuleOp, tp: int) -> TensorParallel | str:
    """The plan of sharding `graph` `tp` ways (`check_tp`), or why it cannot be done: planned once per degree,
    for both `_tp_problem` and `_tp_notes`."""
    try:
        return check_tp(graph, tp)
    except ShardError as err:
        return str(err)


def _tp_problem(graph: ModuleOp, tp: int) -> str | None:
    found = _tp_check(graph, tp)
    return found if isinstance(found, str) else None


@lru_cache(maxsize=256)
def _tp_notes(graph: ModuleOp, tp: int) -> tuple[str, ...]:
    """What a valid degree does beyond dividing evenly: KV heads replicated, weights kept whole."""
    if tp == 1:
        return ()
    plan = _tp_check(graph, tp)
    if isinstance(plan, str):
        raise ShardError(plan)
    notes = list(dict.fromkeys(plan.notes))
    if plan.replicated_kv > 1:
        notes.insert(0, f"KV heads replicated: each is held by {plan.replicated_kv} of the {tp} devices of a group")
    return tuple(notes)


@lru_cache(maxsize=256)
def _layers(graph: ModuleOp) -> int:
    return len(decoder_calls(graph))


def realisable(graph: ModuleOp, limits: Limits, tp: int, pp: int) -> str | None:
    """Why `tp` x `pp` cannot be realised for this model on this target (None when it can)."""
    layers = _layers(graph)
    if tp < 1 or pp < 1:
        return "tp and pp must be at least 1"
    if tp * pp > limits.total:
        return f"{tp * pp} devices, but at most {limits.total} can be used ({limits.reason})"
    if tp > limits.per_node:
        return f"tensor parallelism stays within a node of {limits.per_node} devices"
    if pp > max(layers, 1):
        return f"{pp} pipeline stages for {layers} layers"
    return _tp_problem(graph, tp)


def placements(graph: ModuleOp, limits: Limits, devices: int) -> list[Placement]:
    """The placements of exactly `devices` devices the rule allows, largest tp first: within one node, all of
    them tensor parallel; beyond a node, a tensor-parallel group of at most a node per pipeline stage."""
    found = []
    top = min(devices, limits.per_node)
    for tp in range(top, 0, -1) if devices > limits.per_node else (top,):
        if devices % tp == 0 and realisable(graph, limits, tp, devices // tp) is None:
            pp = devices // tp
            found.append(Placement(tp, pp, tuple(stage_layers(_layers(graph), pp)), _tp_notes(graph, tp)))
    return found


def valid_counts(graph: ModuleOp, limits: Limits, near: int, count: int = 8) -> list[int]:
    """Up to `count` device counts around `near` that have a realisable placement."""
    found: list[int] = []
    top = min(limits.total, max(near * 4, 16), MAX_DEVICES)
    for n in range(1, top + 1):
        if placements(graph, limits, n):
            found.append(n)
    below = [n for n in found if n < near][-count // 2 :]
    above = [n for n in found if n > near][: count - len(below)]
    return below + above


def explicit(graph: ModuleOp, limits: Limits, tp: int, pp: int, layers: str = "") -> Placement:
    """The placement `--tp T --pp P` asks for; Q35Error saying why it cannot be realised."""
    why = realisable(graph, limits, tp, pp)
    if why is not None:
        valid = [str(t) for t in range(1, limits.per_node + 1) if realisable(graph, limits, t, 1) is None]
        raise Q35Error(
            f"cannot place the model as tp {tp} x pp {pp}: {why} (tensor-parallel degrees: {', '.join(valid)})"
        )
    try:
        counts = stage_layers(_layers(graph), pp, layers)
    except ShardError as err:
        raise Q35Error(str(err)) from None
    return Placement(tp, pp, tuple(counts), _tp_notes(graph, tp))


def for_count(graph: ModuleOp, limits: Limits, devices: int) -> Placement:
    """The placement of `devices` devices by the rule (largest valid tp within a node); Q35Error listing device
    counts that work when none does."""
    if devices > limits.total:
        raise DoesNotFit(
            f"at most {limits.total} device(s) can be used ({limits.reason}), asked for {devices}", "device limit"
        )
    found = placements(graph, limits, devices)
    if not found:
        valid = ", ".join(str(n) for n in valid_counts(graph, limits, devices))
        why = realisable(graph, limits, min(devices, limits.per_node), max(1, devices // limits.per_node))
        raise Q35Error(
            f"{devices} devices cannot be placed: no tensor-parallel degree within a node of {limits.per_node} "
            f"divides {devices} and the model ({why}); device counts that can: {valid}"
        )
    return found[0]


def fewest(graph: ModuleOp, limits: Limits, fits: Callable[[Placement], bool], lower_bound: int) -> Placement:
    """The placement with the fewest devices (from `lower_bound` up) that `fits`; DoesNotFit when none does."""
    start = max(1, lower_bound)
    for n in range(start, limits.total + 1):
        for placement in placements(graph, limits, n):
            if fits(placement):
                return placement
        if n > start + 4 * limits.per_node * max(1, _layers(graph)):
            break  # far past the memory bound: adding devices no longer helps (replicated parts do not shrink)
    raise DoesNotFit(f"no placement of at most {limits.total} device(s) holds the model ({limits.reason})")


def widest(graph: ModuleOp, limits: Limits) -> Placement | None:
    """The realisable placement that spreads the model the most: the largest tensor-parallel degree within a node,
    then as many pipeline stages as layers and the device limit allow (None when even one device is not
    realisable). What no more devices can improve on: a part it cannot split stays whole on some device."""
    layers = max(_layers(graph), 1)
    for tp in range(min(limits.per_node, limits.total), 0, -1):
        pp = min(layers, limits.total // tp)
        if realisable(graph, limits, tp, pp) is None:
            return Placement(tp, pp, tuple(stage_layers(layers, pp)), _tp_notes(graph, tp))
    return None


def lower_bound(total_bytes: float, device_bytes: float) -> int:
    """The fewest devices that could hold `total_bytes` if nothing were replicated."""
    return max(1, math.ceil(total_bytes / device_bytes)) if device_bytes > 0 else 1
