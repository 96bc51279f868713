"""Target facts as pass options: what `tile` and `schedule-memory` need of a target, as the fields of the passes.

Passes never import `q35c.targets`; they take a target's facts as options (frozen-dataclass fields):

    tile             budget-bytes, align-n, max-n, max-k, weight-buffers, keep-int-codes,  (`Target.tile_policy`)
                     prefer-n
    schedule-memory  spaces, tile-space, budget-bytes, per                                   (`Target.tile_level`)

`tile_options(target)` and `schedule_options(target)` give them as keyword arguments (`TilePass(**tile_options(t))`).
`expand(pass_name, options)` does the same for a parsed pipeline (`q35c opt -p 'tile{target=groq-lpu}'`): it
replaces `target=NAME` by the options that target gives the pass, options given explicitly winning (`budget-bytes`
and `keep-int-codes` also steer the derived ones, as in the target pipelines). A pass that takes nothing from a
target, or has no `target=`, is left as it is.

>>> expand("tile", {"target": ("groq-lpu",)})["max_n"], expand("tile", {"tile_n": (64,)})
((320,), {'tile_n': (64,)})
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from q35c.targets.registry import get_target
from q35c.targets.target import Target
from q35c.util.errors import Q35Error

Parameter = str | int | bool | float
Parameters = tuple[Parameter, ...]


def tile_options(target: Target, budget_bytes: int = 0, keep_int_codes: bool | None = None) -> dict[str, Any]:
    """The `tile` pass's options for `target`: its tile policy (`budget_bytes` overriding the level's budget,
    `keep_int_codes` the family's choice). Max sizes of 0 mean uncapped."""
    policy = target.tile_policy(budget_bytes, keep_int_codes)
    return {
        "budget_bytes": policy.budget_bytes,
        "align_n": policy.align_n,
        "max_n": policy.max_n or 0,
        "max_k": policy.max_k or 0,
        "weight_buffers": policy.weight_buffers,
        "keep_int_codes": policy.keep_int_codes,
        "prefer_n": policy.prefer_n,
    }


def schedule_options(target: Target, budget_bytes: int = 0) -> dict[str, Any]:
    """The `schedule-memory` pass's options for `target`: the names of its memory spaces, the tile level's space,
    budget and unit (`budget_bytes` overriding the budget). No target name: targets with the same memory share one
    compile, and the scheduled module records the facts it was scheduled with, not whose they are."""
    level = target.tile_level(budget_bytes)
    return {
        "spaces": target.memory_spaces(level),
        "tile_space": level.memory_space,
        "budget_bytes": level.budget_bytes,
        "per": level.per,
    }


def _one(options: Mapping[str, Parameters], key: str, kind: type) -> Any:
    """The single value of option `key` (None when absent), which must be of `kind`."""
    if key not in options:
        return None
    values = options[key]
    value = values[0] if len(values) == 1 else None
    if kind is str and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # a target named like a number
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        what = {str: "a name", int: "an integer", bool: "true or false"}[kind]
        raise Q35Error(f"option {key.replace('_', '-')} takes {what}, got {','.join(map(str, values)) or 'nothing'}")
    return value


def _tile(target: Target, given: dict[str, Parameters]) -> dict[str, Any]:
    return tile_options(target, _one(given, "budget_bytes", int) or 0, _one(given, "keep_int_codes", bool))


def _schedule(target: Target, given: dict[str, Parameters]) -> dict[str, Any]:
    return schedule_options(target, _one(given, "budget_bytes", int) or 0)


EXPANSIONS: dict[str, Callable[[Target, dict[str, Parameters]], dict[str, Any]]] = {
    "tile": _tile,
    "schedule-memory": _schedule,
}


def _parameters(value: Any) -> Parameters:
    return tuple(value) if isinstance(value, tuple) else (value,)


def expand(pass_name: str, options: Mapping[str, Parameters]) -> dict[str, Parameters]:
    """The options of pass `pass_name` (names with underscores, values as parsed: tuples) with `target=NAME`
    replaced by what the target gives the pass (see the module docstring).

    ValueError for an unknown target (listing the valid ones) or a target that cannot give the options."""
    given = dict(options)
    if "target" not in given or pass_name not in EXPANSIONS:
        return given
    target = get_target(_one(given, "target", str))
    del given["target"]
    derived = EXPANSIONS[pass_name](target, given)
    return {**{key: _parameters(value) for key, value in derived.items()}, **given}
