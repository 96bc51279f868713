"""Reading and validating one hardware spec file (`targets/specs/<name>.toml`) into a `HardwareSpec`.

`read_spec(path, name)` walks the file, checks every key (unknown or missing keys, types, non-negative finite
values, a source for every number, a note for every derived or uncertain one, `low <= value <= high` bounds on
every uncertain number and on no other, capacities that add up, static power below TDP even at their bounds)
and collects each quantity under its dotted path. Errors are ValueErrors naming the file and
the key. The host spec's `from = "probe:..."`/`"os:..."` quantities are measured here (`host_probe`). The file
format is described in `q35c.targets.spec`.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, NoReturn

from q35c.targets.registry import families
from q35c.targets.spec import (
    DTYPES,
    UNIT_KINDS,
    ComputeUnit,
    ComputeUnits,
    Energy,
    HardwareSpec,
    Interconnect,
    MemoryLevel,
    Network,
    Power,
    Quantity,
    System,
)
from q35c.util.errors import Q35Error


def read_spec(path: Path, name: str) -> HardwareSpec:
    """Parse and validate the spec file at `path`, which must describe the target `name`.

    A run asks for the same targets many times (resolving names, building pipelines, placing, costing), so a
    spec read before is returned again while what it was read from is unchanged: the file's bytes, the shared
    tables beside it (`_*.toml`) and the registered families (`_SpecKey`). A spec with measured values (the
    host's `probe:` and `os:` quantities) is read every time."""
    key = _spec_key(path, name)
    if key is not None and (known := _READ.get(key)) is not None:
        return known
    spec = _Reader(path, _read_toml(path)).spec(name)
    if key is not None:
        _READ[key] = spec
    return spec


# What a spec was read from: the file (path, name, bytes), the shared tables beside it (name, bytes each) and the
# registered families.
_SpecKey = tuple[str, str, bytes, tuple[tuple[str, bytes], ...], tuple[str, ...]]
_READ: dict[_SpecKey, HardwareSpec] = {}
_MEASURED = (b"probe:", b"os:")  # `from` prefixes of quantities measured when the file is read


def _spec_key(path: Path, name: str) -> _SpecKey | None:
    """The cache key of the spec at `path` (None when it is not to be cached: unreadable, or measured)."""
    try:
        data = path.read_bytes()
        shared = tuple((p.name, p.read_bytes()) for p in sorted(path.parent.glob("_*.toml")))
    except OSError:
        return None
    if any(prefix in data for prefix in _MEASURED):
        return None
    return (str(path), name, data, shared, families())


class _Unavailable(Exception):
    """A run-time value (`from = "os:..."`) that this machine does not report."""


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as err:
        raise Q35Error(f"{path}: invalid TOML: {err}") from None


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


class _Reader:
    """Walks one spec file, checking every key and collecting each quantity under its dotted path."""

    def __init__(self, path: Path, raw: dict[str, Any]) -> None:
        self.path = path
        self.raw = raw
        self.quantities: dict[str, Quantity] = {}
        self.runtime: Mapping[str, tuple[float, str, str] | None] | None = None
        self.measured_at: str | None = None

    def fail(self, key: str, message: str) -> NoReturn:
        raise Q35Error(f"{self.path}: key {key!r}: {message}")

    def table(self, raw: object, key: str, required: Iterable[str], optional: Iterable[str] = ()) -> dict[str, Any]:
        required, optional = tuple(required), tuple(optional)
        if not isinstance(raw, dict):
            self.fail(key or "<top level>", f"expected a table, got {type(raw).__name__}")
        for k in raw:
            if k not in required and k not in optional:
                self.fail(_join(key, k), f"unknown key (expected: {', '.join(required + optional)})")
        for k in required:
            if k not in raw:
                self.fail(_join(key, k), "missing")
        return raw

    def text(self, raw: dict[str, Any], key: str, prefix: str) -> str:
        value = raw.get(key)
        if not isinstance(value, str) or not value.strip():
            self.fail(_join(prefix, key), "expected a non-empty string")
        return value

    def quantity(self, raw: dict[str, Any], key: str, prefix: str, optional: bool = False) -> Quantity | None:
        path = _join(prefix, key)
        if key not in raw:
            if optional:
                return None
            self.fail(path, "missing")
        q = self.table(raw[key], path, (), ("value", "from", "source", "confidence", "note", "low", "high"))
        note = q.get("note", "")
        if not isinstance(note, str):
            self.fail(path, "note must be a string")
        result = self.runtime_quantity(q, path, note) if "from" in q else self.file_quantity(q, path, note)
        self.quantities[path] = result
        return result

    def file_quantity(self, q: dict[str, Any], path: str, note: str) -> Quantity:
        if "value" not in q:
            self.fail(path, "a quantity needs `value` (or `from` in the host spec)")
        value = q["value"]
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            self.fail(path, f"value must be a finite number, got {value!r}")
        if value < 0:
            self.fail(path, f"value is negative ({value})")
        source = q.get("source")
        if not isinstance(source, str) or not source.strip():
            self.fail(path, "has no source")
        confidence = q.get("confidence")
        if confidence not in ("sourced", "derived", "uncertain"):
            self.fail(path, f"confidence must be sourced, derived or uncertain, got {confidence!r}")
        if confidence in ("derived", "uncertain") and not note.strip():
            self.fail(path, f"a {confidence} value needs a note (its derivation, or why it is uncertain)")
        low, high = self.bounds(q, path, value, confidence)
        return Quantity(value, source, confidence, note, low, high)

    def bounds(self, q: dict[str, Any], path: str, value: float, confidence: str) -> tuple[float | None, float | None]:
        """(low, high): required of an uncertain number, with low <= value <= high; rejected on any other."""
        given = [k for k in ("low", "high") if k in q]
        if confidence != "uncertain":
            if given:
                self.fail(path, f"`{given[0]}` is only for uncertain numbers (this one is {confidence})")
            return None, None
        missing = [k for k in ("low", "high") if k not in q]
        if missing:
            self.fail(path, f"an uncertain value needs `low` and `high` (justified in the note); no `{missing[0]}`")
        low, high = q["low"], q["high"]
        for k, bound in (("low", low), ("high", high)):
            if isinstance(bound, bool) or not isinstance(bound, int | float) or not math.isfinite(bound):
                self.fail(path, f"{k} must be a finite number, got {bound!r}")
            if bound < 0:
                self.fail(path, f"{k} is negative ({bound})")
        if not low <= value <= high:
            self.fail(path, f"needs low <= value <= high, got low {low}, value {value}, high {high}")
        return float(low), float(high)

    def runtime_quantity(self, q: dict[str, Any], path: str, note: str) -> Quantity:
        from q35c.targets import host_probe  # only the host spec measures anything

        if any(k in q for k in ("value", "source", "confidence", "low", "high")):
            self.fail(path, "a `from` quantity takes its value, source and confidence from the measurement")
        if self.runtime is None:
            measurement = host_probe.measurement()
            self.runtime = host_probe.runtime_values(measurement)
            self.measured_at = measurement.measured_at
        key = q["from"]
        if key not in self.runtime:
            self.fail(path, f"unknown run-time value {key!r} (known: {', '.join(self.runtime)})")
        found = self.runtime[key]
        if found is None:
            raise _Unavailable(path)
        value, source, what = found
        return Quantity(value, source, "measured", f"{what}; {note}" if note else what)

    def spec(self, name: str) -> HardwareSpec:
        raw = self.table(
            self.raw,
            "",
            ("name", "family", "vendor", "description", "compute_units", "memory", "compute", "power", "energy"),
            ("clock_hz", "process_nm", "interconnect", "network", "system", "details"),
        )
        if raw["name"] != name:
            self.fail("name", f"is {raw['name']!r} but the file is {name}.toml")
        family = self.text(raw, "family", "")
        if family not in families():
            self.fail("family", f"unknown family {family!r} (expected: {', '.join(families())})")
        try:
            units = self.compute_units(raw["compute_units"])
            clock = self.quantity(raw, "clock_hz", "", optional=True)
            process = self.quantity(raw, "process_nm", "", optional=True)
            memory = self.memory(raw["memory"], units)
            compute = self.compute(raw["compute"])
            interconnect = self.interconnect(raw["interconnect"]) if "interconnect" in raw else None
            network = self.network(raw["network"]) if "network" in raw else None
            power = self.power(raw["power"])
            system = self.system(raw.get("system", {}))
            energy = self.energy(raw["energy"])
            details = self.details(raw.get("details", {}))
        except _Unavailable as missing:
            self.fail(str(missing), "this machine does not report it")
        return HardwareSpec(
            name=name,
            family=family,
            vendor=self.text(raw, "vendor", ""),
            description=self.text(raw, "description", ""),
            path=str(self.path),
            compute_units=units,
            memory=memory,
            compute=compute,
            power=power,
            system=system,
            energy=energy,
            quantities=MappingProxyType(dict(self.quantities)),
            clock=clock,
            process_nm=process,
            interconnect=interconnect,
            network=network,
            details=details,
            measured_at=self.measured_at,
        )

    def compute_units(self, raw: object) -> ComputeUnits:
        t = self.table(raw, "compute_units", ("kind", "count"))
        return ComputeUnits(self.text(t, "kind", "compute_units"), self.required(t, "count", "compute_units"))

    def required(self, raw: dict[str, Any], key: str, prefix: str) -> Quantity:
        q = self.quantity(raw, key, prefix)
        assert q is not None
        return q

    def named_list(self, raw: object, key: str) -> list[tuple[str, dict[str, Any]]]:
        if not isinstance(raw, list) or not raw:
            self.fail(key, "expected a non-empty array of tables ([[" + key + "]])")
        seen: list[tuple[str, dict[str, Any]]] = []
        for i, item in enumerate(raw):
            if not isinstance(item, dict):
                self.fail(f"{key}[{i}]", "expected a table")
            name = self.text(item, "name", f"{key}[{i}]")
            if any(name == other for other, _ in seen):
                self.fail(f"{key}.{name}", "appears twice")
            seen.append((name, item))
        return seen

    def memory(self, raw: object, units: ComputeUnits) -> tuple[MemoryLevel, ...]:
        levels: list[MemoryLevel] = []
        for index, (name, item) in enumerate(self.named_list(raw, "memory")):
            prefix = f"memory.{name}"
            usable_keys = ("usable_fraction", "reserved_bytes", "usable")
            t = self.table(
                item,
                prefix,
                ("name", "description", "on_chip", "capacity_bytes", "energy_pj_per_bit"),
                ("bandwidth_bytes_per_s", "capacity_per_unit_bytes", *(usable_keys if index == 0 else ())),
            )
            if not isinstance(t["on_chip"], bool):
                self.fail(f"{prefix}.on_chip", "expected true or false")
            try:
                capacity = self.required(t, "capacity_bytes", prefix)
            except _Unavailable:
                continue  # a cache level the OS does not report is left out of the host spec
            per_unit = self.quantity(t, "capacity_per_unit_bytes", prefix, optional=True)
            if per_unit is not None:
                expected = per_unit.value * units.count.value
                if not math.isclose(capacity.value, expected, rel_tol=1e-9):
                    self.fail(f"{prefix}.capacity_bytes", f"is {capacity.value}, but per unit x units = {expected}")
            fraction, reserved, why = self.usable(t, prefix, capacity) if index == 0 else (None, None, "")
            levels.append(
                MemoryLevel(
                    name=name,
                    description=self.text(t, "description", prefix),
                    on_chip=t["on_chip"],
                    capacity=capacity,
                    energy=self.required(t, "energy_pj_per_bit", prefix),
                    bandwidth=self.quantity(t, "bandwidth_bytes_per_s", prefix, optional=True),
                    capacity_per_unit=per_unit,
                    usable_fraction=fraction,
                    reserved=reserved,
                    usable_why=why,
                )
            )
        return tuple(levels)

    def usable(
        self, t: dict[str, Any], prefix: str, capacity: Quantity
    ) -> tuple[Quantity | None, Quantity | None, str]:
        """(usable fraction, reserved bytes, why) of the outermost level: at least one of the two numbers, a
        fraction in (0, 1] at its value and bounds, and something left to use even at the adverse bounds."""
        fraction = self.quantity(t, "usable_fraction", prefix, optional=True)
        reserved = self.quantity(t, "reserved_bytes", prefix, optional=True)
        if fraction is None and reserved is None:
            self.fail(
                f"{prefix}.usable_fraction", "missing (the outermost level needs usable_fraction or reserved_bytes)"
            )
        why = self.text(t, "usable", prefix)
        if fraction is not None:
            for side in (fraction.value, *(fraction.bounds or ())):
                if not 0 < side <= 1:
                    self.fail(f"{prefix}.usable_fraction", f"must lie in (0, 1] at its value and bounds, got {side}")
        lowest = (capacity.low if capacity.low is not None else capacity.value) * (
            1.0 if fraction is None else (fraction.low if fraction.low is not None else fraction.value)
        )
        most_reserved = 0.0 if reserved is None else (reserved.high if reserved.high is not None else reserved.value)
        if most_reserved >= lowest:
            self.fail(f"{prefix}.reserved_bytes", f"at its high ({most_reserved:g}) leaves nothing of {lowest:g} bytes")
        return fraction, reserved, why

    def compute(self, raw: object) -> tuple[ComputeUnit, ...]:
        result: list[ComputeUnit] = []
        for name, item in self.named_list(raw, "compute"):
            prefix = f"compute.{name}"
            t = self.table(item, prefix, ("name", "kind", "description", "peak_ops_per_s"), ("count", "count_of"))
            if t["kind"] not in UNIT_KINDS:
                self.fail(f"{prefix}.kind", f"unknown kind {t['kind']!r} (expected: {', '.join(UNIT_KINDS)})")
            peaks_prefix = f"{prefix}.peak_ops_per_s"
            peaks = self.table(t["peak_ops_per_s"], peaks_prefix, (), DTYPES)
            if not peaks:
                self.fail(peaks_prefix, "needs at least one dtype")
            count = self.quantity(t, "count", prefix, optional=True)
            if count is not None and "count_of" not in t:
                self.fail(f"{prefix}.count_of", "missing (what `count` counts: MACs, ALUs, ...)")
            result.append(
                ComputeUnit(
                    name=name,
                    kind=t["kind"],
                    description=self.text(t, "description", prefix),
                    peak_ops_per_s=MappingProxyType({d: self.required(peaks, d, peaks_prefix) for d in peaks}),
                    count=count,
                    count_of=self.text(t, "count_of", prefix) if count is not None else "",
                )
            )
        return tuple(result)

    def interconnect(self, raw: object) -> Interconnect:
        p = "interconnect"
        t = self.table(
            raw,
            p,
            ("kind", "description", "bandwidth_bytes_per_s"),
            ("links", "link_bandwidth_bytes_per_s", "hop_latency_s", "peer_links"),
        )
        return Interconnect(
            kind=self.text(t, "kind", p),
            description=self.text(t, "description", p),
            bandwidth=self.required(t, "bandwidth_bytes_per_s", p),
            links=self.quantity(t, "links", p, optional=True),
            link_bandwidth=self.quantity(t, "link_bandwidth_bytes_per_s", p, optional=True),
            hop_latency=self.quantity(t, "hop_latency_s", p, optional=True),
            peer_links=self.quantity(t, "peer_links", p, optional=True),
        )

    def network(self, raw: object) -> Network:
        p = "network"
        t = self.table(raw, p, ("kind", "description", "bandwidth_bytes_per_s", "latency_s"))
        return Network(
            kind=self.text(t, "kind", p),
            description=self.text(t, "description", p),
            bandwidth=self.required(t, "bandwidth_bytes_per_s", p),
            latency=self.required(t, "latency_s", p),
        )

    def power(self, raw: object) -> Power:
        t = self.table(raw, "power", ("tdp_w", "static_w"), ("typical_w",))
        power = Power(
            tdp=self.required(t, "tdp_w", "power"),
            static=self.required(t, "static_w", "power"),
            typical=self.quantity(t, "typical_w", "power", optional=True),
        )
        for q, key in ((power.static, "static_w"), (power.typical, "typical_w")):
            if q is not None and q.value > power.tdp.value:
                self.fail(f"power.{key}", f"{q.value} W exceeds the TDP ({power.tdp.value} W)")
        lowest_tdp = power.tdp.value if power.tdp.low is None else power.tdp.low
        highest_static = power.static.value if power.static.high is None else power.static.high
        if highest_static >= lowest_tdp:
            self.fail("power.static_w", f"at its high ({highest_static} W) reaches the lowest TDP ({lowest_tdp} W)")
        return power

    def system(self, raw: object) -> System:
        keys = ("devices_per_node", "devices_per_rack", "max_devices", "hops_between_nodes")
        t = self.table(raw, "system", (), keys)
        return System(*(self.quantity(t, k, "system", optional=True) for k in keys))

    def energy(self, raw: object) -> Energy:
        t = self.table(raw, "energy", ("per_op", "process_scale"))
        table_name = self.text(t, "per_op", "energy")
        shared_path = self.path.parent / f"_{table_name}.toml"
        if not shared_path.is_file():
            self.fail("energy.per_op", f"no shared table {shared_path.name} next to the spec")
        shared = _Reader(shared_path, _read_toml(shared_path))
        s = shared.table(shared.raw, "", ("reference", "per_op_pj"))
        ops = s["per_op_pj"]
        if not isinstance(ops, dict) or not ops:
            shared.fail("per_op_pj", "expected a non-empty table of quantities")
        per_op = {op: shared.required(ops, op, "energy.per_op_pj") for op in ops}
        self.quantities.update(shared.quantities)
        return Energy(
            reference=shared.text(s, "reference", ""),
            per_op_pj=MappingProxyType(per_op),
            process_scale=self.required(t, "process_scale", "energy"),
        )

    def details(self, raw: object) -> Mapping[str, Quantity]:
        if not isinstance(raw, dict):
            self.fail("details", "expected a table")
        return MappingProxyType({k: self.required(raw, k, "details") for k in raw})
