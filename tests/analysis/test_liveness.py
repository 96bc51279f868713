"""Liveness and peak memory: the interval sweep on its own, buffers and live ranges of small IR (loops, calls,
fused values), and the peaks schedule-memory records for tiled kernels, including its failure when a tile cannot
fit."""

from __future__ import annotations

import networkx as nx
import pytest
from xdsl.dialects import func
from xdsl.dialects.builtin import DictionaryAttr, IntegerAttr, ModuleOp
from xdsl.parser import Parser
from xdsl.utils.exceptions import PassFailedException

from q35c.analysis.liveness import Buffer, callers_first, func_buffers, module_peaks, peak, positions
from q35c.analysis.opgraph import alias_graph, buffer_root
from q35c.driver.pipeline import make_context
from q35c.ir.schemes import parse_scheme
from q35c.passes.materialize_weights import MaterializeWeightsPass
from q35c.passes.schedule_memory import ScheduleMemoryPass
from q35c.passes.tile import TilePass
from q35c.passes.tile_choice import LinearShape, Tile, TilePolicy, working_set_bytes
from q35c.passes.unpack_bits import UnpackBitsPass
from q35c.targets.pass_options import schedule_options, tile_options
from q35c.targets.target import get_target
from q35c.verify.linear import linear_module

# --------------------------------------------------------------------------------------------------------------
# The sweep
# --------------------------------------------------------------------------------------------------------------


def test_peak_sums_overlapping_intervals_per_space() -> None:
    buffers = [Buffer("a", 1, 10, 0, 5), Buffer("b", 1, 7, 3, 8), Buffer("c", 1, 9, 6, 9), Buffer("m", 0, 100, 0, 9)]
    peaks = peak(buffers)
    assert peaks[1].bytes == 17 and {b.name for b in peaks[1].live} == {"a", "b"}
    assert peaks[0].bytes == 100


def test_intervals_that_only_touch_do_not_overlap() -> None:
    assert peak([Buffer("a", 2, 5, 0, 3), Buffer("b", 2, 6, 4, 7)])[2].bytes == 6
    assert peak([Buffer("a", 2, 5, 0, 4), Buffer("b", 2, 6, 4, 7)])[2].bytes == 11
    assert peak([]) == {}


# --------------------------------------------------------------------------------------------------------------
# Buffers of IR
# --------------------------------------------------------------------------------------------------------------

LOOP_IR = """
func.func @f(%w: tensor<64x8xf32>) -> tensor<8xf32> {
  %c0 = arith.constant 0 : index
  %c4 = arith.constant 4 : index
  %c64 = arith.constant 64 : index
  %ring = bufferization.alloc_tensor() {memory_space = 2 : i64} : tensor<2x4x8xf32>
  %out = tensor.empty() : tensor<8xf32>
  %r:2 = scf.for %i = %c0 to %c64 step %c4 iter_args(%acc = %out, %ring_i = %ring)
      -> (tensor<8xf32>, tensor<2x4x8xf32>) {
    %tmp = bufferization.alloc_tensor() {memory_space = 2 : i64} : tensor<4x8xf32>
    %codes = tensor.empty() : tensor<4x8xf32>
    %d = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]}
        outs(%codes : tensor<4x8xf32>) attrs = {q35.fused} {
    ^bb0(%o: f32):
      linalg.yield %o : f32
    } -> tensor<4x8xf32>
    %e = linalg.copy ins(%d : tensor<4x8xf32>) outs(%tmp : tensor<4x8xf32>) -> tensor<4x8xf32>
    scf.yield %acc, %ring_i : tensor<8xf32>, tensor<2x4x8xf32>
  }
  %late = bufferization.alloc_tensor() {memory_space = 2 : i64} : tensor<16xf32>
  func.return %r#0 : tensor<8xf32>
}
"""


def parse(text: str) -> ModuleOp:
    return Parser(make_context(), text).parse_module()


def only_func(module: ModuleOp) -> func.FuncOp:
    fn = module.ops.first
    assert isinstance(fn, func.FuncOp)
    return fn


def test_positions_number_nested_ops_in_preorder() -> None:
    fn = only_func(parse(LOOP_IR))
    start, end = positions(fn)
    loop = next(op for op in start if op.name == "scf.for")
    inner = [op for op in start if loop.is_ancestor(op) and op is not loop]
    assert all(start[loop] < start[op] <= end[loop] for op in inner)
    assert end[loop] == max(start[op] for op in inner)


