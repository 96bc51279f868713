"""Tile choice (a pure function of shape, scheme and budget), the per-family tile levels and policies (from the
targets, given to the passes as options), and tiled linears run on real MLIR: bit-identical to the untiled kernel
when only N and T are tiled, within the derived float32 bound of the numpy reference when K tiles add partial sums;
remainder tiles included."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from numpy.typing import NDArray
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass
from xdsl.utils.exceptions import PassFailedException

from q35c import formats
from q35c.driver.pipeline import make_context
from q35c.ir.schemes import parse_scheme
from q35c.passes.materialize_weights import MaterializeWeightsPass
from q35c.passes.schedule_memory import ScheduleMemoryPass
from q35c.passes.tile import TilePass, kernel_name
from q35c.passes.tile_choice import (
    LinearShape,
    Tile,
    TileError,
    TilePolicy,
    choose_tile,
    k_parts,
    main_memory_bytes,
    working_set_bytes,
)
from q35c.passes.unpack_bits import UnpackBitsPass
from q35c.targets.apple import THREADGROUP_BYTES
from q35c.targets.pass_options import schedule_options
from q35c.targets.spec import load_spec
from q35c.targets.target import get_target
from q35c.verify.linear import (
    ACTIVATIONS,
    LINEAR_ENTRY,
    LINEAR_WEIGHT,
    LinearCase,
    arguments_for,
    foreign_ops,
    linear_data,
    linear_module,
    output_tolerance,
    run_on_host,
)
from q35c.verify.mlir_tools import MlirTools


def shape(t: int, n: int, k: int, spec: str) -> LinearShape:
    return LinearShape(t, n, k, parse_scheme(spec))


# --------------------------------------------------------------------------------------------------------------
# Tile choice
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "align"),
    [
        ("q3p5", 128),
        ("q3p5:g=32", 64),
        ("q3p5:g=256", 256),
        ("q3p5:g=32:container=byte", 32),
        ("int4:g=32", 32),
        ("int4:g=4", 8),
        ("int8:g=64", 64),
        ("int8", 1),
        ("fp16", 1),
        ("q4_0", 32),
        ("q8_0", 32),
    ],
)
def test_k_alignment_is_whole_groups_and_words(spec: str, align: int) -> None:
    scheme = parse_scheme(spec)
    assert scheme.k_alignment == align
    # K tiles of that size start on whole storage elements and whole groups ...
    words_per, _ = scheme.storage_ratio
    assert align % words_per == 0 and align % (scheme.group or 1) == 0
    # ... and a slice of them is a weight of the scheme (q3p5 dense needs K % 64 == 0 as a whole, too).
    scheme.check_shape(16, align * (64 if scheme.name == "q3p5" and align < 64 else 1))


def test_decode_takes_whole_rows_and_as_many_as_fit() -> None:
    s = shape(1, 28672, 8192, "q3p5")
    policy = TilePolicy(budget_bytes=228_000)
    tile = choose_tile(s, policy)
    assert tile.k == s.k and tile.tokens == 1
    assert working_set_bytes(s, tile, policy) <= policy.budget_bytes
    assert tile.n % policy.align_n == 0
    wider = Tile(1, tile.n + policy.align_n, s.k)
    assert working_set_bytes(s, wider, policy) > policy.budget_bytes


@pytest.mark.parametrize("budget", [32 * 1024, 65_536, 228_000, 1 << 20])
@pytest.mark.parametrize(
    ("t", "n", "k", "spec"),
    [(1, 32000, 8192, "q3p5"), (2048, 28672, 8192, "q3p5"), (16, 4096, 11008, "int4:g=128"), (7, 1000, 4096, "q4_0")],
)
def test_chosen_tile_fits_and_no_fitting_tile_moves_fewer_bytes(t: int, n: int, k: int, spec: str, budget: int) -> None:
    s = shape(t, n, k, spec)
    policy = TilePolicy(budget)
    tile = choose_tile(s, policy)
    assert working_set_bytes(s, tile, policy) <= budget
    assert tile.k == s.k or tile.k % s.scheme.k_alignment == 0
    best = main_memory_bytes(s, tile)
    # Spot-check alternatives: none that fits moves fewer bytes.
    for tt in {1, t, max(1, t // 2)}:
        for tk in {k, s.scheme.k_alignment * 4, 512}:
            for tn in (8, 64, 256, n):
                other = Tile(min(tt, t), min(tn, n), min(tk, k))
                if other.k < k and other.k % s.scheme.k_alignment:
                    continue
                if working_set_bytes(s, other, policy) <= budget:
                    assert main_memory_bytes(s, other) >= best, (other, tile)


def test_a_k_of_one_tile_and_a_remainder_buffers_both() -> None:
    # K = 256 in tiles of 192: no K loop, both K tiles are read in the same loop body and buffered side by side.
    s, policy = shape(4, 64, 256, "int4:g=32"), TilePolicy(1 << 30)
    both = working_set_bytes(s, Tile(4, 64, 192), policy)
    weights = 2 * (s.weight_bytes(64, 192) + s.weight_bytes(64, 64))
    assert both == weights + 2 * 4 * 256 * 2 + 2 * 4 * 64 * 4
    assert k_parts(256, 192) == (192, 64) and k_parts(256, 128) == (128,) and k_parts(256, 512) == (256,)


def test_kept_integer_codes_add_their_group_sums() -> None:
    # keep-int-codes: per-group partial sums [T, N, K/g] and per-group sums of x [T, K/g], in f32.
    s, tile = shape(4, 64, 256, "int4:g=32"), Tile(4, 64, 128)
    plain = working_set_bytes(s, tile, TilePolicy(1 << 30))
    kept = working_set_bytes(s, tile, TilePolicy(1 << 30, keep_int_codes=True))
    assert kept - plain == 4 * 4 * (64 + 1) * (128 // 32)
    assert get_target("groq-lpu").tile_policy().keep_int_codes
    assert not get_target("h100-sxm").tile_policy().keep_int_codes
    assert get_target("h100-sxm").tile_policy(keep_int_codes=True).keep_int_codes


def test_fixed_sizes_are_kept_and_clamped() -> None:
    s = shape(4, 200, 256, "int4:g=32")
    assert choose_tile(s, TilePolicy(1 << 30), tokens=2, n=64, k=64) == Tile(2, 64, 64)
    assert choose_tile(s, TilePolicy(1 << 30), n=1000) == Tile(4, 200, 256)


def test_misaligned_k_tile_and_a_budget_too_small_are_errors() -> None:
    with pytest.raises(TileError, match="multiples of 128"):
        choose_tile(shape(1, 64, 256, "q3p5"), TilePolicy(1 << 30), k=64)
    with pytest.raises(TileError, match=r"no tile of the linear .* fits 100 bytes"):
        choose_tile(shape(1, 64, 256, "q3p5"), TilePolicy(100))


def test_groq_tiles_are_mxm_arrays() -> None:
    policy = get_target("groq-lpu").tile_policy()
    assert (policy.max_n, policy.max_k, policy.weight_buffers) == (320, 320, 1)
    tile = choose_tile(shape(1, 28672, 8192, "q3p5"), policy)
    assert tile == Tile(1, 320, 256)  # 256: the widest multiple of q3p5's 128 that fits the 320-wide array
    assert choose_tile(shape(1, 1000, 4096, "int8"), policy) == Tile(1, 320, 320)


def test_gpu_decode_tiles_are_a_row_per_warp_where_bytes_tie() -> None:
    """A GPU takes 16-row N tiles when they move no more bytes than the widest tile (a decode step reads each
    weight once either way): several tiles per SM, so a block's next tile streams in while it computes one."""
    policy = get_target("h100-sxm").tile_policy()
    assert (policy.prefer_n, policy.align_n) == (16, 16)
    decode = shape(1, 4096, 4096, "q3p5")
    assert choose_tile(decode, policy) == Tile(1, 16, 4096)
    widest = choose_tile(decode, TilePolicy(policy.budget_bytes, align_n=16))
    assert widest.n > 16 and main_memory_bytes(decode, widest) == main_memory_bytes(decode, Tile(1, 16, 4096))
    # A prefill's activations are read once per N tile when K is split: bytes decide, so no 16-row tiles there.
    prefill = shape(512, 4096, 4096, "q3p5")
    assert choose_tile(prefill, policy) == choose_tile(prefill, TilePolicy(policy.budget_bytes, align_n=16))
    assert choose_tile(prefill, policy).n > 16
    # Other families keep the widest tile.
    assert get_target("m2-max").tile_policy().prefer_n == 0
    assert choose_tile(decode, TilePolicy(policy.budget_bytes)).n > 16


