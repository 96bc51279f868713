"""The counting rule for the ops of linalg bodies, and the unpacking and dequantization work per weight of each
scheme as the compiled IR gives it (and docs/cost-model.md states it)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from xdsl.dialects import func
from xdsl.dialects.builtin import Float16Type, ModuleOp, TensorType
from xdsl.ir import Block, Region
from xdsl.parser import Parser

from q35c.analysis.workload import OpsPerWeight, extract, ops_per_weight
from q35c.dialects.q35 import LinearOp, PackedType, WeightOp
from q35c.driver.pipeline import make_context
from q35c.passes.materialize_weights import MaterializeWeightsPass
from q35c.passes.unpack_bits import UnpackBitsPass
from q35c.targets.registry import get_target

DOCS = Path(__file__).resolve().parents[2] / "docs" / "cost-model.md"


def parse(text: str) -> ModuleOp:
    return Parser(make_context(), text).parse_module()


# A body over (n, w, i) = 4 x 2 x 8: the shift amount is address arithmetic (index-only), the shift pair and the
# conversion work on data, trunci and bitcast are free re-views.
EXTRACT = """
func.func @main(%w: tensor<4x2xi32> {q35.param = "w", q35.storage = "codes"}) -> tensor<4x2x8xf32> {
  %e = tensor.empty() : tensor<4x2x8xf32>
  %r = linalg.generic {indexing_maps = [affine_map<(n, w, i) -> (n, w)>, affine_map<(n, w, i) -> (n, w, i)>],
      iterator_types = ["parallel", "parallel", "parallel"]} ins(%w : tensor<4x2xi32>) outs(%e : tensor<4x2x8xf32>)
      attrs = {q35.kernel = "unpack"} {
  ^bb0(%word: i32, %o: f32):
    %c28 = arith.constant 28 : i32
    %c2 = arith.constant 2 : i32
    %i = linalg.index 2 : index
    %ii = arith.index_cast %i : index to i32
    %four_i = arith.shli %ii, %c2 : i32
    %left = arith.subi %c28, %four_i : i32
    %up = arith.shli %word, %left : i32
    %code = arith.shrsi %up, %c28 : i32
    %narrow = arith.trunci %code : i32 to i16
    %half = arith.bitcast %narrow : i16 to f16
    %wide = arith.extf %half : f16 to f32
    linalg.yield %wide : f32
  } -> tensor<4x2x8xf32>
  func.return %r : tensor<4x2x8xf32>
}
"""


def test_index_only_ops_are_address_arithmetic_and_data_ops_count() -> None:
    (kernel,) = extract(parse(EXTRACT)).kernels
    domain = 4 * 2 * 8
    assert dict(kernel.weight_alu) == {"int": 2 * domain, "fp32.add": domain}  # shli, shrsi; extf
    assert kernel.index_ops == 2 * domain  # shli and subi of the index; index_cast is free
    assert kernel.unpack_alu == 3 * domain


# A body over (n, p, s) = 4 x 16 x 2: the pair join depends on (n, p) only, so it runs once per pair; the
# slot's shift once per iteration; an op on a value defined outside the body alone is loop-invariant.
HOISTED = """
func.func @main(%w: tensor<4x16xi32> {q35.param = "w", q35.storage = "codes"}) -> tensor<4x16x2xi32> {
  %k0 = arith.constant 5 : i32
  %k = arith.addi %k0, %k0 : i32
  %e = tensor.empty() : tensor<4x16x2xi32>
  %r = linalg.generic {indexing_maps = [affine_map<(n, p, s) -> (n, p)>, affine_map<(n, p, s) -> (n, p, s)>],
      iterator_types = ["parallel", "parallel", "parallel"]} ins(%w : tensor<4x16xi32>) outs(%e : tensor<4x16x2xi32>) {
  ^bb0(%word: i32, %o: i32):
    %c3 = arith.constant 3 : i32
    %pair = arith.shrui %word, %c3 : i32
    %masked = arith.andi %pair, %c3 : i32
    %kk = arith.muli %k, %c3 : i32
    %s = linalg.index 2 : index
    %ss = arith.index_cast %s : index to i32
    %shift = arith.addi %ss, %kk : i32
    %code = arith.shrsi %masked, %shift : i32
    linalg.yield %code : i32
  } -> tensor<4x16x2xi32>
  func.return %r : tensor<4x16x2xi32>
}
"""


def test_data_ops_run_once_per_iteration_of_the_loops_down_to_their_innermost_dependence() -> None:
    (kernel,) = extract(parse(HOISTED)).kernels
    pairs, domain = 4 * 16, 4 * 16 * 2
    assert dict(kernel.weight_alu) == {"int": 2 * pairs + domain}  # shrui, andi per pair; shrsi per iteration
    assert kernel.index_ops == 1 + domain  # muli of the argument %k once; addi of the slot index per iteration


# A reduction: the accumulator changes every iteration, so what reads it runs every iteration; a gather
# (`tensor.extract` of a tensor from outside) is data.
REDUCE = """
func.func @main(%x: tensor<2x8xf32>, %t: tensor<8xf32>) -> tensor<2xf32> {
  %e = tensor.empty() : tensor<2xf32>
  %r = linalg.generic {indexing_maps = [affine_map<(a, b) -> (a, b)>, affine_map<(a, b) -> (a)>],
      iterator_types = ["parallel", "reduction"]} ins(%x : tensor<2x8xf32>) outs(%e : tensor<2xf32>)
      attrs = {q35.kernel = "norm"} {
  ^bb0(%v: f32, %acc: f32):
    %b = linalg.index 1 : index
    %g = tensor.extract %t[%b] : tensor<8xf32>
    %s = arith.maximumf %acc, %g : f32
    %y = arith.addf %s, %v : f32
    linalg.yield %y : f32
  } -> tensor<2xf32>
  func.return %r : tensor<2xf32>
}
"""


def test_accumulators_and_gathers_are_data() -> None:
    (kernel,) = extract(parse(REDUCE)).kernels
    assert dict(kernel.token_alu) == {"fp32.add": 2 * 2 * 8} and kernel.index_ops == 0


# -- ops per weight of every scheme, from the compiled IR -------------------------------------------------------

SCHEMES = ("int8", "q8_0", "int4", "q4_0", "q3p5:container=byte", "q3p5")
N = K = 4096


def linear(n: int, k: int, spec: str) -> ModuleOp:
    """One linear layer y = x @ W^T with W [n, k] in `spec`, for one token."""
    packed, x = PackedType((n, k), spec), TensorType(Float16Type(), (1, k))
    block = Block(arg_types=[x])
    weight = WeightOp("w", packed)
    y = LinearOp(block.args[0], weight.result)
    block.add_ops([weight, y, func.ReturnOp(y.result)])
    return ModuleOp([func.FuncOp("main", ([x], [y.result.type]), Region(block))])


def lowered(spec: str, keep_int_codes: bool = False) -> OpsPerWeight:
    """Ops per weight of the unpack-bits lowering alone."""
    module, ctx = linear(N, K, spec), make_context()
    MaterializeWeightsPass().apply(ctx, module)
    UnpackBitsPass(keep_int_codes=keep_int_codes).apply(ctx, module)
    return ops_per_weight(extract(module))


def compiled(spec: str, target: str) -> OpsPerWeight:
    """Ops per weight after a target's whole pipeline (tiles, staging)."""
    module, ctx = linear(N, K, spec), make_context()
    for stage in get_target(target).pipeline():
        for p in stage.passes:
            p.apply(ctx, module)
    return ops_per_weight(extract(module))


