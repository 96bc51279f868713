"""Roofline points: where a target's decode step and prefill sit against its roof, from the cost model's `Cost`.

For one pass on one working device (`Cost.ops` and `Cost.bytes` are per working device):

    ops        every op the cost model charged to a compute unit (a MAC counts 2; unpacking and element-wise
               ops included; work a spec gives no rate for, `untimed.*`, left out)
    bytes      traffic to and from the memory level the weights live in (HBM, DRAM, Groq's SRAM)
    intensity  ops / bytes
    achieved   ops / the pass's predicted time
    bound      ops / the pass's roofline bound (`Cost.roofline_seconds`: per kernel, its slowest resource at the
               spec's rates, no efficiency or launch overhead, summed)
    roofline   bound time / predicted time = achieved / bound: the table's `roofline` column, one meaning everywhere
    roof       min(peak, intensity x bandwidth): the highest peak among the units and dtypes the pass charged ops
               to, and the bandwidth of that memory level, both from the target's spec (the classic two-figure
               roof; a bound far below it means another resource, named in `limits`, set the time)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from q35c.targets.spec import HardwareSpec
from q35c.targets.target import Cost


@dataclass(frozen=True)
class RooflinePoint:
    """One pass of one target on the roofline (see the module docstring)."""

    target: str
    phase: str
    ops: float
    bytes: float
    seconds: float
    peak_ops_per_s: float
    peak: str
    bandwidth_bytes_per_s: float
    memory: str = ""
    roofline_seconds: float = 0.0
    limits: tuple[tuple[str, float], ...] = ()
    """(resource, seconds it bound), largest first: what set the pass's time."""

    @property
    def intensity(self) -> float:
        return self.ops / self.bytes if self.bytes else 0.0

    @property
    def achieved_ops_per_s(self) -> float:
        return self.ops / self.seconds if self.seconds else 0.0

    def roof_at(self, intensity: float) -> float:
        return min(self.peak_ops_per_s, intensity * self.bandwidth_bytes_per_s)

    @property
    def roof_ops_per_s(self) -> float:
        return self.roof_at(self.intensity)

    @property
    def bound_ops_per_s(self) -> float:
        """Ops / the roofline bound: the highest rate the pass's own kernels allow."""
        return self.ops / self.roofline_seconds if self.roofline_seconds else 0.0

    @property
    def roofline_fraction(self) -> float | None:
        """The roofline bound / the predicted time (the table's `roofline` column)."""
        return self.roofline_seconds / self.seconds if self.seconds else None

    def bound_by(self, count: int = 2, floor: float = 0.1) -> str:
        """The resources that bound the most of the time, with their shares: `vxm unpacking 94%`."""
        shares = [(name, s / self.seconds) for name, s in self.limits[:count] if self.seconds]
        return ", ".join(f"{name} {100 * share:.0f}%" for name, share in shares if share >= floor) or "-"

    def to_json(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "ops": self.ops,
            "bytes": self.bytes,
            "seconds": self.seconds,
            "intensity_ops_per_byte": self.intensity,
            "achieved_ops_per_s": self.achieved_ops_per_s,
            "peak": self.peak,
            "peak_ops_per_s": self.peak_ops_per_s,
            "bandwidth_bytes_per_s": self.bandwidth_bytes_per_s,
            "roof_ops_per_s": self.roof_ops_per_s,
            "memory": self.memory,
            "roofline_seconds": self.roofline_seconds,
            "bound_ops_per_s": self.bound_ops_per_s,
            "roofline_fraction": self.roofline_fraction,
        }


def roofline_point(spec: HardwareSpec, phase: str, cost: Cost) -> RooflinePoint | None:
    """The point of one pass, or None when the pass charged no ops or the spec gives no bandwidth."""
    units = {unit.name: unit for unit in spec.compute}
    charged = {key: n for key, n in cost.ops.items() if key.split(".", 1)[0] in units}
    main = spec.main_memory
    if not charged or not main.bandwidth_bytes_per_s or cost.seconds <= 0:
        return None
    peaks = [
        (units[unit].peak_ops_per_s[dtype].value, f"{unit} {dtype}")
        for unit, dtype in (key.split(".", 1) for key in charged)
        if dtype in units[unit].peak_ops_per_s
    ]
    if not peaks:
        return None
    peak, name = max(peaks)
    return RooflinePoint(
        target=spec.name,
        phase=phase,
        ops=sum(charged.values()),
        bytes=cost.bytes.get(main.name, 0.0),
        seconds=cost.seconds,
        peak_ops_per_s=peak,
        peak=name,
        bandwidth_bytes_per_s=main.bandwidth_bytes_per_s,
        memory=main.name,
        roofline_seconds=cost.roofline_seconds,
        limits=tuple(sorted(cost.limits.items(), key=lambda kv: (-kv[1], kv[0]))),
    )