def test_the_tile_pass_refuses_a_negative_prefer_n() -> None:
    with pytest.raises(PassFailedException, match="prefer-n must be at least 0"):
        TilePass(prefer_n=-1).apply(make_context(), ModuleOp([]))


@pytest.mark.parametrize(
    ("target", "level", "space", "budget", "assumed"),
    [
        ("h100-sxm", "smem", 2, 228_000, False),
        ("a100-sxm", "smem", 2, 164_000, False),
        ("mi300x", "lds", 3, 65_536, False),
        ("m2-max", "threadgroup", 2, THREADGROUP_BYTES, True),
        ("groq-lpu", "sram", 0, 230_686_720, False),
    ],
)
def test_tile_level_per_family(target: str, level: str, space: int, budget: int, assumed: bool) -> None:
    found = get_target(target).tile_level()
    assert (found.name, found.memory_space, found.budget_bytes, found.assumed) == (level, space, budget, assumed)
    assert get_target(target).tile_level(4096).budget_bytes == 4096


def test_host_tiles_for_one_cpu_share_of_l2() -> None:
    spec = load_spec("host")
    level = get_target("host").tile_level()
    if any(m.name == "l2" for m in spec.memory):
        assert level.name == "l2"
        l2 = spec.memory_level("l2").capacity_bytes
        assert level.budget_bytes == int(l2 / spec.compute_units.count.value)
    assert level.memory_space == [m.name for m in spec.memory].index(level.name)


