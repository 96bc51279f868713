"""Usable memory: a device holds a model in capacity x usable fraction - reserved bytes of its outermost level,
not its whole capacity (Metal's working-set limit, a GPU runtime's reserve, the host OS's share)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from q35c.predict.predictor import Predictor, Scenario
from q35c.targets import host_probe
from q35c.targets.placement import Placement
from q35c.targets.spec import load_spec, spec_names
from q35c.targets.target import DoesNotFit, get_target


@pytest.fixture(autouse=True)
def host_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A tiny (fast) host measurement in a private cache, so the host spec loads quickly."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("Q35C_CACHE_DIR", str(cache))
    host_probe.save(host_probe.measure(array_bytes=1 << 16, matmul_n=32, min_seconds=0.0))
    yield cache


@pytest.mark.parametrize("name", spec_names())
def test_usable_bytes_are_below_capacity(name: str) -> None:
    target = get_target(name)
    main = target.spec.main_memory
    assert 0 < target.device_bytes() < main.capacity_bytes
    assert target.device_bytes() == main.usable_bytes
    assert "usable" in main.describe_usable()


def placement(model: str, name: str, **kwargs: int) -> Placement:
    """Where `model` at q3p5 runs on target `name` (batch 1, prompt 512, generate 128)."""
    return Predictor(model, "q3p5", Scenario(1, 512, 128)).placement(get_target(name), **kwargs)


def test_405b_q3p5_needs_two_mi300x() -> None:
    assert placement("llama-3.1-405b", "mi300x").devices == 2
    with pytest.raises(DoesNotFit, match="cannot hold the model"):
        placement("llama-3.1-405b", "mi300x", devices=1)


def test_405b_q3p5_does_not_fit_one_m2_ultra_and_says_why() -> None:
    with pytest.raises(DoesNotFit) as err:
        placement("llama-3.1-405b", "m2-ultra")
    message = str(err.value)
    assert "at most 1" in message and "one Mac" in message
    assert "143 of 192 GB of dram usable" in message and "Metal's default working-set limit" in message


@pytest.mark.parametrize("name", ["mi300x", "m2-ultra"])
def test_70b_q3p5_still_fits_one(name: str) -> None:
    assert placement("llama-2-70b", name).devices == 1


def test_explanation_states_usable_of_total() -> None:
    text = get_target("m2-ultra").spec.main_memory.describe_usable()
    assert text.startswith("143 of 192 GB of dram usable (Metal's default working-set limit")
    assert "75%" in text


def test_outermost_level_needs_a_usable_fraction_or_reserve(load_error: Callable[[str, str], str]) -> None:
    error = load_error("reserved_bytes = {", "unused_bytes = {")
    assert "memory.hbm" in error


def test_usable_fraction_must_not_exceed_one(spec_dir: Path) -> None:
    path = spec_dir / "h100-sxm.toml"
    text = path.read_text().replace(
        "reserved_bytes = {",
        'usable_fraction = { value = 1.1, source = "x", confidence = "sourced" }\nreserved_bytes = {',
        1,
    )
    path.write_text(text)
    with pytest.raises(ValueError, match=r"usable_fraction.*must lie in"):
        load_spec("h100-sxm", spec_dir=spec_dir)


def test_reserve_that_leaves_nothing_is_rejected(load_error: Callable[[str, str], str]) -> None:
    error = load_error(
        "reserved_bytes = { value = 3e9, low = 1e9, high = 8e9",
        "reserved_bytes = { value = 3e9, low = 1e9, high = 90e9",
    )
    assert "leaves nothing" in error
