// fuse-gather: an embedding lookup of a quantized table unpacks only the rows it reads: the unpacking and
// scale-decoding generics over the whole table go, their bodies are computed in the gather at the row's codes.
// RUN: q35c opt %s -p 'materialize-weights,lower-graph,tile{target=host},unpack-bits,schedule-memory{target=host},fuse-gather' | filecheck %s
// Real MLIR reads the result:
// RUN: q35c opt %s -p 'materialize-weights,lower-graph,tile{target=host},unpack-bits,schedule-memory{target=host},fuse-gather' | mlir-opt > /dev/null

func.func @main(%ids: tensor<1xi32>) -> tensor<1x64xf16> {
  %w = q35.weight "tok" : !q35.packed<100x64, #q35.scheme<q4_0>>
  %y = q35.embed %ids, %w : (tensor<1xi32>, !q35.packed<100x64, #q35.scheme<q4_0>>) -> tensor<1x64xf16>
  func.return %y : tensor<1x64xf16>
}

// One generic left, the gather; the code at column d of row id: block d floordiv 32, byte 2 + (d mod 16) of it,
// nibble (d floordiv 16) mod 2; the scale's two bytes at the block's start.
// CHECK-LABEL: func.func @main
// CHECK-NOT:   q35.kernel = "unpack"
// CHECK:       linalg.generic
// CHECK-SAME:  q35.kernel = "embed"
// CHECK:       %[[ROW:.*]] = arith.index_cast %id : i32 to index
// CHECK:       %[[COL:.*]] = linalg.index 1 : index
// CHECK-DAG:   %[[BLOCK:.*]] = affine.apply affine_map<(d0) -> ((d0 floordiv 32))> (%[[COL]])
// CHECK-DAG:   %[[NIBBLE:.*]] = affine.apply affine_map<(d0) -> (((d0 floordiv 16) mod 2))> (%[[COL]])
// CHECK-DAG:   %[[BYTE:.*]] = affine.apply affine_map<(d0) -> ((d0 mod 16))> (%[[COL]])
// CHECK:       affine.apply affine_map<(d0, d1, d2, d3) -> ((((d1 * 18) + 2) + d2))> (%[[ROW]], %[[BLOCK]], %[[BYTE]], %[[NIBBLE]])
// CHECK:       tensor.extract %tok.codes[%[[ROW]], %{{.*}}] : tensor<100x36xi8>
// CHECK:       tensor.extract %tok.codes
// CHECK:       tensor.extract %tok.codes
// CHECK:       arith.bitcast {{.*}} : i16 to f16
// CHECK:       linalg.yield
// CHECK-NOT:   linalg.generic
// CHECK:       func.return
