// q35.attention over a batch of B sequences: B*T new rows, B*C cache rows, `batch` printed only when B != 1.
// RUN: xdsl-opt %s --split-input-file | filecheck %s
// RUN: xdsl-opt %s --split-input-file --print-op-generic | xdsl-opt | filecheck %s
// RUN: xdsl-opt %s --split-input-file --print-op-generic | filecheck %s --check-prefix=GENERIC

func.func @batch2(%q: tensor<4x128xf16>, %k: tensor<4x64xf16>, %v: tensor<4x64xf16>, %kc: tensor<6x64xf16>, %vc: tensor<6x64xf16>) -> tensor<4x128xf16> {
  %a = q35.attention %q, %k, %v, %kc, %vc {batch = 2 : i64, head_dim = 32 : i64, num_heads = 4 : i64, num_kv_heads = 2 : i64} : (tensor<4x128xf16>, tensor<4x64xf16>, tensor<4x64xf16>, tensor<6x64xf16>, tensor<6x64xf16>) -> tensor<4x128xf16>
  func.return %a : tensor<4x128xf16>
}
// CHECK-LABEL: func.func @batch2
// CHECK-NEXT:    %a = q35.attention %q, %k, %v, %kc, %vc {batch = 2 : i64, head_dim = 32 : i64, num_heads = 4 : i64, num_kv_heads = 2 : i64} : (tensor<4x128xf16>, tensor<4x64xf16>, tensor<4x64xf16>, tensor<6x64xf16>, tensor<6x64xf16>) -> tensor<4x128xf16>
// GENERIC:       "q35.attention"(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}) <{batch = 2 : i64, head_dim = 32 : i64, num_heads = 4 : i64, num_kv_heads = 2 : i64}>

// -----
func.func @batch8_empty_cache(%q: tensor<8x128xf16>, %k: tensor<8x64xf16>, %kc: tensor<0x64xf16>) -> tensor<8x128xf16> {
  %a = q35.attention %q, %k, %k, %kc, %kc {batch = 8 : i64, head_dim = 32 : i64, num_heads = 4 : i64, num_kv_heads = 2 : i64} : (tensor<8x128xf16>, tensor<8x64xf16>, tensor<8x64xf16>, tensor<0x64xf16>, tensor<0x64xf16>) -> tensor<8x128xf16>
  func.return %a : tensor<8x128xf16>
}
// CHECK-LABEL: func.func @batch8_empty_cache
// CHECK-NEXT:    q35.attention {{.*}} {batch = 8 : i64, head_dim = 32 : i64, num_heads = 4 : i64, num_kv_heads = 2 : i64}

// -----
func.func @batch1_unprinted(%q: tensor<2x128xf16>, %k: tensor<2x64xf16>, %kc: tensor<4x64xf16>) -> tensor<2x128xf16> {
  %a = q35.attention %q, %k, %k, %kc, %kc {head_dim = 32 : i64, num_heads = 4 : i64, num_kv_heads = 2 : i64} : (tensor<2x128xf16>, tensor<2x64xf16>, tensor<2x64xf16>, tensor<4x64xf16>, tensor<4x64xf16>) -> tensor<2x128xf16>
  func.return %a : tensor<2x128xf16>
}
// CHECK-LABEL: func.func @batch1_unprinted
// CHECK-NEXT:    q35.attention %q, %k, %k, %kc, %kc {head_dim = 32 : i64, num_heads = 4 : i64, num_kv_heads = 2 : i64} :
