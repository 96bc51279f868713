// integer-matvec{interleave_rows=8}: the storage of a weight that only integer kernels read is interleaved by
// blocks of 8 rows (its arguments say so, [rows, groups per row], through the call into the kernel), and the
// one-token kernel computes 8 outputs per step from [N / 8, 8 C] views of the codes, scales and offsets; a weight
// that something else reads (here its codes are unpacked for the caller) keeps its plain rows, as does one whose
// rows are no whole number of blocks.
// RUN: q35c opt %s -p 'materialize-weights,tile{target=host},unpack-bits,schedule-memory{target=host},unstage-tiles,integer-matvec{interleave_rows=8}' | filecheck %s
// RUN: q35c opt %s -p 'materialize-weights,tile{target=host},unpack-bits,schedule-memory{target=host},unstage-tiles,integer-matvec{interleave_rows=8}' | mlir-opt > /dev/null

// CHECK-LABEL: func.func @only_kernels
// CHECK-SAME:    %w.codes: tensor<48x28xi32> {{{[^}]*}}q35.interleave = [8 : i64, 4 : i64]}
// CHECK-SAME:    %w.scale: tensor<48x4xf16> {{{[^}]*}}q35.interleave = [8 : i64, 4 : i64]}
// CHECK-SAME:    %w.offset: tensor<48x4xf16> {{{[^}]*}}q35.interleave = [8 : i64, 4 : i64]}
func.func @only_kernels(%x: tensor<1x256xf16>) -> tensor<1x48xf16> {
  %w = q35.weight "w" : !q35.packed<48x256, #q35.scheme<q3p5, g = 64>>
  %y = q35.linear %x, %w : (tensor<1x256xf16>, !q35.packed<48x256, #q35.scheme<q3p5, g = 64>>) -> tensor<1x48xf16>
  func.return %y : tensor<1x48xf16>
}

// CHECK-LABEL: func.func @also_unpacked
// CHECK-NOT:     q35.interleave
// CHECK:         return
func.func @also_unpacked(%x: tensor<1x256xf16>) -> (tensor<1x40xf16>, tensor<40x256xi8>) {
  %w = q35.weight "v" : !q35.packed<40x256, #q35.scheme<q3p5, g = 64>>
  %y = q35.linear %x, %w : (tensor<1x256xf16>, !q35.packed<40x256, #q35.scheme<q3p5, g = 64>>) -> tensor<1x40xf16>
  %codes = q35_storage.unpack %w : !q35.packed<40x256, #q35.scheme<q3p5, g = 64>> -> tensor<40x256xi8>
  func.return %y, %codes : tensor<1x40xf16>, tensor<40x256xi8>
}

// CHECK-LABEL: func.func @ragged
// CHECK-NOT:     q35.interleave
// CHECK:         return
func.func @ragged(%x: tensor<1x256xf16>) -> tensor<1x36xf16> {
  %w = q35.weight "u" : !q35.packed<36x256, #q35.scheme<q3p5, g = 64>>
  %y = q35.linear %x, %w : (tensor<1x256xf16>, !q35.packed<36x256, #q35.scheme<q3p5, g = 64>>) -> tensor<1x36xf16>
  func.return %y : tensor<1x36xf16>
}

// The kernel of @only_kernels: the views, the output's 8 strided column slices, one generic computing 8 outputs
// from each group's codes (8 reads of the view's row, 4 words apart per part) and its 8 scales as one vector.
// CHECK-LABEL: func.func private @linear.1x48x256.q3p5_g64_dense.f16
// CHECK-SAME:    q35.interleave = [8 : i64, 4 : i64]
// CHECK-DAG:     %[[CODES:.*]] = tensor.collapse_shape %{{.*}} {{\[}}[0 : i64], [1 : i64, 2 : i64]] : tensor<6x8x28xi32> into tensor<6x224xi32>
// CHECK-DAG:     %[[SCALES:.*]] = tensor.collapse_shape %{{.*}} : tensor<6x8x4xf16> into tensor<6x32xf16>
// CHECK:         tensor.extract_slice %{{.*}}[0, 7] [1, 6] [1, 8] : tensor<1x48xf32> to tensor<1x6xf32>
// CHECK:         {{(%[0-9]+, ){7}%[0-9]+}} = linalg.generic
// CHECK:           vector.transfer_read %[[SCALES]]{{.*}} : tensor<6x32xf16>, vector<8xf16>
// CHECK:           vector.transfer_read %[[CODES]]{{.*}} : tensor<6x224xi32>, vector<4xi32>
// CHECK:           linalg.yield %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} : f32, f32, f32, f32, f32, f32, f32, f32
// CHECK:         tensor.insert_slice %{{.*}}[0, 7] [1, 6] [1, 8] : tensor<1x6xf32> into tensor<1x48xf32>