def test_kernel_names_are_valid_symbols() -> None:
    name = kernel_name(shape(1, 28672, 8192, "q3p5:g=64:container=byte"), ACTIVATIONS["f16"])
    assert name == "linear.1x28672x8192.q3p5_g64_byte.f16"


def test_tile_pass_reports_the_weight() -> None:
    module = linear_module(1, 16, 128, "q3p5")
    MaterializeWeightsPass().apply(make_context(), module)
    with pytest.raises(PassFailedException, match=r"weight 'linear\.weight'.*multiples of 128"):
        TilePass(tile_k=64).apply(make_context(), module)


# --------------------------------------------------------------------------------------------------------------
# Tiled linears on real MLIR
# --------------------------------------------------------------------------------------------------------------


def run_linear(case: LinearCase, passes: Sequence[ModulePass], tools: MlirTools) -> list[NDArray[np.float64]]:
    x, qt = linear_data(case)
    module: ModuleOp = linear_module(case.tokens, case.n, case.k, case.spec, ACTIVATIONS[case.activation])
    ctx = make_context()
    for p in passes:
        p.apply(ctx, module)
        module.verify()
    assert not foreign_ops(module)
    fn = next(op for op in module.ops if isinstance(op, func.FuncOp) and op.sym_name.data == LINEAR_ENTRY)
    results = run_on_host(module, LINEAR_ENTRY, arguments_for(fn, [x], {LINEAR_WEIGHT: qt}), tools)
    return [r.values.astype(np.float64) for r in results]


def untiled(keep_int_codes: bool = False) -> list[ModulePass]:
    return [MaterializeWeightsPass(), UnpackBitsPass(keep_int_codes=keep_int_codes)]


def tiled(target: str, keep_int_codes: bool = False, **sizes: int) -> list[ModulePass]:
    return [
        MaterializeWeightsPass(),
        TilePass(**sizes),
        UnpackBitsPass(keep_int_codes=keep_int_codes),
        ScheduleMemoryPass(**schedule_options(get_target(target))),
    ]


# N = 200 leaves a remainder of 200 % 64 = 8 rows; T = 3 a remainder of 1 token.
@pytest.mark.parametrize("spec", ["int4:g=32", "q3p5:g=32", "q3p5:g=64:container=byte", "q4_0", "int8", "fp16"])
def test_tiling_rows_and_tokens_changes_nothing(spec: str, mlir_tools: MlirTools) -> None:
    case = LinearCase(3, 200, 128, spec)
    base = run_linear(case, untiled(), mlir_tools)
    got = run_linear(case, tiled("h100-sxm", tile_t=2, tile_n=64), mlir_tools)
    for a, b in zip(got, base, strict=True):
        np.testing.assert_array_equal(a, b)


# K = 320 with K tiles of 128 leaves a 64-input remainder (q3p5:g=64 dense: whole 64-input blocks).
@pytest.mark.parametrize(
    ("spec", "target", "keep_int_codes"),
    [
        ("q3p5:g=64", "h100-sxm", False),
        ("int4:g=64", "host", False),
        ("q8_0", "m2-max", False),
        ("int8", "h100-sxm", False),
        ("q3p5:g=64", "groq-lpu", True),
    ],
)
def test_k_tiles_sum_partials_within_the_f32_bound(
    spec: str, target: str, keep_int_codes: bool, mlir_tools: MlirTools
) -> None:
    case = LinearCase(2, 40, 320, spec)
    y, codes = run_linear(case, tiled(target, keep_int_codes, tile_n=16, tile_k=128), mlir_tools)
    x, qt = linear_data(case)
    fmt = formats.get(spec)
    w_ref = fmt.dequantize(qt)
    scheme = parse_scheme(spec)
    groups = scheme.n_groups(case.k)
    offset = np.zeros_like(w_ref, dtype=np.float64)
    if qt.offset is not None:
        offset = np.repeat(qt.offset.astype(np.float64), case.k // groups, axis=1)
    y_ref = x.astype(np.float64) @ w_ref.astype(np.float64).T
    # Each product reaches y through at most tile_k + K/tile_k + 2K/g + 2 roundings, within verify's m.
    tolerance = output_tolerance(x, w_ref, offset, groups, half=True)
    assert np.all(np.abs(y - y_ref) <= tolerance)
    np.testing.assert_array_equal(codes, fmt.unpack(qt.packed))
