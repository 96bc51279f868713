"""Workload extraction: what the cost models read off the IR, checked on small hand-written and compiled modules."""

from __future__ import annotations

import pytest
from xdsl.dialects.builtin import ModuleOp
from xdsl.parser import Parser

from q35c.analysis.workload import Workload, extract, kv_appends
from q35c.driver.cache import compile_key
from q35c.driver.pipeline import make_context
from q35c.frontend import load_model
from q35c.ir.schemes import parse_scheme
from q35c.targets.target import get_target


def parse(text: str) -> ModuleOp:
    return Parser(make_context(), text).parse_module()


MATMUL = """
func.func @main(%x: tensor<2x64xf16>, %w: tensor<32x64xf16> {q35.param = "w", q35.storage = "codes"})
    -> tensor<2x32xf32> {
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<2x32xf32>
  %init = linalg.fill ins(%zero : f32) outs(%e : tensor<2x32xf32>) -> tensor<2x32xf32>
  %y = linalg.generic {indexing_maps = [affine_map<(t, n, k) -> (t, k)>, affine_map<(t, n, k) -> (n, k)>,
      affine_map<(t, n, k) -> (t, n)>], iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%x, %w : tensor<2x64xf16>, tensor<32x64xf16>) outs(%init : tensor<2x32xf32>)
      attrs = {q35.kernel = "linear"} {
  ^bb0(%a: f16, %b: f16, %acc: f32):
    %0 = arith.extf %a : f16 to f32
    %1 = arith.extf %b : f16 to f32
    %2 = arith.mulf %0, %1 : f32
    %3 = arith.addf %acc, %2 : f32
    linalg.yield %3 : f32
  } -> tensor<2x32xf32>
  func.return %y : tensor<2x32xf32>
}
"""


def test_contraction_counts_one_mac_per_iteration_and_reads_each_operand_once() -> None:
    work = extract(parse(MATMUL))
    (kernel,) = work.kernels
    assert kernel.name == "linear" and kernel.calls == 1
    assert dict(kernel.macs) == {"fp16": 2 * 32 * 64}
    assert kernel.alu_ops == 0  # the extf casts belong to the MAC
    assert kernel.weight_bytes == 32 * 64 * 2
    assert kernel.activation_read == 2 * 64 * 2
    assert kernel.activation_written == 2 * 32 * 4
    assert dict(kernel.weight_elements) == {"fp16": 32 * 64}
    assert [(w.param, w.role, w.bytes) for w in work.weights] == [("w", "codes", 4096)]
    assert work.tokens == 2


UNPACK = """
func.func @main(%x: tensor<1x16xf32>, %w: tensor<4x2xi32> {q35.param = "w", q35.storage = "codes"})
    -> tensor<4x16xi8> {
  %c0 = arith.constant 0 : index
  %c3 = arith.constant 3 : index
  %c1 = arith.constant 1 : index
  %e = tensor.empty() : tensor<4x16xi8>
  %r = scf.for %i = %c0 to %c3 step %c1 iter_args(%acc = %e) -> (tensor<4x16xi8>) {
    %codes = linalg.generic {indexing_maps = [affine_map<(n, k) -> (n, k floordiv 8)>, affine_map<(n, k) -> (n, k)>],
        iterator_types = ["parallel", "parallel"]} ins(%w : tensor<4x2xi32>) outs(%acc : tensor<4x16xi8>)
        attrs = {q35.kernel = "unpack"} {
    ^bb0(%word: i32, %o: i8):
      %s = arith.constant 4 : i32
      %0 = arith.shrui %word, %s : i32
      %1 = arith.andi %0, %s : i32
      %2 = arith.trunci %1 : i32 to i8
      linalg.yield %2 : i8
    } -> tensor<4x16xi8>
    scf.yield %codes : tensor<4x16xi8>
  }
  func.return %r : tensor<4x16xi8>
}
"""


def test_elementwise_ops_count_per_iteration_times_loop_trips() -> None:
    (kernel,) = extract(parse(UNPACK)).kernels
    # shrui and andi (the constant excluded, the trunci a free re-view) x 64 iterations x 3 trips
    assert dict(kernel.weight_alu) == {"int": 2 * 64 * 3}
    assert not kernel.macs and not kernel.token_alu
    assert kernel.weight_bytes == 4 * 2 * 4  # the same weight, read once per call


