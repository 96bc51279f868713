"""Where a target's time goes: the cost of each kernel of a pass, grouped by the kind of layer it belongs to.

The parts are the cost model's own figures: `Target.estimate` prices a pass as the sum over the workload's
kernels of `kernel_cost(kernel) x calls`, plus the family's device-to-device communication, plus static power;
`breakdown` keeps those terms apart instead of adding them up, so that the parts sum to the `Cost` the report's
table shows (`Breakdown.seconds`; a test checks it). Nothing is recomputed from parameter counts.

Kinds of layer, from the kernels' names and, for the matmul kernels (one function per weight shape), from the
weights they are called with (`q35c.report.ir.kernel_callers`):

    embedding                   embed
    attention projections       linears of q_proj, k_proj, v_proj, o_proj
    attention                   attention (scores, softmax, values) and rope
    MLP projections             linears of gate_proj, up_proj, down_proj
    MLP activation              silu and the gating multiply
    norms                       rmsnorm
    residual adds               add
    lm_head                     the output projection
    communication               all-reduces or chip-to-chip transfers between devices
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from q35c.analysis.workload import KernelWork, Workload
from q35c.report.ir import kernel_key
from q35c.targets.target import Cost, Target

ATTENTION_WEIGHTS = frozenset({"q_proj", "k_proj", "v_proj", "o_proj", "qkv_proj", "wq", "wk", "wv", "wo"})
MLP_WEIGHTS = frozenset({"gate_proj", "up_proj", "down_proj", "gate_up_proj", "w1", "w2", "w3"})
HEAD_WEIGHTS = frozenset({"lm_head", "output"})
KERNEL_KINDS: dict[str, str] = {
    "embed": "embedding",
    "attention": "attention",
    "rope": "attention",
    "rmsnorm": "norms",
    "add": "residual adds",
    "silu": "MLP activation",
    "mul": "MLP activation",
}
KIND_ORDER = (
    "embedding",
    "norms",
    "attention projections",
    "attention",
    "residual adds",
    "MLP projections",
    "MLP activation",
    "lm_head",
    "other linears",
    "communication",
)


@dataclass(frozen=True)
class Part:
    """One kernel of a pass: its kind of layer, a label (the kernel and the weights it serves), its calls per
    pass and the cost of all those calls."""

    kind: str
    label: str
    calls: int
    cost: Cost


@dataclass(frozen=True)
class Breakdown:
    """A pass (decode step or prefill) on one target, kernel by kernel."""

    phase: str
    parts: tuple[Part, ...]
    communication: Cost
    static_j: float

    @property
    def seconds(self) -> float:
        """The pass's time: the kernels' plus communication (what `Target.estimate` returns)."""
        return sum(p.cost.seconds for p in self.parts) + self.communication.seconds

    @property
    def joules(self) -> float:
        return sum(p.cost.joules for p in self.parts) + self.communication.joules + self.static_j

    def by_kind(self) -> list[tuple[str, float, float]]:
        """(kind, seconds, dynamic joules) per kind of layer, in `KIND_ORDER`, kinds with no time left out."""
        seconds: dict[str, float] = {}
        joules: dict[str, float] = {}
        for part in self.parts:
            seconds[part.kind] = seconds.get(part.kind, 0.0) + part.cost.seconds
            joules[part.kind] = joules.get(part.kind, 0.0) + part.cost.joules
        if self.communication.seconds > 0:
            seconds["communication"] = self.communication.seconds
            joules["communication"] = self.communication.joules
        order = [k for k in KIND_ORDER if k in seconds] + sorted(k for k in seconds if k not in KIND_ORDER)
        return [(k, seconds[k], joules[k]) for k in order if seconds[k] > 0]

    def to_json(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "seconds": self.seconds,
            "by_kind": [{"kind": k, "seconds": s, "dynamic_joules": j} for k, s, j in self.by_kind()],
            "kernels": [
                {
                    "kind": p.kind,
                    "kernel": p.label,
                    "calls": p.calls,
                    "seconds": p.cost.seconds,
                    "dynamic_joules": p.cost.joules,
                    "bound_by": p.cost.bottleneck,
                }
                for p in self.parts
            ],
            "communication_seconds": self.communication.seconds,
            "static_joules": self.static_j,
        }


def classify(kernel: KernelWork, callers: Mapping[str, tuple[str, ...]]) -> tuple[str, str]:
    """(kind of layer, label) of a kernel; `callers` maps kernel functions to the weights they serve."""
    weights = callers.get(kernel_key(kernel.function))
    if weights is None:
        return KERNEL_KINDS.get(kernel.name, kernel.name), kernel.name
    label = f"{kernel.name} {kernel_key(kernel.function).split('.')[1]} ({', '.join(weights)})"
    names = set(weights)
    if names <= ATTENTION_WEIGHTS:
        return "attention projections", label
    if names <= MLP_WEIGHTS:
        return "MLP projections", label
    if names <= HEAD_WEIGHTS:
        return "lm_head", label
    return "other linears", label


def breakdown(
    target: Target,
    workload: Workload,
    phase: str,
    *,
    callers: Mapping[str, tuple[str, ...]],
) -> Breakdown:
    """The pass `workload` (as compiled, its batch and placement included) on `target`, kernel by kernel, priced
    by the target's own `kernel_cost` and `collective_cost` exactly as `Target.estimate` prices the whole."""
    work = workload
    parts: list[Part] = []
    for kernel in work.kernels:
        kind, label = classify(kernel, callers)
        parts.append(Part(kind, label, kernel.calls, target.kernel_cost(kernel, active=work.tp) * kernel.calls))
    communication = sum((target.collective_cost(c, work) * c.calls for c in work.collectives), Cost())
    busy = sum(p.cost.seconds for p in parts) + communication.seconds
    static = target.spec.power.static.value * work.devices * busy
    return Breakdown(phase, tuple(parts), communication, static)
