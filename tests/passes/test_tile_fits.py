"""A chosen tile always fits: for random linears, schemes and targets (prefill lengths included), tile choice
followed by schedule-memory never fails when a tile exists, and the peak schedule-memory records for the kernel
never exceeds the working set the tile choice estimated for that tile."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from xdsl.dialects import func
from xdsl.dialects.builtin import DictionaryAttr, IntegerAttr, ModuleOp

from q35c.driver.pipeline import make_context
from q35c.ir.schemes import parse_scheme
from q35c.passes.materialize_weights import MaterializeWeightsPass
from q35c.passes.schedule_memory import ScheduleMemoryPass
from q35c.passes.tile import TilePass
from q35c.passes.tile_choice import (
    LinearShape,
    Tile,
    TileError,
    choose_tile,
    working_set_bytes,
)
from q35c.passes.unpack_bits import UnpackBitsPass
from q35c.targets.pass_options import schedule_options, tile_options
from q35c.targets.spec import spec_names
from q35c.targets.target import get_target
from q35c.verify.linear import linear_module

SCHEMES = (
    "q3p5",
    "q3p5:g=32",
    "q3p5:g=32:container=byte",
    "int4:g=32",
    "int4:g=128",
    "int8",
    "int8:g=64",
    "fp16",
    "q4_0",
    "q8_0",
)
TOKENS = st.one_of(st.sampled_from([1, 2, 3, 17, 64, 100, 512, 2048]), st.integers(1, 300))


@st.composite
def linears(draw: st.DrawFn) -> tuple[int, int, int, str]:
    """(T, N, K, scheme) with K a multiple of the scheme's K alignment (whole groups and storage words)."""
    spec = draw(st.sampled_from(SCHEMES))
    align = parse_scheme(spec).k_alignment
    k = align * draw(st.integers(1, 4096 // align))
    return draw(TOKENS), draw(st.integers(1, 700)), k, spec


def scheduled(t: int, n: int, k: int, spec: str, target: str, keep_int_codes: bool) -> ModuleOp:
    """One linear through tile (sizes chosen for `target`), unpack-bits and schedule-memory."""
    module = linear_module(t, n, k, spec)
    ctx = make_context()
    chosen = get_target(target)
    passes = (
        MaterializeWeightsPass(),
        TilePass(**tile_options(chosen, keep_int_codes=keep_int_codes)),
        UnpackBitsPass(keep_int_codes=keep_int_codes),
        ScheduleMemoryPass(**schedule_options(chosen)),
    )
    for p in passes:
        p.apply(ctx, module)
    return module


def kernel_peak(module: ModuleOp) -> tuple[Tile, int]:
    """The tile of the module's one kernel and the peak bytes recorded for it in the tile level."""
    kernel = next(op for op in module.ops if isinstance(op, func.FuncOp) and "q35.kernel" in op.attributes)
    tile = Tile(*kernel.attributes["q35.tile"].get_values())  # type: ignore[union-attr]
    level = module.attributes["q35.tile_level"].data  # type: ignore[union-attr]
    peaks = kernel.attributes["q35.peak_bytes"]
    assert isinstance(peaks, DictionaryAttr)
    value = peaks.data.get(level, IntegerAttr(0, 64))
    assert isinstance(value, IntegerAttr)
    return tile, value.value.data


@settings(max_examples=40, deadline=None)
@given(linear=linears(), target=st.sampled_from(spec_names()), keep_int_codes=st.booleans())
@example(linear=(64, 64, 128, "q3p5:g=32"), target="m2-max", keep_int_codes=False)  # tiny --seq 64 down_proj
@example(linear=(17, 495, 709, "fp16"), target="mi210", keep_int_codes=False)  # N = one tile and a remainder
@example(linear=(2048, 590, 3456, "q3p5"), target="groq-lpu", keep_int_codes=True)
def test_a_chosen_tile_fits_what_schedule_memory_allocates(
    linear: tuple[int, int, int, str], target: str, keep_int_codes: bool
) -> None:
    t, n, k, spec = linear
    policy = get_target(target).tile_policy(keep_int_codes=keep_int_codes)
    shape = LinearShape(t, n, k, parse_scheme(spec))
    try:
        chosen = choose_tile(shape, policy)
    except TileError:
        return  # no tile fits at all: the tile pass reports it (tested in test_tile.py)
    tile, peak = kernel_peak(scheduled(t, n, k, spec, target, keep_int_codes))
    assert tile == chosen
    estimate = working_set_bytes(shape, tile, policy)
    assert estimate <= policy.budget_bytes
    # On Groq the tile level is the SRAM that also holds the kernel's whole output; elsewhere it is per tile.
    output = t * n * shape.act_bytes if policy.weight_buffers == 1 else 0
    assert peak <= estimate + output


@pytest.mark.parametrize("target", ["m2-max", "m1-max", "h100-sxm", "host"])
def test_prefill_with_a_row_remainder_fits(target: str) -> None:
    # T = 64 tokens in two token tiles, N = one whole tile and a remainder: every N tile reads the same
    # activation tile, which one ring holds (two rings would need 40,448 B of a 32 KiB threadgroup on m2-max).
    module = scheduled(64, 64, 128, "q3p5:g=32", target, keep_int_codes=False)
    tile, peak = kernel_peak(module)
    shape = LinearShape(64, 64, 128, parse_scheme("q3p5:g=32"))
    policy = get_target(target).tile_policy()
    assert peak <= working_set_bytes(shape, tile, policy) <= policy.budget_bytes
    rings = [
        op for op in module.walk() if op.name == "bufferization.alloc_tensor" and op.results[0].name_hint == "x_ring"
    ]
    assert len(rings) <= 1
