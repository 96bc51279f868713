// lower-graph of q35.attention with `positions`: a KV cache of capacity C filled at run time. Cache row j is
// seen by query t only when j + t < pos[t] (below the sequence's first new position), new rows causally.
// RUN: q35c opt %s -p lower-graph | filecheck %s
// Real MLIR reads the result:
// RUN: q35c opt %s -p lower-graph,unpack-bits | mlir-opt > /dev/null

// C = 3 cache rows, T = 2 new tokens: the row max and the exponentials read pos through (h, t, j) -> (t).
// CHECK-LABEL: func.func @attention_positions
// CHECK:       %max = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d1)>, affine_map<(d0, d1, d2) -> (d0, d1)>], iterator_types = ["parallel", "parallel", "reduction"]} ins(%scores, %pos : tensor<4x2x5xf32>, tensor<2xi32>) outs(%max_init : tensor<4x2xf32>)
// CHECK-NEXT:  ^bb0(%s: f32, %pos_1: i32, %max_1: f32):
// CHECK:         %[[C:.*]] = arith.constant 3 : i32
// CHECK-NEXT:    %[[LAST:.*]] = arith.addi %[[T:.*]], %[[C]] : i32
// CHECK-NEXT:    %[[CAUSAL:.*]] = arith.cmpi sle, %[[J:.*]], %[[LAST]] : i32
// CHECK-NEXT:    %[[NEW:.*]] = arith.cmpi sge, %[[J]], %[[C]] : i32
// CHECK-NEXT:    %[[JT:.*]] = arith.addi %[[J]], %[[T]] : i32
// CHECK-NEXT:    %[[FILLED:.*]] = arith.cmpi slt, %[[JT]], %pos_1 : i32
// CHECK-NEXT:    %[[SEEN:.*]] = arith.ori %[[NEW]], %[[FILLED]] : i1
// CHECK-NEXT:    %[[VALID:.*]] = arith.andi %[[CAUSAL]], %[[SEEN]] : i1
// CHECK:         arith.select %[[VALID]], %s
// CHECK:       %e = linalg.generic {{.*}} ins(%scores, %max, %pos : tensor<4x2x5xf32>, tensor<4x2xf32>, tensor<2xi32>)
// CHECK:         arith.cmpi slt
// CHECK:         math.exp
func.func @attention_positions(%q: tensor<2x16xf16>, %k: tensor<2x8xf16>, %v: tensor<2x8xf16>, %kc: tensor<3x8xf16>, %vc: tensor<3x8xf16>, %pos: tensor<2xi32>) -> tensor<2x16xf16> {
  %o = q35.attention %q, %k, %v, %kc, %vc positions %pos {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 4 : i64} : (tensor<2x16xf16>, tensor<2x8xf16>, tensor<2x8xf16>, tensor<3x8xf16>, tensor<3x8xf16>, tensor<2xi32>) -> tensor<2x16xf16>
  func.return %o : tensor<2x16xf16>
}

// A batch reads each sequence's positions as [B, T].
// CHECK-LABEL: func.func @attention_positions_batch
// CHECK:       %pos_seq = tensor.expand_shape %pos {{.*}} : tensor<4xi32> into tensor<2x2xi32>
// CHECK:       %max = linalg.generic {{.*}} ins(%scores, %pos_seq : tensor<2x4x2x5xf32>, tensor<2x2xi32>)
func.func @attention_positions_batch(%q: tensor<4x16xf16>, %k: tensor<4x8xf16>, %v: tensor<4x8xf16>, %kc: tensor<6x8xf16>, %vc: tensor<6x8xf16>, %pos: tensor<4xi32>) -> tensor<4x16xf16> {
  %o = q35.attention %q, %k, %v, %kc, %vc positions %pos {batch = 2 : i64, num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 4 : i64} : (tensor<4x16xf16>, tensor<4x8xf16>, tensor<4x8xf16>, tensor<6x8xf16>, tensor<6x8xf16>, tensor<4xi32>) -> tensor<4x16xf16>
  func.return %o : tensor<4x16xf16>
}

// No cache rows (C = 0): nothing to mask by position, pos is not read.
// CHECK-LABEL: func.func @attention_positions_no_cache
// CHECK:       %max = linalg.generic {{.*}} ins(%scores : tensor<4x1x1xf32>)
// CHECK-NOT:   %pos
// CHECK:       func.return
func.func @attention_positions_no_cache(%q: tensor<1x16xf16>, %k: tensor<1x8xf16>, %v: tensor<1x8xf16>, %kc: tensor<0x8xf16>, %vc: tensor<0x8xf16>, %pos: tensor<1xi32>) -> tensor<1x16xf16> {
  %o = q35.attention %q, %k, %v, %kc, %vc positions %pos {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 4 : i64} : (tensor<1x16xf16>, tensor<1x8xf16>, tensor<1x8xf16>, tensor<0x8xf16>, tensor<0x8xf16>, tensor<1xi32>) -> tensor<1x16xf16>
  func.return %o : tensor<1x16xf16>
}
