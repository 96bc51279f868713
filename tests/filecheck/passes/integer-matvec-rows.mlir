// integer-matvec on a kernel of several token rows (q4_1, 11 rows): the activations are quantized once, row by
// row, xq and bias interleaved by blocks of 8 rows; one generic computes rows 0-7 (each output a strided slice of
// the sums: rows r, r + 8, ...), a second the last 3, and each part of codes, unpacked once, is multiplied with
// every row of the block.
// RUN: q35c opt %s -p 'materialize-weights,tile{target=host},unpack-bits,schedule-memory{target=host},integer-matvec' | filecheck %s
// Real MLIR reads the result:
// RUN: q35c opt %s -p 'materialize-weights,tile{target=host},unpack-bits,schedule-memory{target=host},integer-matvec' | mlir-opt > /dev/null

func.func @gemm(%x: tensor<11x256xf16>) -> tensor<11x48xf16> {
  %w = q35.weight "w" : !q35.packed<48x256, #q35.scheme<q4_1>>
  %y = q35.linear %x, %w : (tensor<11x256xf16>, !q35.packed<48x256, #q35.scheme<q4_1>>) -> tensor<11x48xf16>
  func.return %y : tensor<11x48xf16>
}

// 11 rows of 8 groups: 2 blocks of 8 rows x 8 groups in xq and bias (the last block 3 rows used), 88 steps and sums.
// CHECK-LABEL: func.func private @linear.11x48x256.q4_1.f16
// CHECK:       %xq, %x_step, %x_sum, %x_bias = scf.for {{.*}} -> (tensor<128x32xi16>, tensor<88xf32>, tensor<88xf32>, tensor<128x16xi32>)
// CHECK:         vector.transfer_write {{.*}} : vector<32xi16>, tensor<128x32xi16>
// CHECK:       }
// Rows 0-7: eight outputs, slices of the sums with stride 8.
// CHECK:       %[[S0:.*]] = tensor.extract_slice %acc_init[0, 0] [1, 48] [8, 1] : tensor<11x48xf32> to tensor<1x48xf32>
// CHECK:       tensor.extract_slice %acc_init[7, 0] [1, 48] [8, 1]
// CHECK:       linalg.generic {{.*}} iterator_types = ["parallel", "parallel"]} outs(%[[S0]], {{.*}} : tensor<1x48xf32>, tensor<1x48xf32>, tensor<1x48xf32>, tensor<1x48xf32>, tensor<1x48xf32>, tensor<1x48xf32>, tensor<1x48xf32>, tensor<1x48xf32>) attrs = {q35.kernel = "linear"}
// One read of 32 codes, permuted, masked, widened once ...
// CHECK:         vector.transfer_read %codes_staged{{.*}} : tensor<48x160xi8>, vector<16xi8>
// CHECK:         arith.xori {{.*}} : vector<32xi16>
// CHECK:         %[[CODE:.*]] = arith.extsi {{.*}} : vector<32xi16> to vector<32xi32>
// ... times each of the 8 rows' activations.
// CHECK-NOT:     vector.transfer_read %codes_staged
// CHECK-COUNT-8: arith.muli %[[CODE]], {{.*}} : vector<32xi32>
// CHECK-NOT:     arith.muli %[[CODE]],
// CHECK:         vector.transfer_read %codes_staged
// CHECK:         arith.sitofp {{.*}} : vector<16xi32> to vector<16xf32>
// CHECK:         vector.fma
// Back into the sums, then rows 8-10 (stride 3).
// CHECK:       tensor.insert_slice {{.*}} into %acc_init[0, 0] [1, 48] [8, 1]
// CHECK:       tensor.insert_slice {{.*}}[7, 0] [1, 48] [8, 1]
// CHECK:       tensor.extract_slice {{.*}}[8, 0] [1, 48] [3, 1]
// CHECK:       linalg.generic {{.*}} outs({{.*}} : tensor<1x48xf32>, tensor<1x48xf32>, tensor<1x48xf32>) attrs = {q35.kernel = "linear"}
// CHECK:       tensor.insert_slice {{.*}}[10, 0] [1, 48] [3, 1]
// CHECK-NOT:   q35.kernel = "unpack"
// CHECK:       func.return
