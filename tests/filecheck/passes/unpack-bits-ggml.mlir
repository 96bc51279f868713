// unpack-bits on llama.cpp's block formats beyond q4_0/q8_0: codes from static byte addresses, sub-block scales
// (and mins) from the packed fields, dequantization as for every scheme.
// RUN: q35c opt %s -p unpack-bits | filecheck %s
// RUN: q35c opt %s -p 'unpack-bits{keep-int-codes=true}' | filecheck %s --check-prefix=INT
// Real MLIR reads the result:
// RUN: q35c opt %s -p unpack-bits | mlir-opt > /dev/null

// q4_k: one generic over (n, block, c < 4, h < 2, l < 32) in element order; element 64c + 32h + l is nibble h of
// byte 16 + 32c + l, one shift pair. Scales and mins: one generic each over (n, block, u < 2, r < 4) reading d
// (or dmin) and the 6-bit fields; the mins are negated (w = scale * q + offset).
// CHECK-LABEL: func.func @q4_k
// CHECK:       %codes_grid = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3, d4) -> (d0, ((((d1 * 144) + 16) + (d2 * 32)) + d4))>, affine_map<(d0, d1, d2, d3, d4) -> (d0, d1, d2, d3, d4)>]
// CHECK-SAME:  outs(%codes_init : tensor<2x1x4x2x32xi8>) attrs = {q35.kernel = "unpack"}
// CHECK:         %[[BYTE:.*]] = arith.extui %qs : i8 to i32
// CHECK:         %[[UP:.*]] = arith.shli %[[BYTE]], %{{.*}} : i32
// CHECK-NEXT:    %nibble = arith.shrui %[[UP]], %{{.*}} : i32
// CHECK:       %codes = tensor.collapse_shape %codes_grid {{.*}} : tensor<2x1x4x2x32xi8> into tensor<2x256xi8>
// CHECK:       %scale_grid = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, (d1 * 144))>, affine_map<(d0, d1, d2, d3) -> (d0, ((d1 * 144) + 1))>, affine_map<(d0, d1, d2, d3) -> (d0, (((d1 * 144) + 4) + d3))>, affine_map<(d0, d1, d2, d3) -> (d0, (((d1 * 144) + 12) + d3))>
// CHECK:         arith.select
// CHECK:         arith.mulf
// CHECK-NEXT:    linalg.yield %{{.*}} : f32
// CHECK:       %scale = tensor.collapse_shape %scale_grid {{.*}} into tensor<2x8xf32>
// CHECK:       %offset_grid = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, ((d1 * 144) + 2))>
// CHECK:         arith.negf
// CHECK:       %offset = tensor.collapse_shape %offset_grid {{.*}} into tensor<2x8xf32>
// CHECK:       %w_grid = linalg.generic
// CHECK-SAME:  ins(%codes, %scale, %offset : tensor<2x256xi8>, tensor<2x8xf32>, tensor<2x8xf32>)
// CHECK:         math.fma
// INT-LABEL:   func.func @q4_k
// INT:         %p = linalg.generic
// INT:         %xsum = linalg.generic
func.func @q4_k(%x: tensor<1x256xf32>, %blocks: tensor<2x144xi8>) -> tensor<1x2xf32> {
  %w = q35_storage.assemble %blocks : (tensor<2x144xi8>) -> !q35.packed<2x256, #q35.scheme<q4_k>>
  %y = q35.linear %x, %w : (tensor<1x256xf32>, !q35.packed<2x256, #q35.scheme<q4_k>>) -> tensor<1x2xf32>
  func.return %y : tensor<1x2xf32>
}

// q5_0: the low nibble, bit (i mod 8) of qh byte 2 + 2h + i/8 as bit 4, then the bias 16 subtracted.
// CHECK-LABEL: func.func @q5_0
// CHECK:       %codes_grid = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, (((d1 * 22) + 6) + d3))>, affine_map<(d0, d1, d2, d3) -> (d0, ((((d1 * 22) + 2) + (d2 * 2)) + (d3 floordiv 8)))>
// CHECK:         %code5 = arith.ori
// CHECK:         arith.subi %code5, %{{.*}} : i32
// CHECK:       %scale = linalg.generic
// CHECK-SAME:  outs(%scale_init : tensor<2x1xf16>)
// CHECK:       %w_grid = linalg.generic
// CHECK-NOT:     math.fma
// CHECK:         arith.mulf
func.func @q5_0(%x: tensor<1x32xf32>, %blocks: tensor<2x22xi8>) -> tensor<1x2xf32> {
  %w = q35_storage.assemble %blocks : (tensor<2x22xi8>) -> !q35.packed<2x32, #q35.scheme<q5_0>>
  %y = q35.linear %x, %w : (tensor<1x32xf32>, !q35.packed<2x32, #q35.scheme<q5_0>>) -> tensor<1x2xf32>
  func.return %y : tensor<1x2xf32>
}

// iq4_nl: the value the scale multiplies is the nibble's entry of the 16-value table, held in two i64 words.
// CHECK-LABEL: func.func @iq4_nl
// CHECK:         %nibble = arith.shrui
// CHECK:         %[[LOW:.*]] = arith.cmpi ult, %nibble, %{{.*}} : i32
// CHECK-NEXT:    %{{.*}} = arith.select %[[LOW]], %{{.*}}, %{{.*}} : i64
// CHECK:         arith.shrsi %{{.*}}, %{{.*}} : i64
func.func @iq4_nl(%x: tensor<1x32xf32>, %blocks: tensor<2x18xi8>) -> tensor<1x2xf32> {
  %w = q35_storage.assemble %blocks : (tensor<2x18xi8>) -> !q35.packed<2x32, #q35.scheme<iq4_nl>>
  %y = q35.linear %x, %w : (tensor<1x32xf32>, !q35.packed<2x32, #q35.scheme<iq4_nl>>) -> tensor<1x2xf32>
  func.return %y : tensor<1x2xf32>
}
