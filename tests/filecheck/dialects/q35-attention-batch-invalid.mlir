// Invalid batched q35.attention gives the expected diagnostics.
// RUN: xdsl-opt %s --split-input-file --verify-diagnostics --parsing-diagnostics | filecheck %s

func.func @rows_not_multiple(%q: tensor<3x128xf16>, %k: tensor<3x64xf16>, %c: tensor<4x64xf16>) {
  %o = q35.attention %q, %k, %k, %c, %c {batch = 2 : i64, head_dim = 32 : i64, num_heads = 4 : i64, num_kv_heads = 2 : i64} : (tensor<3x128xf16>, tensor<3x64xf16>, tensor<3x64xf16>, tensor<4x64xf16>, tensor<4x64xf16>) -> tensor<3x128xf16>
  func.return
}
// CHECK: attention q has 3 rows, not a multiple of batch=2 (B*T rows)

// -----
func.func @cache_not_multiple(%q: tensor<4x128xf16>, %k: tensor<4x64xf16>, %c: tensor<5x64xf16>) {
  %o = q35.attention %q, %k, %k, %c, %c {batch = 2 : i64, head_dim = 32 : i64, num_heads = 4 : i64, num_kv_heads = 2 : i64} : (tensor<4x128xf16>, tensor<4x64xf16>, tensor<4x64xf16>, tensor<5x64xf16>, tensor<5x64xf16>) -> tensor<4x128xf16>
  func.return
}
// CHECK: attention caches have 5 rows, not a multiple of batch=2 (B*C rows)

// -----
func.func @batch_zero(%q: tensor<4x128xf16>, %k: tensor<4x64xf16>, %c: tensor<4x64xf16>) {
  %o = q35.attention %q, %k, %k, %c, %c {batch = 0 : i64, head_dim = 32 : i64, num_heads = 4 : i64, num_kv_heads = 2 : i64} : (tensor<4x128xf16>, tensor<4x64xf16>, tensor<4x64xf16>, tensor<4x64xf16>, tensor<4x64xf16>) -> tensor<4x128xf16>
  func.return
}
// CHECK: attention batch=0 must be positive
