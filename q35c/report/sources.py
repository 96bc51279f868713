"""Which hardware figures a target's prediction used, each with its source (`HardwareSpec.source_of`).

A figure is cited when the cost model read it for this result: the capacity, bandwidth and energy of the
memory levels the passes moved bytes through (the outermost level always: it sizes the device count), the
peak of every unit and dtype ops were charged to, TDP and static power, the system's device limit, the link
figures when several devices work together, the per-op energies the model maps ops to, and the figures the
target's family adds (`Target.cited_figures`: on Groq the clock and MXM geometry behind the derived weight-install
rate).
"""

from __future__ import annotations

from dataclasses import dataclass

from q35c.predict.predictor import TargetResult
from q35c.targets.registry import target_for
from q35c.targets.spec import HardwareSpec, Quantity
from q35c.targets.target import ALU_ENERGY, MAC_ENERGY, Cost

LEVEL_FIGURES = (
    "capacity_bytes",
    "usable_fraction",
    "reserved_bytes",
    "capacity_per_unit_bytes",
    "bandwidth_bytes_per_s",
    "energy_pj_per_bit",
)
LINK_FIGURES = ("bandwidth_bytes_per_s", "links", "link_bandwidth_bytes_per_s", "hop_latency_s")
ENERGY_OPS = tuple(sorted({*MAC_ENERGY.values(), *ALU_ENERGY.values(), "fp32_mul"}))


@dataclass(frozen=True)
class Citation:
    """One figure of a spec: its dotted path, the quantity, and `source [confidence]: note`."""

    path: str
    quantity: Quantity

    @property
    def text(self) -> str:
        return self.quantity.cite()


def _costs(result: TargetResult) -> list[Cost]:
    return [c for c in (result.decode, result.prefill) if c is not None]


def cited_paths(spec: HardwareSpec, result: TargetResult) -> list[str]:
    """The dotted paths of the figures `result` rests on, in a stable order (see the module docstring)."""
    main = spec.main_memory.name
    levels = [main]
    units: list[str] = []
    for cost in _costs(result):
        levels += [name for name in cost.bytes if name != "link" and name not in levels]
        units += [key for key in cost.ops if key not in units]
    paths = [f"memory.{level}.{figure}" for level in levels for figure in LEVEL_FIGURES]
    paths += [f"compute.{key.split('.', 1)[0]}.peak_ops_per_s.{key.split('.', 1)[1]}" for key in sorted(units)]
    paths += ["power.tdp_w", "power.static_w", "system.max_devices"]
    if result.devices > 1:
        paths += [f"interconnect.{figure}" for figure in LINK_FIGURES]
    if result.error is None:
        paths += [f"energy.per_op_pj.{op}" for op in ENERGY_OPS] + ["energy.process_scale"]
        paths += target_for(spec).cited_figures()
    return [p for p in dict.fromkeys(paths) if p in spec.quantities]


def citations(spec: HardwareSpec, result: TargetResult) -> list[Citation]:
    """The figures `result` used, with their quantities."""
    return [Citation(path, spec.quantity(path)) for path in cited_paths(spec, result)]
