"""The range of a prediction: its figures recomputed with the spec's uncertain numbers at their bounds.

Every spec number marked `uncertain` has a `low` and a `high` (`q35c.targets.spec`). `spread` takes the
target, a function that costs the already compiled workloads on a target (`Target.estimate` reruns; nothing is
compiled again) and returns the figures, and the nominal figures, and gives each ranged figure (`RANGED`) a
(low, high):

1. One at a time: each varied number (`q35c.targets.uncertainty.varied`; the numbers that set the device count
   are held at their value, and the device count with them) is put at its low and at its high, the rest at
   their values: 2 n costings.
2. All-adverse corners: for each figure and each direction, every number that moved the figure that way in
   step 1 is put at the bound that did, all at once, and the figure is costed at that corner. A number that
   moved it neither way stays at its value.
3. The range is the smallest interval holding the nominal figure, the corner and every one-at-a-time value.

Why corners rather than summing the one-at-a-time deviations: the cost model is monotone in each number but not
additive -- a time is the max over resources, and an energy cap stretches it only past a threshold -- so summed
deviations can overstate (two bandwidths of which only one binds) or understate (a higher energy per bit and a
lower TDP together crossing the power cap) what the numbers do together; the corner is costed, not added up. It
assumes each number's effect has one direction whatever the others' values (monotonicity), and treats the
numbers as independent, each possibly at either bound: a worst case, not a confidence interval.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

from q35c.targets.target import Target
from q35c.targets.uncertainty import varied, with_target_values

RANGED = ("decode_tok_s", "ms_per_token", "prefill_tok_s", "joules_per_token")
"""The figures that carry a range (`<figure>_low`, `<figure>_high` in results)."""

Figures = Mapping[str, float | None]
T = TypeVar("T", bound=Target)


def spread(
    target: T, figures: Callable[[T], Figures], nominal: Figures, names: tuple[str, ...] = RANGED
) -> dict[str, tuple[float, float]]:
    """(low, high) of each figure of `names` that `nominal` has (see the module docstring for the rule)."""
    spec = target.spec
    paths = varied(spec)
    bounds = {path: spec.quantity(path).bounds for path in paths}
    singles: dict[tuple[str, float], Figures] = {}
    for path in paths:
        for value in bounds[path] or ():
            singles[path, value] = figures(with_target_values(target, {path: value}))
    corners: dict[tuple[tuple[str, float], ...], Figures] = {}
    result: dict[str, tuple[float, float]] = {}
    for name in names:
        center = nominal.get(name)
        if center is None:
            continue
        seen = [center] + [v for f in singles.values() if (v := f.get(name)) is not None]
        for sign in (-1.0, 1.0):
            corner = _adverse(name, sign, center, paths, singles)
            if not corner:
                continue
            key = tuple(sorted(corner.items()))
            if key not in corners:
                corners[key] = figures(with_target_values(target, corner))
            value = corners[key].get(name)
            if value is not None:
                seen.append(value)
        result[name] = (min(seen), max(seen))
    return result


def _adverse(
    name: str, sign: float, center: float, paths: tuple[str, ...], singles: Mapping[tuple[str, float], Figures]
) -> dict[str, float]:
    """The corner that pushes figure `name` down (sign -1) or up (+1): each number at the bound that moved it
    furthest that way on its own; numbers that did not move it that way are left out (at their value)."""
    corner: dict[str, float] = {}
    for path in paths:
        best, shift = None, 0.0
        for (p, value), figs in singles.items():
            moved = figs.get(name)
            if p != path or moved is None:
                continue
            if sign * (moved - center) > shift:
                best, shift = value, sign * (moved - center)
        if best is not None:
            corner[path] = best
    return corner
