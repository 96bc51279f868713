// lower-graph needs the storage of embedding tables and norm gains: run materialize-weights first.
// RUN: not q35c opt %s -p lower-graph 2>&1 | filecheck %s
// CHECK: pass 'lower-graph' failed: q35.rmsnorm gain has no known storage (it is not a q35_storage.assemble): run materialize-weights before lower-graph

func.func @f(%x: tensor<1x8xf16>) -> tensor<1x8xf16> {
  %g = q35.weight "norm" : !q35.packed<8, #q35.scheme<fp16>>
  %y = q35.rmsnorm %x, %g {eps = 1.0e-05 : f32} : (tensor<1x8xf16>, !q35.packed<8, #q35.scheme<fp16>>) -> tensor<1x8xf16>
  func.return %y : tensor<1x8xf16>
}
