"""The uncertain numbers of a spec, and copies of a spec or target with one or more of them moved to a bound.

Every spec number marked `uncertain` carries `low` and `high` (`q35c.targets.spec`). A prediction's range comes
from costing the same compiled workloads with copies of the target whose spec has such numbers at their bounds
(`q35c.predict.ranges`); this module says which numbers take part and makes the copies:

- `varied(spec)`: the dotted paths of the uncertain numbers that are varied, in spec order. Numbers that decide
  how many devices a model takes -- the capacity of the outermost memory level, its usable fraction and
  reserve, and the `system` limits -- are *held* at their value (`held`): the device count of a prediction is
  fixed, and a range is about how fast and how costly the same deployment runs.
  A number whose low equals its high has nothing to vary.
- `with_values(spec, {path: value})`: a copy of the spec with those numbers replaced (everything else shared);
  `with_target_values(target, ...)` the same for a target (`dataclasses.replace`, so family fields are kept);
  `with_quantities(spec, {path: Quantity})` replaces whole quantities (bounds too).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType
from typing import TypeVar

from q35c.targets.spec import HardwareSpec, Quantity
from q35c.targets.target import Target

T = TypeVar("T")
TargetT = TypeVar("TargetT", bound=Target)


def held(spec: HardwareSpec, path: str) -> bool:
    """Whether the number at `path` is held at its value for ranges: it sets the device count, not the cost."""
    main = f"memory.{spec.main_memory.name}."
    sizes = ("capacity_bytes", "usable_fraction", "reserved_bytes")
    return any(path == main + key for key in sizes) or path.startswith("system.")


def varied(spec: HardwareSpec) -> tuple[str, ...]:
    """The dotted paths of the uncertain numbers a range varies (see the module docstring)."""
    return tuple(
        path
        for path, q in spec.quantities.items()
        if q.bounds is not None and q.bounds[0] != q.bounds[1] and not held(spec, path)
    )


def with_values(spec: HardwareSpec, values: Mapping[str, float]) -> HardwareSpec:
    """A copy of `spec` with the number at each dotted path of `values` replaced by the value given."""
    return with_quantities(
        spec, {path: dataclasses.replace(spec.quantity(path), value=float(v)) for path, v in values.items()}
    )


def with_quantities(spec: HardwareSpec, quantities: Mapping[str, Quantity]) -> HardwareSpec:
    """A copy of `spec` with the quantity at each dotted path of `quantities` replaced (value, bounds, source)."""
    swaps = {id(spec.quantity(path)): q for path, q in quantities.items()}
    return _swap(spec, swaps) if swaps else spec


def with_target_values(target: TargetT, values: Mapping[str, float]) -> TargetT:
    """A copy of `target` (of its own class) whose spec has the numbers of `values` replaced."""
    return dataclasses.replace(target, spec=with_values(target.spec, values))


def _swap(obj: T, swaps: Mapping[int, Quantity]) -> T:
    """`obj` with every quantity whose identity is a key of `swaps` replaced, rebuilding only what changed.

    A spec holds each quantity once and refers to it from both its structure and `quantities`, so identity
    finds every place a number is read from."""
    if isinstance(obj, Quantity):
        return swaps.get(id(obj), obj)  # type: ignore[return-value]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        changes = {}
        for f in dataclasses.fields(obj):
            old = getattr(obj, f.name)
            new = _swap(old, swaps)
            if new is not old:
                changes[f.name] = new
        return dataclasses.replace(obj, **changes) if changes else obj  # type: ignore[type-var]
    if isinstance(obj, tuple):
        items = tuple(_swap(item, swaps) for item in obj)
        return items if any(a is not b for a, b in zip(items, obj, strict=True)) else obj  # type: ignore[return-value]
    if isinstance(obj, Mapping):
        entries = {key: _swap(item, swaps) for key, item in obj.items()}
        if any(entries[key] is not item for key, item in obj.items()):
            return MappingProxyType(entries)  # type: ignore[return-value]
    return obj
