"""Roofline points: where a target's decode step and prefill sit against its roof, from the cost model's `Cost`.

For one pass on one working device (`Cost.ops` and `Cost.bytes` are per working device):

    ops        every op the cost model charged to a compute unit (a MAC counts 2; unpacking and element-wise
               ops included; work a spec gives no rate for, `untimed.*`, left out)
    bytes      traffic to and from the memory level the weights live in (HBM, DRAM, Groq's SRAM)
    intensity  ops / bytes
    achieved   ops / the pass's time
    roof       min(peak, intensity x bandwidth): the highest peak among the units and dtypes the pass charged ops
               to, and the bandwidth of that memory level, both from the target's spec

So `achieved / roof` is how close the pass comes to what the spec's two figures allow; the report's own
`roofline` column is the stricter per-kernel bound (`Cost.roofline_seconds`).
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
    )
