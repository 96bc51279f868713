// Invalid `positions` of q35.attention give the expected diagnostics.
// RUN: xdsl-opt %s --split-input-file --verify-diagnostics --parsing-diagnostics | filecheck %s

func.func @positions_per_row(%q: tensor<2x64xf16>, %k: tensor<2x32xf16>, %c: tensor<8x32xf16>, %pos: tensor<1xi32>) {
  %o = q35.attention %q, %k, %k, %c, %c positions %pos {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64} : (tensor<2x64xf16>, tensor<2x32xf16>, tensor<2x32xf16>, tensor<8x32xf16>, tensor<8x32xf16>, tensor<1xi32>) -> tensor<2x64xf16>
  func.return
}
// CHECK: attention positions must be tensor<2xi32> (one per new row), got tensor<1xi32>

// -----
func.func @positions_i64(%q: tensor<1x64xf16>, %k: tensor<1x32xf16>, %c: tensor<8x32xf16>, %pos: tensor<1xi64>) {
  %o = q35.attention %q, %k, %k, %c, %c positions %pos {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64} : (tensor<1x64xf16>, tensor<1x32xf16>, tensor<1x32xf16>, tensor<8x32xf16>, tensor<8x32xf16>, tensor<1xi64>) -> tensor<1x64xf16>
  func.return
}
// CHECK: attention positions must be tensor<1xi32> (one per new row), got tensor<1xi64>
