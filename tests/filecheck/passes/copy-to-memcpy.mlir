// copy-to-memcpy: tensor copies (the staged tiles' linalg.copy) become bufferization.materialize_in_destination,
// which bufferizes to memref.copy (llvm.memcpy for contiguous buffers).
// RUN: q35c opt %s -p 'materialize-weights,tile{target=host},unpack-bits,schedule-memory{target=host},copy-to-memcpy' | filecheck %s
// RUN: q35c opt %s -p 'materialize-weights,tile{target=host},unpack-bits,schedule-memory{target=host},copy-to-memcpy' | mlir-opt > /dev/null

func.func @gemv(%x: tensor<1x128xf16>) -> tensor<1x48xf16> {
  %w = q35.weight "w" : !q35.packed<48x128, #q35.scheme<int4, g = 32>>
  %y = q35.linear %x, %w : (tensor<1x128xf16>, !q35.packed<48x128, #q35.scheme<int4, g = 32>>) -> tensor<1x48xf16>
  func.return %y : tensor<1x48xf16>
}

// CHECK-LABEL: func.func private @linear.1x48x128.int4_g32.f16
// CHECK-NOT:   linalg.copy
// CHECK:       %codes_staged = bufferization.materialize_in_destination %codes in %codes_staged_buf : (tensor<48x16xi32>, tensor<48x16xi32>) -> tensor<48x16xi32>
// CHECK:       %x_staged = bufferization.materialize_in_destination %x in %x_staged_buf : (tensor<1x128xf16>, tensor<1x128xf16>) -> tensor<1x128xf16>
// CHECK-NOT:   linalg.copy
// CHECK:       %y_out = bufferization.materialize_in_destination %y_1 in %y_slice
// CHECK:       func.return
