"""What running something costs: the value types of the cost model (`targets.target` computes them).

`Cost` (time, its roofline bound, bytes per memory level, ops per unit, energy per component, the seconds each
resource bound), `Demand` (work for one resource), `Footprint` (bytes a model keeps resident) and `DoesNotFit`
(a model no allowed device count can hold).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from q35c.analysis.workload import Counts, add_counts, scale_counts


def _empty() -> Counts:
    return Counts()


@dataclass(frozen=True)
class Cost:
    """What running something costs: time, the roofline bound on it, traffic, ops, kernels and energy.

    `bytes` is keyed by memory level (and `link` for device links), `ops` by `<unit>.<dtype>` (a MAC counts 2),
    `energy_j` by component (`<level>`, `<unit>`, `static`), `limits` gives the seconds each resource bound
    (the bottleneck is the largest). Costs add, and scale by a count.

    A pass over a pipeline (`Target.estimate`) also has `stage_seconds`, the time of each pipeline stage (one
    entry without a pipeline), and `static_w`, the static power of all its devices: when every stage works on a
    different sequence, a step completes every `interval_seconds` (the slowest stage) and costs
    `interval_joules`.
    """

    seconds: float = 0.0
    roofline_seconds: float = 0.0
    kernels: float = 0.0
    bytes: Counts = field(default_factory=_empty)
    ops: Counts = field(default_factory=_empty)
    energy_j: Counts = field(default_factory=_empty)
    limits: Counts = field(default_factory=_empty)
    stage_seconds: tuple[float, ...] = ()
    static_w: float = 0.0

    def __add__(self, other: Cost) -> Cost:
        if self.stage_seconds and other.stage_seconds and len(self.stage_seconds) == len(other.stage_seconds):
            stages = tuple(a + b for a, b in zip(self.stage_seconds, other.stage_seconds, strict=True))
        else:
            stages = self.stage_seconds or other.stage_seconds
        return Cost(
            self.seconds + other.seconds,
            self.roofline_seconds + other.roofline_seconds,
            self.kernels + other.kernels,
            add_counts(self.bytes, other.bytes),
            add_counts(self.ops, other.ops),
            add_counts(self.energy_j, other.energy_j),
            add_counts(self.limits, other.limits),
            stages,
            max(self.static_w, other.static_w),
        )

    def __mul__(self, count: float) -> Cost:
        return Cost(
            self.seconds * count,
            self.roofline_seconds * count,
            self.kernels * count,
            scale_counts(self.bytes, count),
            scale_counts(self.ops, count),
            scale_counts(self.energy_j, count),
            scale_counts(self.limits, count),
            tuple(s * count for s in self.stage_seconds),
            self.static_w,
        )

    @property
    def interval_seconds(self) -> float:
        """The time between completed steps when every pipeline stage is busy: the slowest stage (the whole
        pass without a pipeline)."""
        return max(self.stage_seconds) if self.stage_seconds else self.seconds

    @property
    def interval_joules(self) -> float:
        """Joules per step when every pipeline stage is busy: the same dynamic energy, static power for the
        interval only."""
        static = self.energy_j.get("static", 0.0)
        return self.joules - static + self.static_w * self.interval_seconds

    __rmul__ = __mul__

    @property
    def joules(self) -> float:
        return sum(self.energy_j.values())

    @property
    def bottleneck(self) -> str:
        """The resource that bound the most time."""
        return max(self.limits.items(), key=lambda kv: kv[1])[0] if self.limits else "nothing"

    def to_dict(self) -> dict[str, Any]:
        return {
            "seconds": self.seconds,
            "roofline_seconds": self.roofline_seconds,
            "kernels": self.kernels,
            "bytes": dict(self.bytes),
            "ops": dict(self.ops),
            "energy_j": dict(self.energy_j),
            "limits_s": dict(self.limits),
            "stage_seconds": list(self.stage_seconds),
        }


class CostSum:
    """Costs added up, each scaled by a count: `total()` is the `Cost` that `cost_1 * count_1 + cost_2 * count_2
    + ...` gives (the same floats, added in the same order), built without a `Cost` per step. A pass over a model
    adds one per kernel and collective, for every bound of every uncertain spec number."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.roofline_seconds = 0.0
        self.kernels = 0.0
        self.counts: tuple[dict[str, float], ...] = ({}, {}, {}, {})  # bytes, ops, energy_j, limits
        self.stage_seconds: tuple[float, ...] = ()
        self.static_w = 0.0

    def add(self, cost: Cost, count: float) -> None:
        """Add `cost * count` (as `Cost.__mul__` then `Cost.__add__` would)."""
        self.seconds = self.seconds + cost.seconds * count
        self.roofline_seconds = self.roofline_seconds + cost.roofline_seconds * count
        self.kernels = self.kernels + cost.kernels * count
        for total, part in zip(self.counts, (cost.bytes, cost.ops, cost.energy_j, cost.limits), strict=True):
            for key, value in part.items():
                total[key] = total.get(key, 0.0) + value * count
        stages = tuple(s * count for s in cost.stage_seconds)
        if self.stage_seconds and stages and len(self.stage_seconds) == len(stages):
            self.stage_seconds = tuple(a + b for a, b in zip(self.stage_seconds, stages, strict=True))
        else:
            self.stage_seconds = self.stage_seconds or stages
        self.static_w = max(self.static_w, cost.static_w)

    def total(self) -> Cost:
        byte_counts, ops, energy, limits = (Counts(c) for c in self.counts)
        return Cost(
            self.seconds,
            self.roofline_seconds,
            self.kernels,
            byte_counts,
            ops,
            energy,
            limits,
            self.stage_seconds,
            self.static_w,
        )


@dataclass(frozen=True)
class Demand:
    """Work for one resource: `seconds` at its peak rate, slowed by `efficiency` in the prediction. `parts` splits
    the seconds by what the resource does (`<unit> <what>`), when several kinds of work add on it."""

    resource: str
    seconds: float
    efficiency: float = 1.0
    parts: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Footprint:
    """Bytes that must be resident on the devices: weights, the KV cache at full context, live activations."""

    weight_bytes: float
    kv_bytes: float
    activation_bytes: float

    @property
    def total(self) -> float:
        return self.weight_bytes + self.kv_bytes + self.activation_bytes


class DoesNotFit(ValueError):
    """The model cannot run on the devices asked for (or on any number of them). `label` is what a table shows
    in place of figures: "does not fit" (memory), "device limit" (more devices than the target can use)."""

    def __init__(self, message: str, label: str = "does not fit") -> None:
        super().__init__(message)
        self.label = label
