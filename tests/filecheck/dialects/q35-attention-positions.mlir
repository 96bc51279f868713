// q35.attention with the optional `positions` operand round-trips (generic form too).
// RUN: xdsl-opt %s --split-input-file | filecheck %s
// RUN: xdsl-opt %s --split-input-file --print-op-generic | xdsl-opt --split-input-file | filecheck %s

// CHECK: q35.attention %q, %k, %v, %kc, %vc positions %pos {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64} : (tensor<1x64xf16>, tensor<1x32xf16>, tensor<1x32xf16>, tensor<8x32xf16>, tensor<8x32xf16>, tensor<1xi32>) -> tensor<1x64xf16>
func.func @positions(%q: tensor<1x64xf16>, %k: tensor<1x32xf16>, %v: tensor<1x32xf16>, %kc: tensor<8x32xf16>, %vc: tensor<8x32xf16>, %pos: tensor<1xi32>) -> tensor<1x64xf16> {
  %o = q35.attention %q, %k, %v, %kc, %vc positions %pos {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64} : (tensor<1x64xf16>, tensor<1x32xf16>, tensor<1x32xf16>, tensor<8x32xf16>, tensor<8x32xf16>, tensor<1xi32>) -> tensor<1x64xf16>
  func.return %o : tensor<1x64xf16>
}
