// reassociate-reductions: float arithmetic in linalg reductions is flagged reassoc,contract; elementwise ops are not.
// RUN: q35c opt %s -p reassociate-reductions | filecheck %s
// Real MLIR reads the flagged IR:
// RUN: q35c opt %s -p reassociate-reductions | mlir-opt > /dev/null

func.func @f(%x: tensor<1x8xf32>, %w: tensor<4x8xf32>, %acc: tensor<1x4xf32>) -> tensor<1x4xf32> {
  %0 = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d2)>, affine_map<(d0, d1, d2) -> (d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1)>], iterator_types = ["parallel", "parallel", "reduction"]} ins(%x, %w : tensor<1x8xf32>, tensor<4x8xf32>) outs(%acc : tensor<1x4xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %1 = arith.mulf %a, %b : f32
    %2 = arith.addf %c, %1 : f32
    linalg.yield %2 : f32
  } -> tensor<1x4xf32>
  %3 = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]} ins(%0 : tensor<1x4xf32>) outs(%acc : tensor<1x4xf32>) {
  ^bb0(%a: f32, %c: f32):
    %4 = arith.addf %a, %a : f32
    linalg.yield %4 : f32
  } -> tensor<1x4xf32>
  func.return %3 : tensor<1x4xf32>
}

// CHECK-LABEL: func.func @f
// CHECK:       linalg.generic
// CHECK-SAME:  "reduction"
// CHECK:       arith.mulf %{{.*}}, %{{.*}} fastmath<reassoc,contract> : f32
// CHECK-NEXT:  arith.addf %{{.*}}, %{{.*}} fastmath<reassoc,contract> : f32
// CHECK:       linalg.generic
// CHECK:       arith.addf %{{[^ ]*}}, %{{[^ ]*}} : f32
