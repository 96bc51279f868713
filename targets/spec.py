"""Hardware specs: the sourced facts every target's cost model builds on.

Each target is described by `targets/specs/<name>.toml`. Every number in those files is a *quantity*, an inline
table that carries its own provenance:

    bandwidth_bytes_per_s = { value = 3.35e12, source = "NVIDIA H100 datasheet", confidence = "sourced" }

- `confidence` is `sourced` (a published figure), `derived` (arithmetic on sourced figures; `note` gives the
  derivation) or `uncertain` (an estimate, an assumption or a figure from outside the reference; `note` says why).
- An `uncertain` number also carries `low` and `high` (`low <= value <= high`, each bound justified in the
  note): predictions are recomputed at them to give their ranges (`q35c.predict.ranges`). Other numbers may not.
- Instead of `value`, the host spec may say `from = "probe:<key>"` or `from = "os:<key>"`: the number is then
  measured on this machine (`q35c.targets.host_probe`) and gets the confidence `measured`.
- The outermost memory level (`memory[0]`) says how much of it a model can use: `usable_fraction` (of the
  capacity) and/or `reserved_bytes` (taken off after the fraction), with `usable` naming the limit in words
  (an OS limit, a runtime's reserve). `Target.device_bytes()` is capacity x fraction - reserved, so device
  counts and "does not fit" follow. At least one of the two is required there; no other level may have them.
- `family` names the `Target` subclass that models the target (`q35c.targets.registry`).
- Files named `_*.toml` are shared tables, not targets: `[energy] per_op = "horowitz-45nm"` reads the per-op
  energies from `_horowitz-45nm.toml`.

`load_spec(name)` parses and validates a file into a frozen `HardwareSpec` (the reader and its checks are in
`q35c.targets.spec_loader`); `spec.source_of("memory.hbm.bandwidth_bytes_per_s")` says where any number came
from, so reports can cite it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from q35c.util.errors import Q35Error
from q35c.util.suggest import did_you_mean

SPEC_DIR = Path(__file__).parent / "specs"
CONFIDENCES = ("sourced", "derived", "uncertain", "measured")
DTYPES = ("int8", "int32", "fp8", "fp16", "bf16", "fp32", "fp64", "elementwise")
UNIT_KINDS = ("matrix", "vector")


@dataclass(frozen=True)
class Quantity:
    """One number of a spec and where it came from; `note` holds a derivation or the reason for doubt."""

    value: float
    source: str
    confidence: str
    note: str = ""
    low: float | None = None
    high: float | None = None

    @property
    def bounds(self) -> tuple[float, float] | None:
        """(low, high) of an uncertain number, None for any other."""
        return None if self.low is None or self.high is None else (self.low, self.high)

    def cite(self) -> str:
        """`source [confidence, low-high]: note`, the text a report prints next to the number."""
        spread = "" if self.bounds is None else f", {self.low:.4g}-{self.high:.4g}"
        text = f"{self.source} [{self.confidence}{spread}]"
        return f"{text}: {self.note}" if self.note else text

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"value": self.value, "source": self.source, "confidence": self.confidence}
        data["note"] = self.note
        if self.bounds is not None:
            data["low"], data["high"] = self.bounds
        return data


@dataclass(frozen=True)
class MemoryLevel:
    """A memory level of one device. Distributed levels (shared memory per SM) give the device total."""

    name: str
    description: str
    on_chip: bool
    capacity: Quantity
    energy: Quantity
    bandwidth: Quantity | None = None
    capacity_per_unit: Quantity | None = None
    usable_fraction: Quantity | None = None
    reserved: Quantity | None = None
    usable_why: str = ""

    @property
    def capacity_bytes(self) -> float:
        return self.capacity.value

    @property
    def usable_bytes(self) -> float:
        """What a model can hold here: capacity x usable fraction - reserved bytes (the outermost level gives
        them: an OS or driver limit, a runtime's own allocations; `usable_why` says which)."""
        fraction = 1.0 if self.usable_fraction is None else self.usable_fraction.value
        reserved = 0.0 if self.reserved is None else self.reserved.value
        return self.capacity_bytes * fraction - reserved

    def describe_usable(self) -> str:
        """`144 of 192 GB of dram usable (Metal's default working-set limit, 75%)`: usable of total, and why."""
        scale, unit = (1e9, "GB") if self.capacity_bytes >= 1e9 else (1e6, "MB")
        terms = [self.usable_why] if self.usable_why else []
        if self.usable_fraction is not None:
            terms.append(f"{self.usable_fraction.value:.0%}")
        if self.reserved is not None:
            terms.append(f"{self.reserved.value / scale:.3g} {unit} reserved")
        usable, total = f"{self.usable_bytes / scale:.3g}", f"{self.capacity_bytes / scale:.3g} {unit}"
        if not terms:
            return f"{total} of {self.name}"
        return f"{usable} of {total} of {self.name} usable ({', '.join(terms)})"

    @property
    def bandwidth_bytes_per_s(self) -> float | None:
        return None if self.bandwidth is None else self.bandwidth.value

    @property
    def energy_pj_per_bit(self) -> float:
        return self.energy.value


@dataclass(frozen=True)
class ComputeUnit:
    """An execution unit (a matrix array, vector ALUs) with its dense peak rate per dtype in ops/s (MAC = 2)."""

    name: str
    kind: str
    description: str
    peak_ops_per_s: Mapping[str, Quantity]
    count: Quantity | None = None
    count_of: str = ""


@dataclass(frozen=True)
class ComputeUnits:
    """The device's replicated blocks: SMs, CUs, GPU cores, Groq lanes, CPU cores."""

    kind: str
    count: Quantity


@dataclass(frozen=True)
class Interconnect:
    """Device-to-device links. `bandwidth` is per device, both directions together."""

    kind: str
    description: str
    bandwidth: Quantity
    links: Quantity | None = None
    link_bandwidth: Quantity | None = None
    hop_latency: Quantity | None = None
    peer_links: Quantity | None = None

    @property
    def bandwidth_bytes_per_s(self) -> float:
        return self.bandwidth.value

    @property
    def peer_bytes_per_s(self) -> float:
        """Bandwidth from one device to one peer, one direction: `peer_links` links of `link_bandwidth` each
        where the spec gives them (point-to-point links, Groq's C2C), else half the both-directions figure (a
        switch gives every device its full bandwidth to any peer: NVLink with NVSwitch)."""
        if self.peer_links is not None and self.link_bandwidth is not None:
            return self.peer_links.value * self.link_bandwidth.value
        return self.bandwidth.value / 2

    @property
    def hop_seconds(self) -> float:
        return self.hop_latency.value if self.hop_latency is not None else 0.0


@dataclass(frozen=True)
class Network:
    """Links between nodes: one NIC per device. `bandwidth` is per device, one direction."""

    kind: str
    description: str
    bandwidth: Quantity
    latency: Quantity

    @property
    def bytes_per_s(self) -> float:
        return self.bandwidth.value


@dataclass(frozen=True)
class Power:
    """Power limits: average power may never exceed `tdp`; `static` is drawn for the whole run."""

    tdp: Quantity
    static: Quantity
    typical: Quantity | None = None


@dataclass(frozen=True)
class System:
    """How many devices a system holds, where known."""

    devices_per_node: Quantity | None = None
    devices_per_rack: Quantity | None = None
    max_devices: Quantity | None = None
    hops_between_nodes: Quantity | None = None


@dataclass(frozen=True)
class Energy:
    """Energy per operation (pJ) from a reference table, times `process_scale` for the target's node."""

    reference: str
    per_op_pj: Mapping[str, Quantity]
    process_scale: Quantity

    def op_pj(self, op: str) -> float:
        """Energy of one `op` (e.g. `int8_mac`, `fp16_add`) on this target, scale applied."""
        if op not in self.per_op_pj:
            raise ValueError(f"no energy for op {op!r} (known: {', '.join(sorted(self.per_op_pj))})")
        return self.per_op_pj[op].value * self.process_scale.value


@dataclass(frozen=True)
class HardwareSpec:
    """One hardware target as data. `memory` runs outermost first: `memory[0]` is where the weights live."""

    name: str
    family: str
    vendor: str
    description: str
    path: str
    compute_units: ComputeUnits
    memory: tuple[MemoryLevel, ...]
    compute: tuple[ComputeUnit, ...]
    power: Power
    system: System
    energy: Energy
    quantities: Mapping[str, Quantity] = field(repr=False)
    clock: Quantity | None = None
    process_nm: Quantity | None = None
    interconnect: Interconnect | None = None
    network: Network | None = None
    details: Mapping[str, Quantity] = field(default_factory=lambda: MappingProxyType({}))
    measured_at: str | None = None

    @property
    def main_memory(self) -> MemoryLevel:
        """The outermost level: HBM on a GPU, unified DRAM on Apple, SRAM on Groq."""
        return self.memory[0]

    @property
    def on_chip_bytes(self) -> float:
        """Total capacity of the on-chip levels (SRAM, caches, shared memory)."""
        return sum(level.capacity_bytes for level in self.memory if level.on_chip)

    def memory_level(self, name: str) -> MemoryLevel:
        for level in self.memory:
            if level.name == name:
                return level
        raise ValueError(f"{self.name} has no memory level {name!r} (levels: {', '.join(m.name for m in self.memory)})")

    def peak(self, dtype: str) -> Quantity | None:
        """The highest dense peak any unit reaches for `dtype` (ops/s), or None when no unit has a figure for it."""
        rates = [unit.peak_ops_per_s[dtype] for unit in self.compute if dtype in unit.peak_ops_per_s]
        return max(rates, key=lambda q: q.value) if rates else None

    def peak_ops_per_s(self, dtype: str) -> float | None:
        found = self.peak(dtype)
        return None if found is None else found.value

    def summary(self) -> dict[str, Any]:
        """The key figures `q35c targets` lists, as plain numbers (bytes, bytes/s, ops/s, W)."""
        main = self.main_memory
        return {
            "name": self.name,
            "family": self.family,
            "vendor": self.vendor,
            "description": self.description,
            "memory_level": main.name,
            "memory_bytes": main.capacity_bytes,
            "memory_bandwidth_bytes_per_s": main.bandwidth_bytes_per_s,
            "peak_fp16_ops_per_s": self.peak_ops_per_s("fp16"),
            "peak_int8_ops_per_s": self.peak_ops_per_s("int8"),
            "peak_fp32_ops_per_s": self.peak_ops_per_s("fp32"),
            "on_chip_bytes": self.on_chip_bytes,
            "tdp_w": self.power.tdp.value,
            "interconnect": None
            if self.interconnect is None
            else {"kind": self.interconnect.kind, "bandwidth_bytes_per_s": self.interconnect.bandwidth_bytes_per_s},
            "measured_at": self.measured_at,
        }

    def quantity(self, path: str) -> Quantity:
        """The quantity at a dotted path such as `memory.hbm.bandwidth_bytes_per_s` or `power.tdp_w`."""
        if path not in self.quantities:
            raise ValueError(f"{self.name} has no value {path!r} (known: {', '.join(self.quantities)})")
        return self.quantities[path]

    def source_of(self, path: str) -> str:
        """Where the number at `path` came from, with its confidence and any derivation."""
        return self.quantity(path).cite()

    def to_dict(self) -> dict[str, Any]:
        """Everything, for JSON output: the identity plus every quantity with its source."""
        return {
            "name": self.name,
            "family": self.family,
            "vendor": self.vendor,
            "description": self.description,
            "path": self.path,
            "measured_at": self.measured_at,
            "memory": [{"name": m.name, "on_chip": m.on_chip, "description": m.description} for m in self.memory],
            "compute": [{"name": c.name, "kind": c.kind, "description": c.description} for c in self.compute],
            "interconnect": None if self.interconnect is None else self.interconnect.kind,
            "energy_reference": self.energy.reference,
            "quantities": {path: q.to_dict() for path, q in self.quantities.items()},
        }


def spec_names(spec_dir: Path | None = None) -> list[str]:
    """The names of all targets, sorted (the `*.toml` files of the spec directory, except shared `_*.toml`)."""
    directory = SPEC_DIR if spec_dir is None else Path(spec_dir)
    return sorted(p.stem for p in directory.glob("*.toml") if not p.name.startswith("_"))


def load_spec(name: str, spec_dir: Path | None = None) -> HardwareSpec:
    """Load and validate `<spec_dir>/<name>.toml` (the package's specs by default).

    Raises ValueError for an unknown name (listing the valid ones) and for any malformed file (naming the file and
    the key). The host spec measures the machine on first use (see `host_probe`) and caches the result.
    """
    directory = SPEC_DIR if spec_dir is None else Path(spec_dir)
    names = spec_names(directory)
    if name not in names:
        hint = did_you_mean(name, names)
        raise Q35Error(f"unknown target {name!r} (valid targets: {', '.join(names)}){hint and '; '}{hint}")
    from q35c.targets.spec_loader import read_spec  # the loader builds the dataclasses above

    return read_spec(directory / f"{name}.toml", name)
