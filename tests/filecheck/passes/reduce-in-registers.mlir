// reduce-in-registers: a linear contraction becomes a generic over its parallel dimensions whose body runs the
// reduction as scf.for loops carrying the sum, reading the inputs with tensor.extract at their maps' positions.
// RUN: q35c opt %s -p 'materialize-weights,tile{target=host},unpack-bits,schedule-memory{target=host},fuse-unpack,reduce-in-registers' | filecheck %s
// RUN: q35c opt %s -p 'materialize-weights,tile{target=host},unpack-bits,schedule-memory{target=host},fuse-unpack,reduce-in-registers' | mlir-opt > /dev/null

func.func @gemv(%x: tensor<1x128xf16>) -> tensor<1x48xf16> {
  %w = q35.weight "w" : !q35.packed<48x128, #q35.scheme<int4, g = 32>>
  %y = q35.linear %x, %w : (tensor<1x128xf16>, !q35.packed<48x128, #q35.scheme<int4, g = 32>>) -> tensor<1x48xf16>
  func.return %y : tensor<1x48xf16>
}

// Any reduction whose output is indexed by its parallel loops and read element for element, not only a linear
// kernel's (attention's scores and weighted values): the row sum runs in a loop carrying it.
func.func @rowsum(%x: tensor<4x8xf32>) -> tensor<4xf32> {
  %zero = arith.constant 0.0 : f32
  %empty = tensor.empty() : tensor<4xf32>
  %init = linalg.fill ins(%zero : f32) outs(%empty : tensor<4xf32>) -> tensor<4xf32>
  %s = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0)>], iterator_types = ["parallel", "reduction"]} ins(%x : tensor<4x8xf32>) outs(%init : tensor<4xf32>) attrs = {q35.kernel = "attention"} {
  ^bb0(%a: f32, %acc: f32):
    %t = arith.addf %acc, %a : f32
    linalg.yield %t : f32
  } -> tensor<4xf32>
  func.return %s : tensor<4xf32>
}

// CHECK-LABEL: func.func @rowsum
// CHECK:       %s = linalg.generic {indexing_maps = [affine_map<(d0) -> (d0)>], iterator_types = ["parallel"]} outs(%init : tensor<4xf32>) attrs = {q35.kernel = "attention"} {
// CHECK-NEXT:  ^bb0(%[[START:.*]]: f32):
// CHECK-NEXT:    %[[ROW:.*]] = linalg.index 0 : index
// CHECK:         %{{.*}} = scf.for %[[J:.*]] = %{{.*}} to %{{.*}} step %{{.*}} iter_args(%[[PART:.*]] = %[[START]]) -> (f32) {
// CHECK-NEXT:      %[[A:.*]] = tensor.extract %x[%[[ROW]], %[[J]]] : tensor<4x8xf32>
// CHECK-NEXT:      %[[SUM:.*]] = arith.addf %[[PART]], %[[A]] : f32
// CHECK-NEXT:      scf.yield %[[SUM]] : f32

// A reduction whose sums a generic reads broadcast (a softmax's: each sum divides a row) stays as it is: fused
// into that consumer, its loop would run once per element of the row.
func.func @softmax_sum(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  %zero = arith.constant 0.0 : f32
  %empty = tensor.empty() : tensor<4xf32>
  %init = linalg.fill ins(%zero : f32) outs(%empty : tensor<4xf32>) -> tensor<4xf32>
  %s = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0)>], iterator_types = ["parallel", "reduction"]} ins(%x : tensor<4x8xf32>) outs(%init : tensor<4xf32>) {
  ^bb0(%a: f32, %acc: f32):
    %t = arith.addf %acc, %a : f32
    linalg.yield %t : f32
  } -> tensor<4xf32>
  %out = tensor.empty() : tensor<4x8xf32>
  %y = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0)>, affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]} ins(%x, %s : tensor<4x8xf32>, tensor<4xf32>) outs(%out : tensor<4x8xf32>) {
  ^bb0(%a: f32, %sum: f32, %o: f32):
    %q = arith.divf %a, %sum : f32
    linalg.yield %q : f32
  } -> tensor<4x8xf32>
  func.return %y : tensor<4x8xf32>
}

// CHECK-LABEL: func.func @softmax_sum
// CHECK:       %s = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0)>], iterator_types = ["parallel", "reduction"]}
// CHECK-NOT:   scf.for
// CHECK:       func.return

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

