// materialize-weights: each q35.weight becomes arguments of its function holding the storage tensors, tagged
// with the parameter name and role; functions taking !q35.packed arguments take the storage instead (1:N),
// and their calls pass the storage tensors.
// RUN: q35c opt %s -p materialize-weights | filecheck %s
// RUN: q35c opt %s -p materialize-weights,unpack-bits | filecheck %s --check-prefix=LOWERED

// CHECK-LABEL: func.func @block(%x: tensor<2x64xf16>, %wq.codes: tensor<16x8xi32> {q35.storage = "codes"}, %wq.scale: tensor<16x2xf16> {q35.storage = "scale"}, %wq.offset: tensor<16x2xf16> {q35.storage = "offset"}, %wd.codes: tensor<16x36xi8> {q35.storage = "codes"}) -> (tensor<2x16xf16>, tensor<2x16xf16>)
// CHECK-NEXT:    %wq = q35_storage.assemble %wq.codes, %wq.scale, %wq.offset : (tensor<16x8xi32>, tensor<16x2xf16>, tensor<16x2xf16>) -> !q35.packed<16x64, #q35.scheme<int4, g = 32>>
// CHECK-NEXT:    %wd = q35_storage.assemble %wd.codes : (tensor<16x36xi8>) -> !q35.packed<16x64, #q35.scheme<q4_0>>
// CHECK-NEXT:    %q = q35.linear %x, %wq
// CHECK-NEXT:    %d = q35.linear %x, %wd
func.func @block(%x: tensor<2x64xf16>, %wq: !q35.packed<16x64, #q35.scheme<int4, g = 32>>, %wd: !q35.packed<16x64, #q35.scheme<q4_0>>) -> (tensor<2x16xf16>, tensor<2x16xf16>) {
  %q = q35.linear %x, %wq : (tensor<2x64xf16>, !q35.packed<16x64, #q35.scheme<int4, g = 32>>) -> tensor<2x16xf16>
  %d = q35.linear %x, %wd : (tensor<2x64xf16>, !q35.packed<16x64, #q35.scheme<q4_0>>) -> tensor<2x16xf16>
  func.return %q, %d : tensor<2x16xf16>, tensor<2x16xf16>
}

// CHECK-LABEL: func.func @model(%x: tensor<2x64xf16>, %ids: tensor<2xi32>, %layers.0.q.codes: tensor<16x8xi32> {q35.param = "layers.0.q", q35.storage = "codes"}, %layers.0.q.scale: tensor<16x2xf16> {q35.param = "layers.0.q", q35.storage = "scale"}, %layers.0.q.offset: tensor<16x2xf16> {q35.param = "layers.0.q", q35.storage = "offset"}, %layers.0.d.codes: tensor<16x36xi8> {q35.param = "layers.0.d", q35.storage = "codes"}, %norm.codes: tensor<64xf16> {q35.param = "norm", q35.storage = "codes"}, %embed.codes: tensor<32x64xf16> {q35.param = "embed", q35.storage = "codes"})
// CHECK-NEXT:    %gain = q35_storage.assemble %norm.codes : (tensor<64xf16>) -> !q35.packed<64, #q35.scheme<fp16>>
// CHECK-NEXT:    %table = q35_storage.assemble %embed.codes : (tensor<32x64xf16>) -> !q35.packed<32x64, #q35.scheme<fp16>>
// CHECK-NEXT:    %h = q35.embed %ids, %table
// CHECK-NEXT:    %n = q35.rmsnorm %h, %gain
// CHECK-NEXT:    %y, %y_1 = func.call @block(%n, %layers.0.q.codes, %layers.0.q.scale, %layers.0.q.offset, %layers.0.d.codes) : (tensor<2x64xf16>, tensor<16x8xi32>, tensor<16x2xf16>, tensor<16x2xf16>, tensor<16x36xi8>) -> (tensor<2x16xf16>, tensor<2x16xf16>)
// CHECK-NOT:     q35.weight
func.func @model(%x: tensor<2x64xf16>, %ids: tensor<2xi32>) -> (tensor<2x16xf16>, tensor<2x16xf16>) {
  %w0 = q35.weight "layers.0.q" : !q35.packed<16x64, #q35.scheme<int4, g = 32>>
  %d0 = q35.weight "layers.0.d" : !q35.packed<16x64, #q35.scheme<q4_0>>
  %gain = q35.weight "norm" : !q35.packed<64, #q35.scheme<fp16>>
  %table = q35.weight "embed" : !q35.packed<32x64, #q35.scheme<fp16>>
  %h = q35.embed %ids, %table : (tensor<2xi32>, !q35.packed<32x64, #q35.scheme<fp16>>) -> tensor<2x64xf16>
  %n = q35.rmsnorm %h, %gain {eps = 1.0e-05 : f32} : (tensor<2x64xf16>, !q35.packed<64, #q35.scheme<fp16>>) -> tensor<2x64xf16>
  %y:2 = func.call @block(%n, %w0, %d0) : (tensor<2x64xf16>, !q35.packed<16x64, #q35.scheme<int4, g = 32>>, !q35.packed<16x64, #q35.scheme<q4_0>>) -> (tensor<2x16xf16>, tensor<2x16xf16>)
  func.return %y#0, %y#1 : tensor<2x16xf16>, tensor<2x16xf16>
}

// After unpack-bits only the ops without a lowering yet (embed, rmsnorm) still see packed values.
// LOWERED-LABEL: func.func @block
// LOWERED:       linalg.generic
// LOWERED-NOT:   q35_storage
// LOWERED-NOT:   q35.linear
// LOWERED-LABEL: func.func @model
// LOWERED:       q35_storage.assemble %norm.codes
// LOWERED:       q35_storage.assemble %embed.codes
