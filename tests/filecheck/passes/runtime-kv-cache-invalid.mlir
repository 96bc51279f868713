// runtime-kv-cache refuses an attention whose keys have no positions (k is not a q35.rope result).
// RUN: not q35c opt %s -p runtime-kv-cache 2>&1 | filecheck %s

// CHECK: attention k is not a q35.rope result, so the new keys have no positions
func.func @main(%q: tensor<1x64xf16>, %k: tensor<1x32xf16>, %kc: tensor<8x32xf16>, %vc: tensor<8x32xf16>) -> tensor<1x64xf16> {
  %a = q35.attention %q, %k, %k, %kc, %vc {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64} : (tensor<1x64xf16>, tensor<1x32xf16>, tensor<1x32xf16>, tensor<8x32xf16>, tensor<8x32xf16>) -> tensor<1x64xf16>
  func.return %a : tensor<1x64xf16>
}