BLOCKS = """
func.func @main(%x: tensor<1x8xf32>) -> tensor<1x8xf32> {
  %0 = func.call @block(%x) : (tensor<1x8xf32>) -> tensor<1x8xf32>
  %1 = func.call @block(%0) : (tensor<1x8xf32>) -> tensor<1x8xf32>
  %2 = func.call @block(%1) : (tensor<1x8xf32>) -> tensor<1x8xf32>
  func.return %2 : tensor<1x8xf32>
}
func.func @block(%x: tensor<1x8xf32>) -> tensor<1x8xf32> {
  %e = tensor.empty() : tensor<1x8xf32>
  %y = linalg.generic {indexing_maps = [affine_map<(t, d) -> (t, d)>, affine_map<(t, d) -> (t, d)>],
      iterator_types = ["parallel", "parallel"]} ins(%x : tensor<1x8xf32>) outs(%e : tensor<1x8xf32>)
      attrs = {q35.kernel = "silu"} {
  ^bb0(%a: f32, %o: f32):
    %0 = arith.mulf %a, %a : f32
    linalg.yield %0 : f32
  } -> tensor<1x8xf32>
  func.return %y : tensor<1x8xf32>
}
"""


def test_a_block_called_n_times_is_analysed_once_and_counted_n_times() -> None:
    work = extract(parse(BLOCKS))
    (kernel,) = work.kernels
    assert kernel.function == "block" and kernel.calls == 3
    assert dict(kernel.token_alu) == {"fp32.mul": 8}
    assert work.total("activation_read") == 3 * 32
    assert work.layers == 3 and work.blocks[0].output_bytes == 32
    assert work.kernel_launches == 3


STAGED = """
builtin.module attributes {q35.memory_spaces = ["hbm", "smem"]} {
  func.func @main(%w: tensor<8x4xf16> {q35.param = "w", q35.storage = "codes"}) -> tensor<8x4xf16> {
    %c0 = arith.constant 0 : index
    %c2 = arith.constant 2 : index
    %c1 = arith.constant 1 : index
    %e = tensor.empty() : tensor<8x4xf16>
    %r = scf.for %i = %c0 to %c2 step %c1 iter_args(%acc = %e) -> (tensor<8x4xf16>) {
      %buf = bufferization.alloc_tensor() {memory_space = 1 : i64} : tensor<8x4xf16>
      %s = linalg.copy {q35.src_space = 0 : i64, q35.dst_space = 1 : i64} ins(%w : tensor<8x4xf16>)
          outs(%buf : tensor<8x4xf16>) -> tensor<8x4xf16>
      %y = linalg.generic {indexing_maps = [affine_map<(a, b) -> (a, b)>, affine_map<(a, b) -> (a, b)>],
          iterator_types = ["parallel", "parallel"]} ins(%s : tensor<8x4xf16>) outs(%acc : tensor<8x4xf16>)
          attrs = {q35.kernel = "scale"} {
      ^bb0(%a: f16, %o: f16):
        %0 = arith.addf %a, %a : f16
        linalg.yield %0 : f16
      } -> tensor<8x4xf16>
      scf.yield %y : tensor<8x4xf16>
    }
    func.return %r : tensor<8x4xf16>
  }
}
"""


def test_copies_into_a_memory_space_are_bytes_moved_and_main_memory_is_read_once() -> None:
    (kernel,) = extract(parse(STAGED)).kernels
    assert dict(kernel.moved) == {"smem": 2 * 64}  # copied on each of 2 trips
    assert kernel.weight_bytes == 64  # re-reads of the same weight are served on chip


def compiled(
    model: str, target: str, seq: int = 1, context: int = 0, quant: str | None = None, batch: int = 1
) -> Workload:
    return compile_key((model, quant, seq, context, batch), {target: get_target(target).pipeline()})[target]


