"""Re-reads follow the schedule and the memory hierarchy: tiling moves main-memory bytes, capacity never helps
by shrinking."""

from __future__ import annotations

import dataclasses
from functools import cache

import pytest

from q35c.analysis.workload import Workload, extract
from q35c.driver.compile import compile_model
from q35c.targets.levels import serving_level
from q35c.targets.target import Target, get_target

PROMPT = 512


@cache
def prefill(target: str, tile_t: int = 0) -> Workload:
    options = {"tile-t": tile_t} if tile_t else {}
    return extract(compile_model("llama-2-7b", target, options, quant="q3p5", seq=PROMPT).module)


def main_bytes(target: Target, work: Workload) -> float:
    return target.estimate(work).bytes[target.spec.main_memory.name]


@pytest.mark.parametrize("name", ["h100-sxm", "m2-max"])
def test_one_token_tiles_reread_the_weights_from_main_memory(name: str) -> None:
    target = get_target(name)
    default, single = prefill(name), prefill(name, tile_t=1)
    assert main_bytes(target, single) >= 3 * main_bytes(target, default)
    assert target.estimate(single).seconds > target.estimate(default).seconds


@pytest.mark.parametrize("name", ["h100-sxm", "m2-max"])
def test_caches_too_small_for_a_layers_weights_send_every_reread_to_main_memory(name: str) -> None:
    """With the on-chip levels smaller than one linear's weights (1 MB), tile-t=1 re-reads every weight tile from
    main memory for each of the 512 tokens: at least 10x the main-memory bytes of the default tiling."""
    target = shrunk(get_target(name), 1e6)
    assert main_bytes(target, prefill(name, tile_t=1)) >= 10 * main_bytes(target, prefill(name))


def shrunk(target: Target, capacity: float, level: str | None = None) -> Target:
    """A copy of `target` whose on-chip levels (or only `level`) hold at most `capacity` bytes."""
    levels = []
    for m in target.spec.memory:
        if m.on_chip and (level is None or m.name == level):
            q = m.capacity_per_unit or m.capacity
            smaller = dataclasses.replace(q, value=min(q.value, capacity))
            m = dataclasses.replace(m, **{"capacity_per_unit" if m.capacity_per_unit else "capacity": smaller})
        levels.append(m)
    spec = dataclasses.replace(target.spec, memory=tuple(levels))
    return dataclasses.replace(target, spec=spec)


@pytest.mark.parametrize("name", ["h100-sxm", "m2-max", "mi300x", "groq-lpu"])
def test_halving_a_level_never_speeds_up_a_kernel(name: str) -> None:
    """Tiles held fixed (the same compiled workload), halving any level's capacity again and again never makes a
    kernel faster or lighter on main memory."""
    target = get_target(name)
    work = prefill("h100-sxm" if name == "groq-lpu" else name)
    kernels = sorted({k.name: k for k in work.kernels if k.rereads}.values(), key=lambda k: k.name)[:4]
    kernels += [k for k in work.kernels if k.name == "linear"][:3]
    assert kernels
    for level in [m.name for m in target.spec.memory if m.on_chip] or [None]:
        before = [target.kernel_cost(k) for k in kernels]
        capacity = max(m.capacity_bytes for m in target.spec.memory)
        current = target
        for _ in range(30):
            capacity /= 2
            current = shrunk(current, capacity, level)
            after = [current.kernel_cost(k) for k in kernels]
            for a, b in zip(before, after, strict=True):
                assert b.seconds >= a.seconds * (1 - 1e-12)
                main = target.spec.main_memory.name
                assert b.bytes.get(main, 0.0) >= a.bytes.get(main, 0.0) * (1 - 1e-12)
            before = after


def test_the_nearest_level_that_holds_the_working_set_serves() -> None:
    spec = get_target("h100-sxm").spec
    assert serving_level(spec, 100e3).name == "smem"  # within one SM's 228 KB
    assert serving_level(spec, 1e6).name == "l2"  # shared memory is per SM: too small, L2 holds it
    assert serving_level(spec, 60e6).name == "hbm"  # beyond the 50 MB L2
    assert serving_level(get_target("m2-max").spec, 40e6).name == "slc"
    assert serving_level(get_target("groq-lpu").spec, 1.0).name == "sram"  # its only level