def test_unpacking_work_per_weight_is_ordered_by_how_the_bits_are_packed() -> None:
    ops = {spec: lowered(spec) for spec in SCHEMES}
    unpack = {spec: o.unpack for spec, o in ops.items()}
    # int8 and q8_0 store their codes whole; int4 and q3p5 byte take one shift pair per code; q4_0 adds an xor
    # per byte; q3p5 dense joins each pair from its words.
    assert unpack["int8"] == unpack["q8_0"] == 0
    assert unpack["int4"] == unpack["q3p5:container=byte"] > 0
    assert unpack["q3p5:container=byte"] < unpack["q4_0"] < unpack["q3p5"]
    # Dequantization: one conversion and one multiply(-add) per weight, plus per-group or per-block work.
    for spec, o in ops.items():
        assert 2 <= o.dequant < 2.1, spec
    assert ops["int8"].dequant < ops["int4"].dequant < ops["q8_0"].dequant == ops["q4_0"].dequant
    totals = [ops[s].total for s in ("int8", "q8_0", "int4", "q4_0", "q3p5")]
    assert totals == sorted(totals) and ops["int4"].total == ops["q3p5:container=byte"].total


@pytest.mark.parametrize("spec", SCHEMES)
def test_integer_codes_cost_the_same_unpacking_and_no_dequantization(spec: str) -> None:
    default, codes = lowered(spec), lowered(spec, keep_int_codes=True)
    assert codes.unpack == default.unpack
    assert codes.dequant < 0.1  # llama.cpp blocks still assemble their scales from bytes, once per block


@pytest.mark.parametrize("target", ["m2-max", "h100-sxm", "groq-lpu"])
def test_target_pipelines_keep_the_work_per_weight(target: str) -> None:
    keep = target == "groq-lpu"
    for spec in SCHEMES:
        alone, piped = lowered(spec, keep), compiled(spec, target)
        assert piped.unpack == pytest.approx(alone.unpack), spec
        assert piped.dequant == pytest.approx(alone.dequant, abs=0.04), spec  # tiles split per-row scales


def documented() -> dict[str, tuple[float, float, float]]:
    """The ops-per-weight table of docs/cost-model.md: scheme -> (unpack, dequantize, index)."""
    rows: dict[str, tuple[float, float, float]] = {}
    pattern = re.compile(r"^\| `([^`]+)` \| ([\d.]+) \| ([\d.]+) \| [\d.]+ \| ([\d.]+) \|", re.MULTILINE)
    for match in pattern.finditer(DOCS.read_text()):
        rows[match.group(1)] = (float(match.group(2)), float(match.group(3)), float(match.group(4)))
    return rows


GGML_SCHEMES = ("q4_1", "q5_0", "q5_1", "q2_k", "q3_k", "q4_k", "q5_k", "q6_k", "iq4_nl", "iq4_xs")


def test_the_documented_ops_per_weight_are_what_the_ir_gives() -> None:
    table = documented()
    assert set(table) == {*SCHEMES, *GGML_SCHEMES}
    for spec, (unpack, dequant, index) in table.items():
        ops = lowered(spec)
        assert (round(ops.unpack, 2), round(ops.dequant, 2), round(ops.index, 2)) == (unpack, dequant, index), spec
