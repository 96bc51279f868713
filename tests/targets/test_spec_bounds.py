"""Bounds of uncertain spec numbers: the loader's checks, every spec's bounds, and spec copies at a bound."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from q35c.targets.spec import load_spec, spec_names
from q35c.targets.uncertainty import held, varied, with_values

STATIC = 'static_w = { value = 140, low = 70, high = 280, source = "assumption", confidence = "uncertain"'
TDP = 'tdp_w = { value = 700, source = "NVIDIA H100 datasheet", confidence = "sourced" }'


BAD_BOUNDS = [
    (STATIC, STATIC.replace("low = 70, ", ""), "'power.static_w': an uncertain value needs `low` and `high`"),
    (STATIC, STATIC.replace("low = 70", "low = 150"), "'power.static_w': needs low <= value <= high"),
    (STATIC, STATIC.replace("high = 280", "high = 100"), "'power.static_w': needs low <= value <= high"),
    (STATIC, STATIC.replace("low = 70", 'low = "70"'), "'power.static_w': low must be a finite number"),
    (STATIC, STATIC.replace("high = 280", "high = 700"), "'power.static_w': at its high (700.0 W) reaches"),
    (TDP, TDP.replace("value = 700, ", "value = 700, low = 600, high = 800, "), "'power.tdp_w': `low` is only for"),
]


@pytest.mark.parametrize(("old", "new", "message"), BAD_BOUNDS, ids=[m for _, _, m in BAD_BOUNDS])
def test_the_loader_rejects_bad_bounds(load_error: Callable[[str, str], str], old: str, new: str, message: str) -> None:
    assert message in load_error(old, new)


@pytest.mark.parametrize("name", [n for n in spec_names() if n != "host"] + ["host"])
def test_every_uncertain_number_has_bounds_around_its_value(name: str) -> None:
    spec = load_spec(name)
    for path, q in spec.quantities.items():
        if q.confidence == "uncertain":
            assert q.bounds is not None, path
            assert q.bounds[0] <= q.value <= q.bounds[1], path
            assert "range" in q.note or "low" in q.note, f"{path}: the note should justify the bounds"
        else:
            assert q.bounds is None, path


def test_static_power_has_a_range_on_every_target() -> None:
    for name in spec_names():
        static = load_spec(name).power.static
        assert static.bounds is not None and static.bounds[0] < static.bounds[1], name


def test_capacities_and_system_limits_are_held() -> None:
    spec = load_spec("m2-max")
    assert held(spec, "memory.dram.capacity_bytes") and held(spec, "system.max_devices")
    assert "memory.dram.capacity_bytes" not in varied(spec) and "power.static_w" in varied(spec)


def test_a_copy_at_a_bound_changes_that_number_everywhere_and_nothing_else() -> None:
    spec = load_spec("h100-sxm")
    copy = with_values(spec, {"power.static_w": 280, "memory.hbm.energy_pj_per_bit": 6.0})
    assert copy.power.static.value == 280 and copy.quantity("power.static_w").value == 280
    assert copy.main_memory.energy_pj_per_bit == 6.0 and copy.power.static.bounds == (70, 280)
    assert spec.power.static.value == 140 and spec.main_memory.energy_pj_per_bit == 3.9
    assert copy.compute is spec.compute and copy.power.tdp is spec.power.tdp
