// Invalid q35 IR gives the expected diagnostics.
// RUN: xdsl-opt %s --split-input-file --verify-diagnostics --parsing-diagnostics | filecheck %s

func.func @k_mismatch(%x: tensor<1x100xf16>) {
  %w = q35.weight "w" : !q35.packed<128x128, #q35.scheme<int8>>
  %y = q35.linear %x, %w : (tensor<1x100xf16>, !q35.packed<128x128, #q35.scheme<int8>>) -> tensor<1x128xf16>
  func.return
}
// CHECK: linear input has K=100 features but the weight is [128, 128]

// -----
func.func @wrong_result(%x: tensor<1x128xf16>) {
  %w = q35.weight "w" : !q35.packed<64x128, #q35.scheme<int8>>
  %y = q35.linear %x, %w : (tensor<1x128xf16>, !q35.packed<64x128, #q35.scheme<int8>>) -> tensor<1x128xf16>
  func.return
}
// CHECK: linear result must be [1, 64], got [1, 128]

// -----
%w = q35.weight "w" : !q35.packed<128x96, #q35.scheme<q3p5, g = 32, container = dense>>
// CHECK: q3p5:g=32:container=dense: K=96 must be a multiple of 64 for the dense container (32 pairs = 7 uint32 words)

// -----
%w = q35.weight "w" : !q35.packed<128x96, #q35.scheme<int4, g = 64>>
// CHECK: int4:g=64: K=96 is not divisible by the group size g=64

// -----
%w = q35.weight "w" : !q35.packed<128x96, #q35.scheme<q3p5, g = 33>>
// CHECK: q3p5 group size g must be even (weights pair up along K), got 33

// -----
%w = q35.weight "w" : !q35.packed<128x96, #q35.scheme<int3>>
// CHECK: unknown quantization scheme 'int3' (valid: fp16, f32, int8, int4, q3p5, q4_0, q8_0, q4_1, q5_0, q5_1, q2_k, q3_k, q4_k, q5_k, q6_k, iq4_nl, iq4_xs; for sizes only, the other ggml types: iq2_xxs, tq1_0, bf16, ...)

// -----
%w = q35.weight "w" : !q35.packed<128x96, #q35.scheme<q4_0, g = 64>>
// CHECK: unknown key 'g' for scheme q4_0 (valid keys: none)

// -----
%w = q35.weight "w" : !q35.packed<128x128, #q35.scheme<q3p5, g = 64, container = nibble>>
// CHECK: unknown q3p5 container 'nibble' (valid: dense, byte)

// -----
%w = q35.weight "w" : !q35.packed<128, #q35.scheme<int8>>
// CHECK: rank-1 !q35.packed must use fp16, got int8

// -----
func.func @norm(%x: tensor<1x128xf16>) {
  %g = q35.weight "g" : !q35.packed<64, #q35.scheme<fp16>>
  %y = q35.rmsnorm %x, %g {eps = 1.0e-05 : f32} : (tensor<1x128xf16>, !q35.packed<64, #q35.scheme<fp16>>) -> tensor<1x128xf16>
  func.return
}
// CHECK: rmsnorm gain must have shape [128], got [64]

// -----
func.func @rope(%x: tensor<1x128xf16>, %p: tensor<1xi32>) {
  %y = q35.rope %x, %p {head_dim = 48 : i64, theta = 1.0e+04 : f32} : (tensor<1x128xf16>, tensor<1xi32>) -> tensor<1x128xf16>
  func.return
}
// CHECK: rope head_dim=48 must be even and divide the 128 features

// -----
func.func @gqa(%q: tensor<1x128xf16>, %k: tensor<1x64xf16>, %c: tensor<4x64xf16>) {
  %o = q35.attention %q, %k, %k, %c, %c {head_dim = 32 : i64, num_heads = 4 : i64, num_kv_heads = 3 : i64} : (tensor<1x128xf16>, tensor<1x64xf16>, tensor<1x64xf16>, tensor<4x64xf16>, tensor<4x64xf16>) -> tensor<1x128xf16>
  func.return
}
// CHECK: num_heads=4 must be a positive multiple of num_kv_heads=3

// -----
func.func @kv_shape(%q: tensor<1x128xf16>, %k: tensor<1x32xf16>, %c: tensor<4x64xf16>) {
  %o = q35.attention %q, %k, %k, %c, %c {head_dim = 32 : i64, num_heads = 4 : i64, num_kv_heads = 2 : i64} : (tensor<1x128xf16>, tensor<1x32xf16>, tensor<1x32xf16>, tensor<4x64xf16>, tensor<4x64xf16>) -> tensor<1x128xf16>
  func.return
}
// CHECK: attention k must be [1, 64] (T x num_kv_heads*head_dim)

// -----
func.func @embed(%ids: tensor<1xi64>) {
  %e = q35.weight "e" : !q35.packed<256x128, #q35.scheme<fp16>>
  %h = q35.embed %ids, %e : (tensor<1xi64>, !q35.packed<256x128, #q35.scheme<fp16>>) -> tensor<1x128xf16>
  func.return
}
// CHECK: embed ids must be tensor<Txi32>
