// reduce-in-registers: a linear contraction becomes a generic over its parallel dimensions whose body runs the
// reduction as scf.for loops carrying the sum, reading the inputs with tensor.extract at their maps' positions.
// RUN: q35c opt %s -p 'materialize-weights,tile{target=host},unpack-bits,schedule-memory{target=host},fuse-unpack,reduce-in-registers' | filecheck %s
// RUN: q35c opt %s -p 'materialize-weights,tile{target=host},unpack-bits,schedule-memory{target=host},fuse-unpack,reduce-in-registers' | mlir-opt > /dev/null

func.func @gemv(%x: tensor<1x128xf16>) -> tensor<1x48xf16> {
  %w = q35.weight "w" : !q35.packed<48x128, #q35.scheme<int4, g = 32>>
  %y = q35.linear %x, %w : (tensor<1x128xf16>, !q35.packed<48x128, #q35.scheme<int4, g = 32>>) -> tensor<1x48xf16>
  func.return %y : tensor<1x48xf16>
}

// CHECK-LABEL: func.func private @linear.1x48x128.int4_g32.f16
// CHECK:       %acc = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]} outs(%acc_init : tensor<1x48xf32>) attrs = {q35.kernel = "linear"} {
// CHECK-NEXT:  ^bb0(%[[START:.*]]: f32):
// CHECK-NEXT:    %[[T:.*]] = linalg.index 0 : index
// CHECK-NEXT:    %[[N:.*]] = linalg.index 1 : index
// CHECK:         %[[GROUPS:.*]] = arith.constant 4 : index
// CHECK-NEXT:    %{{.*}} = scf.for %[[G:.*]] = %{{.*}} to %[[GROUPS]] step %{{.*}} iter_args(%{{.*}} = %[[START]]) -> (f32) {
// CHECK-NEXT:      %[[WORDS:.*]] = arith.constant 4 : index
// CHECK-NEXT:      %{{.*}} = scf.for %[[W:.*]] = %{{.*}} to %[[WORDS]] step %{{.*}} iter_args(%{{.*}}) -> (f32) {
// CHECK-NEXT:        %[[NIBBLES:.*]] = arith.constant 8 : index
// CHECK-NEXT:        %{{.*}} = scf.for %[[J:.*]] = %{{.*}} to %[[NIBBLES]] step %{{.*}} iter_args(%[[PART:.*]] = %{{.*}}) -> (f32) {
// CHECK-NEXT:          %[[K:.*]] = affine.apply affine_map<(d0, d1, d2, d3, d4) -> ((((d2 * 32) + (d3 * 8)) + d4))> (%[[T]], %[[N]], %[[G]], %[[W]], %[[J]])
// CHECK-NEXT:          %{{.*}} = tensor.extract %x_staged[%[[T]], %[[K]]] : tensor<1x128xf16>
// CHECK:               %{{.*}} = tensor.extract %scale_staged[%[[N]], %[[G]]] : tensor<48x4xf16>
// CHECK:               %[[SUM:.*]] = arith.addf %[[PART]], %{{.*}} : f32
// CHECK-NEXT:          scf.yield %[[SUM]] : f32
// CHECK:         linalg.yield
