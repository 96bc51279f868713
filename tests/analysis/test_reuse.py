"""Re-reads of a scheduled kernel: a hand-written loop nest with known re-reads and working sets."""

from __future__ import annotations

from xdsl.dialects.builtin import ModuleOp
from xdsl.parser import Parser

from q35c.analysis.workload import extract
from q35c.driver.pipeline import make_context

# y = x @ w^T tiled T x N (2 x 2 tiles of 2 tokens x 4 rows, K = 8 whole), w and x staged into space 1.
# The w tile moves with n only: read once per t (2 t tiles -> one re-read of all of w). The x tile moves with t
# only: read once per n (2 n tiles -> one re-read per t tile).
KERNEL = """
func.func @main(%x: tensor<4x8xf16>, %w: tensor<8x8xf16> {q35.param = "w", q35.storage = "codes"})
    -> tensor<4x8xf16> {
  %y = func.call @linear(%x, %w) : (tensor<4x8xf16>, tensor<8x8xf16>) -> tensor<4x8xf16>
  func.return %y : tensor<4x8xf16>
}
func.func private @linear(%x: tensor<4x8xf16>, %w: tensor<8x8xf16> {q35.storage = "codes"}) -> tensor<4x8xf16>
    attributes {q35.kernel = "linear"} {
  %c0 = arith.constant 0 : index
  %c2 = arith.constant 2 : index
  %c4 = arith.constant 4 : index
  %c8 = arith.constant 8 : index
  %zero = arith.constant 0.0 : f16
  %y0 = tensor.empty() : tensor<4x8xf16>
  %r = scf.for %t = %c0 to %c4 step %c2 iter_args(%yt = %y0) -> (tensor<4x8xf16>) {
    %rn = scf.for %n = %c0 to %c8 step %c4 iter_args(%ytn = %yt) -> (tensor<4x8xf16>) {
      %w_tile = tensor.extract_slice %w[%n, 0] [4, 8] [1, 1] : tensor<8x8xf16> to tensor<4x8xf16>
      %w_buf = bufferization.alloc_tensor() {memory_space = 1 : i64} : tensor<4x8xf16>
      %w_s = linalg.copy {q35.src_space = 0 : i64, q35.dst_space = 1 : i64}
          ins(%w_tile : tensor<4x8xf16>) outs(%w_buf : tensor<4x8xf16>) -> tensor<4x8xf16>
      %x_tile = tensor.extract_slice %x[%t, 0] [2, 8] [1, 1] : tensor<4x8xf16> to tensor<2x8xf16>
      %x_buf = bufferization.alloc_tensor() {memory_space = 1 : i64} : tensor<2x8xf16>
      %x_s = linalg.copy {q35.src_space = 0 : i64, q35.dst_space = 1 : i64}
          ins(%x_tile : tensor<2x8xf16>) outs(%x_buf : tensor<2x8xf16>) -> tensor<2x8xf16>
      %acc_buf = bufferization.alloc_tensor() {memory_space = 1 : i64} : tensor<2x4xf16>
      %acc0 = linalg.fill ins(%zero : f16) outs(%acc_buf : tensor<2x4xf16>) -> tensor<2x4xf16>
      %acc = linalg.generic {indexing_maps = [affine_map<(t, n, k) -> (t, k)>, affine_map<(t, n, k) -> (n, k)>,
          affine_map<(t, n, k) -> (t, n)>], iterator_types = ["parallel", "parallel", "reduction"]}
          ins(%x_s, %w_s : tensor<2x8xf16>, tensor<4x8xf16>) outs(%acc0 : tensor<2x4xf16>) {
      ^bb0(%a: f16, %b: f16, %c: f16):
        %m = arith.mulf %a, %b : f16
        %s = arith.addf %c, %m : f16
        linalg.yield %s : f16
      } -> tensor<2x4xf16>
      %y_slice = tensor.extract_slice %ytn[%t, %n] [2, 4] [1, 1] : tensor<4x8xf16> to tensor<2x4xf16>
      %y_out = linalg.copy {q35.src_space = 1 : i64, q35.dst_space = 0 : i64}
          ins(%acc : tensor<2x4xf16>) outs(%y_slice : tensor<2x4xf16>) -> tensor<2x4xf16>
      %next = tensor.insert_slice %y_out into %ytn[%t, %n] [2, 4] [1, 1] : tensor<2x4xf16> into tensor<4x8xf16>
      scf.yield %next : tensor<4x8xf16>
    }
    scf.yield %rn : tensor<4x8xf16>
  }
  func.return %r : tensor<4x8xf16>
}
"""


def test_tile_loops_give_first_reads_and_rereads_with_their_working_sets() -> None:
    module = Parser(make_context(), KERNEL).parse_module()
    assert isinstance(module, ModuleOp)
    (kernel,) = extract(module).kernels
    w, x, w_tile, x_tile, y_tile = 8 * 8 * 2, 4 * 8 * 2, 4 * 8 * 2, 2 * 8 * 2, 2 * 4 * 2
    assert kernel.weight_bytes == w and kernel.activation_read == x  # first reads: each source once
    rereads = {(r.kind, r.working_set): r.bytes for r in kernel.rereads}
    # w again for the second t tile; between two reads of a w tile, one t iteration touches all of w, one x
    # tile and the two y tiles it writes.
    assert rereads[("weight", w + x_tile + 2 * y_tile)] == w
    # the x tile again for the second n tile of each t tile; between them one n iteration: a w tile, the x tile,
    # a y tile.
    assert rereads[("activation", w_tile + x_tile + y_tile)] == 2 * x_tile
    assert len(rereads) == 2
