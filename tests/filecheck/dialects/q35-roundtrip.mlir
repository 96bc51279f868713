// Custom -> custom, custom -> generic -> custom, and generic accepted by real mlir-opt.
// RUN: xdsl-opt %s | filecheck %s
// RUN: xdsl-opt %s --print-op-generic | xdsl-opt | filecheck %s
// RUN: xdsl-opt %s --print-op-generic | filecheck %s --check-prefix=GENERIC
// RUN: xdsl-opt %s --print-op-generic | mlir-opt --allow-unregistered-dialect --mlir-print-op-generic | filecheck %s --check-prefix=GENERIC

func.func @block(%x: tensor<2x128xf16>, %ids: tensor<2xi32>, %kc: tensor<4x64xf16>, %vc: tensor<4x64xf16>) -> tensor<2x128xf16> {
  %wq = q35.weight "layers.0.q" : !q35.packed<128x128, #q35.scheme<q3p5, g = 64, container = dense>>
  %wk = q35.weight "layers.0.k" : !q35.packed<64x128, #q35.scheme<q3p5, g = 128, container = byte>>
  %wv = q35.weight "layers.0.v" : !q35.packed<64x128, #q35.scheme<int4, g = 32>>
  %wo = q35.weight "layers.0.o" : !q35.packed<128x128, #q35.scheme<int8>>
  %wg = q35.weight "layers.0.g" : !q35.packed<128x128, #q35.scheme<int8, g = 64>>
  %wu = q35.weight "layers.0.u" : !q35.packed<128x128, #q35.scheme<q4_0>>
  %wd = q35.weight "layers.0.d" : !q35.packed<128x128, #q35.scheme<q8_0>>
  %gn = q35.weight "layers.0.norm" : !q35.packed<128, #q35.scheme<fp16>>
  %emb = q35.weight "embed" : !q35.packed<256x128, #q35.scheme<fp16>>
  %h = q35.embed %ids, %emb : (tensor<2xi32>, !q35.packed<256x128, #q35.scheme<fp16>>) -> tensor<2x128xf16>
  %n = q35.rmsnorm %h, %gn {eps = 1.0e-05 : f32} : (tensor<2x128xf16>, !q35.packed<128, #q35.scheme<fp16>>) -> tensor<2x128xf16>
  %q = q35.linear %n, %wq : (tensor<2x128xf16>, !q35.packed<128x128, #q35.scheme<q3p5, g = 64, container = dense>>) -> tensor<2x128xf16>
  %k = q35.linear %n, %wk : (tensor<2x128xf16>, !q35.packed<64x128, #q35.scheme<q3p5, g = 128, container = byte>>) -> tensor<2x64xf16>
  %v = q35.linear %n, %wv : (tensor<2x128xf16>, !q35.packed<64x128, #q35.scheme<int4, g = 32>>) -> tensor<2x64xf16>
  %qr = q35.rope %q, %ids {head_dim = 32 : i64, theta = 1.0e+04 : f32} : (tensor<2x128xf16>, tensor<2xi32>) -> tensor<2x128xf16>
  %kr = q35.rope %k, %ids {head_dim = 32 : i64, theta = 1.0e+04 : f32} : (tensor<2x64xf16>, tensor<2xi32>) -> tensor<2x64xf16>
  %a = q35.attention %qr, %kr, %v, %kc, %vc {head_dim = 32 : i64, num_heads = 4 : i64, num_kv_heads = 2 : i64} : (tensor<2x128xf16>, tensor<2x64xf16>, tensor<2x64xf16>, tensor<4x64xf16>, tensor<4x64xf16>) -> tensor<2x128xf16>
  %o = q35.linear %a, %wo : (tensor<2x128xf16>, !q35.packed<128x128, #q35.scheme<int8>>) -> tensor<2x128xf16>
  %g = q35.linear %o, %wg : (tensor<2x128xf16>, !q35.packed<128x128, #q35.scheme<int8, g = 64>>) -> tensor<2x128xf16>
  %u = q35.linear %o, %wu : (tensor<2x128xf16>, !q35.packed<128x128, #q35.scheme<q4_0>>) -> tensor<2x128xf16>
  %s = q35.silu %g : tensor<2x128xf16>
  %m = q35.mul %s, %u : tensor<2x128xf16>
  %d = q35.linear %m, %wd : (tensor<2x128xf16>, !q35.packed<128x128, #q35.scheme<q8_0>>) -> tensor<2x128xf16>
  %r = q35.add %d, %x : tensor<2x128xf16>
  func.return %r : tensor<2x128xf16>
}

// CHECK-LABEL: func.func @block
// CHECK:      %wq = q35.weight "layers.0.q" : !q35.packed<128x128, #q35.scheme<q3p5, g = 64, container = dense>>
// CHECK-NEXT: %wk = q35.weight "layers.0.k" : !q35.packed<64x128, #q35.scheme<q3p5, g = 128, container = byte>>
// CHECK-NEXT: %wv = q35.weight "layers.0.v" : !q35.packed<64x128, #q35.scheme<int4, g = 32>>
// CHECK-NEXT: %wo = q35.weight "layers.0.o" : !q35.packed<128x128, #q35.scheme<int8>>
// CHECK-NEXT: %wg = q35.weight "layers.0.g" : !q35.packed<128x128, #q35.scheme<int8, g = 64>>
// CHECK-NEXT: %wu = q35.weight "layers.0.u" : !q35.packed<128x128, #q35.scheme<q4_0>>
// CHECK-NEXT: %wd = q35.weight "layers.0.d" : !q35.packed<128x128, #q35.scheme<q8_0>>
// CHECK-NEXT: %gn = q35.weight "layers.0.norm" : !q35.packed<128, #q35.scheme<fp16>>
// CHECK-NEXT: %emb = q35.weight "embed" : !q35.packed<256x128, #q35.scheme<fp16>>
// CHECK-NEXT: %h = q35.embed %ids, %emb : (tensor<2xi32>, !q35.packed<256x128, #q35.scheme<fp16>>) -> tensor<2x128xf16>
// CHECK-NEXT: %n = q35.rmsnorm %h, %gn {eps = 1.000000e-05 : f32} : (tensor<2x128xf16>, !q35.packed<128, #q35.scheme<fp16>>) -> tensor<2x128xf16>
// CHECK-NEXT: %q = q35.linear %n, %wq : (tensor<2x128xf16>, !q35.packed<128x128, #q35.scheme<q3p5, g = 64, container = dense>>) -> tensor<2x128xf16>
// CHECK-NEXT: %k = q35.linear %n, %wk
// CHECK-NEXT: %v = q35.linear %n, %wv
// CHECK-NEXT: %qr = q35.rope %q, %ids {head_dim = 32 : i64, theta = 1.000000e+04 : f32} : (tensor<2x128xf16>, tensor<2xi32>) -> tensor<2x128xf16>
// CHECK-NEXT: %kr = q35.rope %k, %ids
// CHECK-NEXT: %a = q35.attention %qr, %kr, %v, %kc, %vc {head_dim = 32 : i64, num_heads = 4 : i64, num_kv_heads = 2 : i64} : (tensor<2x128xf16>, tensor<2x64xf16>, tensor<2x64xf16>, tensor<4x64xf16>, tensor<4x64xf16>) -> tensor<2x128xf16>
// CHECK-NEXT: %o = q35.linear %a, %wo
// CHECK-NEXT: %g = q35.linear %o, %wg
// CHECK-NEXT: %u = q35.linear %o, %wu
// CHECK-NEXT: %s = q35.silu %g : tensor<2x128xf16>
// CHECK-NEXT: %m = q35.mul %s, %u : tensor<2x128xf16>
// CHECK-NEXT: %d = q35.linear %m, %wd
// CHECK-NEXT: %r = q35.add %d, %x : tensor<2x128xf16>
// CHECK-NEXT: func.return %r : tensor<2x128xf16>

// GENERIC:      "q35.weight"() <{name = "layers.0.q"}> : () -> !q35.packed<128x128, #q35.scheme<q3p5, g = 64, container = dense>>
// GENERIC:      "q35.embed"(%{{.*}}, %{{.*}}) : (tensor<2xi32>, !q35.packed<256x128, #q35.scheme<fp16>>) -> tensor<2x128xf16>
// GENERIC:      "q35.rmsnorm"(%{{.*}}, %{{.*}}) <{eps = {{1.000000e-05|9.99999974E-6}} : f32}>
// GENERIC:      "q35.linear"(%{{.*}}, %{{.*}}) : (tensor<2x128xf16>, !q35.packed<128x128, #q35.scheme<q3p5, g = 64, container = dense>>) -> tensor<2x128xf16>
// GENERIC:      "q35.rope"(%{{.*}}, %{{.*}}) <{head_dim = 32 : i64, theta = 1.000000e+04 : f32}>
// GENERIC:      "q35.attention"(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}) <{head_dim = 32 : i64, num_heads = 4 : i64, num_kv_heads = 2 : i64}>
// GENERIC:      "q35.silu"(%{{.*}}) : (tensor<2x128xf16>) -> tensor<2x128xf16>
// GENERIC:      "q35.mul"(%{{.*}}, %{{.*}}) : (tensor<2x128xf16>, tensor<2x128xf16>) -> tensor<2x128xf16>
// GENERIC:      "q35.add"(%{{.*}}, %{{.*}}) : (tensor<2x128xf16>, tensor<2x128xf16>) -> tensor<2x128xf16>
