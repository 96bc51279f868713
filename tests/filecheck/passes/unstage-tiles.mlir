// unstage-tiles: on the host, kernels read their tiles in place: the double-buffered rings of the tile loop, the
// staged last tile and their copies go, and each kernel reads the weight slice at its own position.
// RUN: q35c opt %s -p 'materialize-weights,tile{target=host},unpack-bits,schedule-memory{target=host},unstage-tiles' | filecheck %s
// Real MLIR reads the result:
// RUN: q35c opt %s -p 'materialize-weights,tile{target=host},unpack-bits,schedule-memory{target=host},unstage-tiles' | mlir-opt > /dev/null

func.func @gemv(%x: tensor<1x4096xf16>) -> tensor<1x1024xf16> {
  %w = q35.weight "w" : !q35.packed<1024x4096, #q35.scheme<int4, g = 128>>
  %y = q35.linear %x, %w : (tensor<1x4096xf16>, !q35.packed<1024x4096, #q35.scheme<int4, g = 128>>) -> tensor<1x1024xf16>
  func.return %y : tensor<1x1024xf16>
}

// The tile loop carries only the output; the iteration's tile is the slice at %n; the peeled last iteration's at
// the loop's bound; the remainder tile is read where it is.
// CHECK-LABEL: func.func private @linear.1x1024x4096.int4_g128.f16
// CHECK-NOT:   linalg.copy
// CHECK-NOT:   _ring
// CHECK:       scf.for %n = %c0 to %[[BOUND:.*]] step %c232 iter_args(%y_n = %y) -> (tensor<1x1024xf16>) {
// CHECK:         tensor.extract_slice %codes[%n, 0] [232, 512] [1, 1]
// CHECK:         tensor.extract_slice %scale[%n, 0] [232, 32] [1, 1]
// CHECK:         q35.kernel = "linear"
// CHECK:       }
// CHECK:       tensor.extract_slice %codes[%[[BOUND]], 0] [232, 512] [1, 1]
// CHECK:       tensor.extract_slice %codes[928, 0] [96, 512] [1, 1]
// CHECK-NOT:   linalg.copy
// CHECK-NOT:   _staged_buf
// CHECK:       func.return