def test_alias_graph_joins_loop_carried_values_and_destinations() -> None:
    fn = only_func(parse(LOOP_IR))
    graph = alias_graph(fn)
    components = list(nx.connected_components(graph))
    ring = next(c for c in components if any(v.name_hint == "ring" for v in c))
    assert {v.name_hint for v in ring} >= {"ring", "ring_i"}
    assert sum(1 for v in ring if buffer_root(v)) == 1


def test_buffers_live_across_loops_die_in_iterations_and_skip_fused_values() -> None:
    fn = only_func(parse(LOOP_IR))
    buffers = {b.name: b for b in func_buffers(fn)}
    assert "codes" not in buffers  # the fused generic's output streams in registers
    assert "w" not in buffers  # arguments belong to the caller
    ring, tmp, late = buffers["ring"], buffers["tmp"], buffers["late"]
    assert ring.space == 2 and ring.bytes == 2 * 4 * 8 * 4
    assert ring.start < tmp.start and tmp.end <= ring.end  # the ring is carried through the loop
    assert late.start > ring.end
    peaks = peak(func_buffers(fn))
    assert peaks[2].bytes == ring.bytes + tmp.bytes
    assert peaks[0].bytes == 8 * 4  # %out, the loop's result


def test_a_buffer_read_by_a_fused_generic_lives_until_the_fused_value_is_consumed() -> None:
    # %staged feeds the fused %d, which streams into the copy into %acc: %staged is read while %acc is written.
    fn = only_func(
        parse(
            """
            func.func @f(%w: tensor<4x8xf32>) -> tensor<4x8xf32> {
              %staged_buf = bufferization.alloc_tensor() {memory_space = 1 : i64} : tensor<4x8xf32>
              %staged = linalg.copy ins(%w : tensor<4x8xf32>) outs(%staged_buf : tensor<4x8xf32>) -> tensor<4x8xf32>
              %e = tensor.empty() : tensor<4x8xf32>
              %d = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0, d1)>],
                  iterator_types = ["parallel", "parallel"]}
                  ins(%staged : tensor<4x8xf32>) outs(%e : tensor<4x8xf32>) attrs = {q35.fused} {
              ^bb0(%a: f32, %o: f32):
                linalg.yield %a : f32
              } -> tensor<4x8xf32>
              %acc = bufferization.alloc_tensor() {memory_space = 1 : i64} : tensor<4x8xf32>
              %r = linalg.copy ins(%d : tensor<4x8xf32>) outs(%acc : tensor<4x8xf32>) -> tensor<4x8xf32>
              func.return %r : tensor<4x8xf32>
            }
            """
        )
    )
    buffers = {b.name: b for b in func_buffers(fn)}
    assert buffers["staged_buf"].end >= buffers["acc"].start
    assert peak(func_buffers(fn))[1].bytes == 2 * 4 * 8 * 4


def test_calls_add_the_callee_peak_and_entries_count_their_arguments() -> None:
    module = parse(
        """
        func.func @main(%x: tensor<4xf32>) -> tensor<4xf32> {
          %y = func.call @k(%x) : (tensor<4xf32>) -> tensor<4xf32>
          func.return %y : tensor<4xf32>
        }
        func.func private @k(%x: tensor<4xf32>) -> tensor<4xf32> {
          %b = bufferization.alloc_tensor() {memory_space = 1 : i64} : tensor<100xf32>
          %c = linalg.copy ins(%x : tensor<4xf32>) outs(%x : tensor<4xf32>) -> tensor<4xf32>
          func.return %c : tensor<4xf32>
        }
        """
    )
    peaks = module_peaks([op for op in module.ops if isinstance(op, func.FuncOp)])
    assert peaks["k"][1].bytes == 400
    assert peaks["main"][1].bytes == 400  # at the call
    assert peaks["main"][0].bytes == 16 + 16  # the argument and the call's result


def test_callers_come_before_their_callees_in_networkx_order() -> None:
    calls = {"main": ["b", "a"], "a": ["k"], "b": ["k", "a"], "k": [], "unused": ["k"]}
    graph = nx.DiGraph()
    graph.add_nodes_from(calls)
    graph.add_edges_from((caller, callee) for caller, callees in calls.items() for callee in callees)
    assert callers_first(calls) == list(nx.topological_sort(graph))
    order = callers_first(calls)
    assert all(order.index(caller) < order.index(callee) for caller, callees in calls.items() for callee in callees)


