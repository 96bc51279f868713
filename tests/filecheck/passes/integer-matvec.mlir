// integer-matvec: a one-token kernel whose codes are bit fields (q3p5) becomes integer dot products on vectors,
// after one quantization of the activations; a kernel whose groups are smaller than a chunk of codes (q3p5 with
// g = 32: 64 codes per 7 words) is left as it is.
// RUN: q35c opt %s -p 'materialize-weights,tile{target=host},unpack-bits,schedule-memory{target=host},integer-matvec' | filecheck %s
// Real MLIR reads the result:
// RUN: q35c opt %s -p 'materialize-weights,tile{target=host},unpack-bits,schedule-memory{target=host},integer-matvec' | mlir-opt > /dev/null

func.func @gemv(%x: tensor<1x256xf16>) -> tensor<1x48xf16> {
  %w = q35.weight "w" : !q35.packed<48x256, #q35.scheme<q3p5, g = 64>>
  %y = q35.linear %x, %w : (tensor<1x256xf16>, !q35.packed<48x256, #q35.scheme<q3p5, g = 64>>) -> tensor<1x48xf16>
  func.return %y : tensor<1x48xf16>
}

func.func @gemv_g32(%x: tensor<1x256xf16>) -> tensor<1x48xf16> {
  %w = q35.weight "v" : !q35.packed<48x256, #q35.scheme<q3p5, g = 32>>
  %y = q35.linear %x, %w : (tensor<1x256xf16>, !q35.packed<48x256, #q35.scheme<q3p5, g = 32>>) -> tensor<1x48xf16>
  func.return %y : tensor<1x48xf16>
}

// The activations, once, per group of 64 on vectors: max |x| and sum, xq = round(x * 255 / max|x| * 2^multiplier)
// as i16, the sign bits' pair sums (negated), the step max|x| / 255 / 2^P.
// CHECK-LABEL: func.func private @linear.1x48x256.q3p5_g64_dense.f16
// CHECK:       %xq, %x_step, %x_sum, %x_bias = scf.for
// CHECK:         vector.transfer_read %x_staged[{{.*}}], {{.*}} {in_bounds = [true]} : tensor<1x256xf16>, vector<64xf16>
// CHECK:         vector.reduction <maximumf>
// CHECK:         vector.reduction <add>
// CHECK:         arith.constant 2.550000e+02 : f32
// CHECK:         math.roundeven {{.*}} : vector<64xf32>
// CHECK:         arith.fptosi {{.*}} : vector<64xf32> to vector<64xi16>
// CHECK:         vector.transfer_write {{.*}} : vector<16xi32>, tensor<4x16xi32>
// CHECK:       }
// The kernel: a generic over (t, n) whose body reads 4 words per 32 codes in order, permutes their bytes into
// 16-bit lanes, masks (and, xor), multiplies by xq in pairs into 16 i32 lanes starting from the bias, then
// scales each group's sums by its scale times the step (the 4 groups' scales read as one vector).
// CHECK:       %acc = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]} outs(%acc_init : tensor<1x48xf32>) attrs = {q35.kernel = "linear"}
// CHECK:         vector.transfer_read %scale_staged{{.*}} : tensor<48x4xf16>, vector<4xf16>
// CHECK:         vector.transfer_read %x_bias{{.*}} : tensor<4x16xi32>, vector<16xi32>
// CHECK:           vector.transfer_read %codes_staged{{.*}} {in_bounds = [true]} : tensor<48x28xi32>, vector<4xi32>
// CHECK:           vector.bitcast {{.*}} : vector<4xi32> to vector<16xi8>
// CHECK:           vector.shuffle {{.*}} : vector<16xi8>, vector<16xi8>
// CHECK:           vector.bitcast {{.*}} : vector<64xi8> to vector<32xi16>
// CHECK:           arith.andi
// CHECK:           arith.xori
// CHECK:           vector.transfer_read %xq{{.*}} : tensor<4x64xi16>, vector<32xi16>
// CHECK:           arith.muli {{.*}} : vector<32xi32>
// CHECK:           arith.addi {{.*}} : vector<16xi32>
// CHECK:         arith.sitofp {{.*}} : vector<16xi32> to vector<16xf32>
// CHECK:         vector.fma
// CHECK:         vector.reduction <add>
// CHECK-NOT:   q35.kernel = "unpack"
// CHECK:       func.return

// g = 32: unchanged (the unpacking, the dequantization and the contraction over K).
// CHECK-LABEL: func.func private @linear.1x48x256.q3p5_g32_dense.f16
// CHECK-NOT:   vector.
// CHECK:       q35.kernel = "unpack"
// CHECK:       iterator_types = ["parallel", "parallel", "reduction"]
// CHECK:       func.return