def test_weight_bytes_follow_the_storage_types_of_the_scheme() -> None:
    sizes = {}
    for spec in ("q3p5:g=32", "int8", "int4:g=32", "fp16", "q4_0", "q3p5:g=32:container=byte"):
        work = compiled("tiny", "h100-sxm", quant=spec)
        graph = load_model("tiny", quant=spec).graph  # tiny keeps its own schemes for embed_tokens and lm_head
        expected = sum(w.scheme.storage_bytes(*w.shape) if len(w.shape) == 2 else 2 * w.shape[0] for w in graph.weights)
        assert work.weight_bytes == expected, spec
        sizes[spec] = work.weight_bytes
    # changing the scheme of the 14 decoder matrices (2 layers x 7) changes exactly their storage
    dense, byte = parse_scheme("q3p5:g=32"), parse_scheme("q3p5:g=32:container=byte")
    shapes = [(64, 64), (32, 64), (32, 64), (64, 64), (128, 64), (128, 64), (64, 128)]
    delta = 2 * sum(byte.storage_bytes(n, k) - dense.storage_bytes(n, k) for n, k in shapes)
    assert sizes["q3p5:g=32:container=byte"] - sizes["q3p5:g=32"] == delta


def test_q3p5_dense_unpacking_costs_more_alu_per_weight_than_int8() -> None:
    def alu_per_weight(spec: str) -> float:
        work = compiled("tiny", "h100-sxm", quant=spec)
        weights = sum(sum(k.weight_elements.values()) * k.calls for k in work.kernels)
        return sum(sum(k.weight_alu.values()) * k.calls for k in work.kernels) / weights

    assert alu_per_weight("q3p5:g=32") > alu_per_weight("int8") > 0


@pytest.mark.parametrize("target", ["h100-sxm", "groq-lpu", "m2-max", "host"])
def test_kv_cache_traffic_follows_the_context(target: str) -> None:
    short, long = compiled("tiny", target, context=8), compiled("tiny", target, context=40)
    per_token = 2 * 2 * 32 * 2  # 2 layers x (k + v) x 32 wide x f16
    assert short.kv_bytes_per_token == long.kv_bytes_per_token == per_token
    assert short.total("kv_read") == 8 * per_token and long.total("kv_read") == 40 * per_token
    assert short.context == 8 and long.context == 40


def test_kv_appends_come_from_the_graph_attention_ops() -> None:
    graph = load_model("tiny", seq=3, context=5).module
    assert kv_appends(graph) == {"decoder": [2 * 3 * 32 * 2]}


def test_a_batch_is_compiled_not_scaled() -> None:
    """B sequences: B*T rows of token-side work and KV traffic, the weights read once, the context per sequence."""
    one, four = compiled("tiny", "h100-sxm", context=8), compiled("tiny", "h100-sxm", context=8, batch=4)
    assert (four.batch, four.tokens, four.context) == (4, 4, 8)
    assert four.total("kv_read") == 4 * one.total("kv_read") and four.total("kv_written") == 4 * one.total("kv_written")
    assert four.kv_bytes_per_token == one.kv_bytes_per_token
    assert four.total_macs == pytest.approx(4 * one.total_macs)
    assert four.weight_bytes == one.weight_bytes  # the weights stored once, whatever the batch


def test_lowered_attention_keeps_its_appends_and_batch() -> None:
    """The final IR alone gives the KV appends and the batch (`q35c cost` reads only it)."""
    from q35c.driver.compile import compile_model

    result = compile_model(load_model("tiny", seq=1, context=5, batch=3), "h100-sxm")
    assert kv_appends(result.module) == {"decoder": [3 * 2 * 32 * 2]}
    assert extract(result.module) == compiled("tiny", "h100-sxm", context=5, batch=3)


def test_graph_ir_is_costed_by_op_type_before_lowering() -> None:
    graph = load_model("tiny", seq=2, context=6).module
    work = extract(graph)
    linears = [k for k in work.kernels if k.name == "linear"]
    assert {k.function for k in linears} == {"main", "decoder"}
    decoder_macs = sum(k.mac_count * k.calls for k in linears if k.function == "decoder")
    assert decoder_macs == 2 * 2 * (64 * 64 + 32 * 64 + 32 * 64 + 64 * 64 + 3 * 128 * 64)  # layers x T x (N x K)
    assert work.weight_bytes == compiled("tiny", "h100-sxm").weight_bytes  # packed types = storage arguments
    assert work.total("kv_read") == 2 * 2 * 6 * 32 * 2 and work.kv_bytes_per_token == 2 * 2 * 32 * 2