def test_recursive_calls_have_no_order() -> None:
    with pytest.raises(ValueError, match="recursive"):
        callers_first({"main": ["f"], "f": ["g"], "g": ["f"]})


# --------------------------------------------------------------------------------------------------------------
# schedule-memory's peaks
# --------------------------------------------------------------------------------------------------------------


def scheduled(t: int, n: int, k: int, spec: str, target: str, choose: bool = False, **sizes: int) -> ModuleOp:
    """A linear tiled with `sizes` (and, if `choose`, the rest chosen for `target`), unpacked and scheduled."""
    module = linear_module(t, n, k, spec)
    ctx = make_context()
    chosen = get_target(target)
    tile = TilePass(**(tile_options(chosen) if choose else {}), **sizes)
    for p in (MaterializeWeightsPass(), tile, UnpackBitsPass(), ScheduleMemoryPass(**schedule_options(chosen))):
        p.apply(ctx, module)
    module.verify()
    return module


def kernel(module: ModuleOp) -> func.FuncOp:
    return next(op for op in module.ops if isinstance(op, func.FuncOp) and "q35.kernel" in op.attributes)


def recorded(op: func.FuncOp | ModuleOp, level: str) -> int:
    peaks = op.attributes["q35.peak_bytes"]
    assert isinstance(peaks, DictionaryAttr)
    value = peaks.data[level]
    assert isinstance(value, IntegerAttr)
    return value.value.data


def test_double_buffered_kernel_peak() -> None:
    # N = 200 in tiles of 64 (three, the last peeled) plus an 8-row remainder; K whole.
    module = scheduled(1, 200, 128, "int4:g=32", "h100-sxm", tile_n=64)
    fn = kernel(module)
    # x (1x128 f16), rings of codes 2x64x16 i32 and scale/offset 2x64x4 f16, the f32 accumulator and f16 output.
    expected = 256 + 2 * 64 * 16 * 4 + 2 * (2 * 64 * 4 * 2) + 64 * 4 + 64 * 2
    assert recorded(fn, "smem") == expected == recorded(module, "smem")
    s = LinearShape(1, 200, 128, parse_scheme("int4:g=32"))
    assert expected <= working_set_bytes(s, Tile(1, 64, 128), TilePolicy(228_000))
    rings = [op for op in fn.walk() if op.name == "bufferization.alloc_tensor" and "ring" in op.results[0].name_hint]
    assert len(rings) == 3 and all(op.results[0].type.get_shape()[0] == 2 for op in rings)  # type: ignore[union-attr]


@pytest.mark.parametrize("target", ["h100-sxm", "mi300x", "m2-max", "host"])
@pytest.mark.parametrize(("t", "n", "k", "spec"), [(1, 1000, 4096, "q3p5"), (5, 300, 1024, "int4:g=64")])
def test_chosen_tiles_stay_within_their_working_set(t: int, n: int, k: int, spec: str, target: str) -> None:
    module = scheduled(t, n, k, spec, target, choose=True)
    fn = kernel(module)
    tile = Tile(*fn.attributes["q35.tile"].get_values())  # type: ignore[union-attr]
    level = module.attributes["q35.tile_level"].data  # type: ignore[union-attr]
    budget = module.attributes["q35.tile_budget_bytes"].value.data  # type: ignore[union-attr]
    s = LinearShape(t, n, k, parse_scheme(spec))
    assert recorded(fn, level) <= working_set_bytes(s, tile, TilePolicy(budget)) <= budget


def test_groq_stages_nothing_and_counts_resident_weights() -> None:
    module = scheduled(1, 640, 512, "q3p5", "groq-lpu", choose=True)
    assert not [op for op in module.walk() if op.name in ("linalg.copy", "bufferization.alloc_tensor")]
    weights = 640 * 7 * 512 // 64 * 4 + 2 * 640 * 4 * 2
    assert recorded(module, "sram") >= weights
    assert any("q35.fused" in op.attributes for op in module.walk())


def test_a_tile_that_cannot_fit_names_the_kernel_tile_weight_and_capacity() -> None:
    with pytest.raises(PassFailedException) as info:
        scheduled(1, 512, 4096, "q3p5", "m2-max", tile_n=256)
    message = str(info.value)
    for part in (
        "tile 1x256x4096",
        "@linear.1x512x4096.q3p5_g128_dense.f16",
        "linear.weight",
        "threadgroup",
        "32768 per threadgroup",
        "codes_ring tensor<2x256x448xi32>",
    ):
        assert part in message, message
