// prefetch-streams: in a loop reading an interleaved storage argument (q35.interleave; codes, scales or
// offsets) through views, one memref.prefetch into L2 (locality 2) 8 KiB ahead per 64-byte line the step's reads
// start: reads 16 bytes apart share a line, one 64 bytes on starts another. Arguments without the attribute and
// reads outside loops get none.
// RUN: mlir-opt %s --mlir-print-op-generic -o %t.mlir
// RUN: q35c opt %t.mlir -p 'prefetch-streams' | mlir-opt | filecheck %s
// RUN: q35c opt %t.mlir -p 'prefetch-streams{distance=256}' | mlir-opt | filecheck %s --check-prefix=NEAR

// CHECK-LABEL: func.func @stream
// CHECK:         %[[VIEW:.*]] = memref.collapse_shape
// CHECK:         scf.for %[[J:.*]] = {{.*}} iter_args
// CHECK:           %[[BASE:.*]] = arith.muli %[[J]]
// CHECK:           %[[A0:.*]] = arith.addi %[[BASE]], %c2048
// CHECK-NEXT:      memref.prefetch %[[VIEW]][%{{.*}}, %[[A0]]], read, locality<2>, data : memref<4x512xi32>
// CHECK-NEXT:      vector.transfer_read %[[VIEW]][%{{.*}}, %[[BASE]]]
// CHECK-NOT:       memref.prefetch
// CHECK:           vector.transfer_read %[[VIEW]]
// CHECK:           arith.constant 2064
// CHECK-NEXT:      %[[A1:.*]] = arith.addi %[[BASE]], %c2064
// CHECK-NEXT:      memref.prefetch %[[VIEW]][%{{.*}}, %[[A1]]], read, locality<2>, data
// CHECK-NEXT:      vector.transfer_read %[[VIEW]]
// CHECK-NOT:       memref.prefetch
// CHECK:           scf.yield
// NEAR-LABEL: func.func @stream
// NEAR:           arith.constant 64 : index
// NEAR:           memref.prefetch
func.func @stream(%codes: memref<32x64xi32> {q35.interleave = [8, 2], q35.storage = "codes"},
                  %plain: memref<32x64xi32> {q35.storage = "codes"}, %b: index) -> vector<4xi32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %c4 = arith.constant 4 : index
  %c16 = arith.constant 16 : index
  %c256 = arith.constant 256 : index
  %pad = arith.constant 0 : i32
  %zero = arith.constant dense<0> : vector<4xi32>
  %e = memref.expand_shape %codes [[0, 1], [2]] output_shape [4, 8, 64] : memref<32x64xi32> into memref<4x8x64xi32>
  %view = memref.collapse_shape %e [[0], [1, 2]] : memref<4x8x64xi32> into memref<4x512xi32>
  %outside = vector.transfer_read %view[%b, %c0], %pad {in_bounds = [true]} : memref<4x512xi32>, vector<4xi32>
  %sum = scf.for %j = %c0 to %c2 step %c1 iter_args(%acc = %outside) -> vector<4xi32> {
    %base = arith.muli %j, %c256 : index
    %w0 = vector.transfer_read %view[%b, %base], %pad {in_bounds = [true]} : memref<4x512xi32>, vector<4xi32>
    %at1 = arith.addi %base, %c4 : index
    %w1 = vector.transfer_read %view[%b, %at1], %pad {in_bounds = [true]} : memref<4x512xi32>, vector<4xi32>
    %at2 = arith.addi %base, %c16 : index
    %w2 = vector.transfer_read %view[%b, %at2], %pad {in_bounds = [true]} : memref<4x512xi32>, vector<4xi32>
    %p = vector.transfer_read %plain[%j, %c0], %pad {in_bounds = [true]} : memref<32x64xi32>, vector<4xi32>
    %s0 = arith.addi %acc, %w0 : vector<4xi32>
    %s1 = arith.addi %s0, %w1 : vector<4xi32>
    %s2 = arith.addi %s1, %w2 : vector<4xi32>
    %s3 = arith.addi %s2, %p : vector<4xi32>
    scf.yield %s3 : vector<4xi32>
  }
  return %sum : vector<4xi32>
}
