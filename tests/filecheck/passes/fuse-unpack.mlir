// fuse-unpack: a matrix-vector kernel (one token row) unpacks, dequantizes and multiplies in one contraction over
// the unpacking grid; kernels with more token rows keep their unpacking and dequantizing ops.
// RUN: q35c opt %s -p 'materialize-weights,tile{target=host},unpack-bits,schedule-memory{target=host},fuse-unpack' | filecheck %s
// Real MLIR reads the fused kernels:
// RUN: q35c opt %s -p 'materialize-weights,tile{target=host},unpack-bits,schedule-memory{target=host},fuse-unpack' | mlir-opt > /dev/null

func.func @gemv(%x: tensor<1x128xf16>) -> tensor<1x48xf16> {
  %w = q35.weight "w" : !q35.packed<48x128, #q35.scheme<int4, g = 32>>
  %y = q35.linear %x, %w : (tensor<1x128xf16>, !q35.packed<48x128, #q35.scheme<int4, g = 32>>) -> tensor<1x48xf16>
  func.return %y : tensor<1x48xf16>
}

func.func @gemm(%x: tensor<2x128xf16>) -> tensor<2x48xf16> {
  %w = q35.weight "v" : !q35.packed<48x128, #q35.scheme<q3p5, g = 32>>
  %y = q35.linear %x, %w : (tensor<2x128xf16>, !q35.packed<48x128, #q35.scheme<q3p5, g = 32>>) -> tensor<2x48xf16>
  func.return %y : tensor<2x48xf16>
}

// The int4 matrix-vector kernel: one contraction over (t, n, group, word in group, nibble); x at
// k = group * 32 + word * 8 + nibble, the words at (n, group * 4 + word), scale and offset at (n, group): loop
// invariants inside a group; the nibble from linalg.index 4 (the grid's last dim); an empty tensor of the loops'
// extents, never read.
// CHECK-LABEL: func.func private @linear.1x48x128.int4_g32.f16
// CHECK-NOT:   q35.kernel = "unpack"
// CHECK:       %[[EXTENTS:.*]] = tensor.empty() : tensor<48x4x4x8xi8>
// CHECK:       %acc = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3, d4) -> (d0, (((d2 * 32) + (d3 * 8)) + d4))>, affine_map<(d0, d1, d2, d3, d4) -> (d1, ((d2 * 4) + d3))>, affine_map<(d0, d1, d2, d3, d4) -> (d1, d2)>, affine_map<(d0, d1, d2, d3, d4) -> (d1, d2)>, affine_map<(d0, d1, d2, d3, d4) -> (d1, d2, d3, d4)>, affine_map<(d0, d1, d2, d3, d4) -> (d0, d1)>], iterator_types = ["parallel", "parallel", "reduction", "reduction", "reduction"]}
// CHECK-SAME:  ins(%x_staged, %codes_staged, %scale_staged, %offset_staged, %[[EXTENTS]] :
// CHECK:       linalg.index 4 : index
// CHECK:       arith.sitofp
// CHECK:       math.fma
// CHECK:       arith.mulf
// CHECK:       arith.addf
// CHECK-NOT:   tensor.collapse_shape
// CHECK:       func.return

// Two token rows: unpacked once, then multiplied.
// CHECK-LABEL: func.func private @linear.2x48x128.q3p5_g32_dense.f16
// CHECK:       q35.kernel = "unpack"
// CHECK:       tensor.collapse_shape
// CHECK:       iterator_types = ["parallel", "parallel", "reduction"]
