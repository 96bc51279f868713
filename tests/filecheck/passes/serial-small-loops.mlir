// serial-small-loops: parallel loop nests whose static work (trip counts x body operations) is under min_work
// become nested scf.for loops; bigger ones, those of unknown bounds and parallel loops nested in a kept one
// are kept / serialized as the host's OpenMP lowering wants (one region per big loop nest).
// RUN: mlir-opt %s --mlir-print-op-generic -o %t.mlir
// RUN: q35c opt %t.mlir -p 'serial-small-loops' | mlir-opt | filecheck %s
// RUN: q35c opt %t.mlir -p 'serial-small-loops{min_work=100}' | mlir-opt | filecheck %s --check-prefix=LOW
// RUN: q35c opt %t.mlir -p 'serial-small-loops' | mlir-opt --convert-scf-to-openmp | filecheck %s --check-prefix=OMP

// 64 x 2 x 3 operations: under the default threshold, in sequence.
// CHECK-LABEL: func.func @small
// CHECK-NOT:     scf.parallel
// CHECK:         scf.for %[[I:.*]] = %{{.*}} to %{{.*}} step %{{.*}} {
// CHECK-NEXT:      scf.for %[[J:.*]] = %{{.*}} to %{{.*}} step %{{.*}} {
// CHECK-NEXT:        %[[V:.*]] = memref.load %{{.*}}[%[[I]], %[[J]]]
// CHECK-NEXT:        memref.store %[[V]], %{{.*}}[%[[I]], %[[J]]]
// CHECK-NEXT:      }
// CHECK-NEXT:    }
// With min-work 100, 384 operations are enough for a region.
// LOW-LABEL: func.func @small
// LOW:         scf.parallel
func.func @small(%x: memref<64x2xf32>, %y: memref<64x2xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %c64 = arith.constant 64 : index
  scf.parallel (%i, %j) = (%c0, %c0) to (%c64, %c2) step (%c1, %c1) {
    %v = memref.load %x[%i, %j] : memref<64x2xf32>
    memref.store %v, %y[%i, %j] : memref<64x2xf32>
    scf.reduce
  }
  func.return
}

// 4096 rows x an inner loop of 64 x 3 operations: one region, the nested scf.parallel runs in sequence inside it.
// CHECK-LABEL: func.func @rows
// CHECK:         scf.parallel (%[[R:.*]]) =
// CHECK:           scf.for
// CHECK:           scf.for %[[C:.*]] = %{{.*}} to %{{.*}} step %{{.*}} {
// CHECK-NEXT:        memref.store %{{.*}}, %{{.*}}[%[[R]], %[[C]]]
// CHECK-NEXT:      }
// CHECK:           scf.reduce
// OMP-LABEL: func.func @rows
// OMP-COUNT-1:   omp.parallel
// OMP-NOT:       omp.parallel
// OMP-LABEL: func.func @dynamic
func.func @rows(%x: memref<4096x64xf32>, %y: memref<4096x4xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  %c64 = arith.constant 64 : index
  %c4096 = arith.constant 4096 : index
  %zero = arith.constant 0.0 : f32
  scf.parallel (%r) = (%c0) to (%c4096) step (%c1) {
    %s = scf.for %k = %c0 to %c64 step %c1 iter_args(%acc = %zero) -> (f32) {
      %v = memref.load %x[%r, %k] : memref<4096x64xf32>
      %n = arith.addf %acc, %v : f32
      scf.yield %n : f32
    }
    scf.parallel (%c) = (%c0) to (%c4) step (%c1) {
      memref.store %s, %y[%r, %c] : memref<4096x4xf32>
      scf.reduce
    }
    scf.reduce
  }
  func.return
}

// Bounds known only at run time: the work is unknown, the region stays.
// CHECK-LABEL: func.func @dynamic
// CHECK:         scf.parallel
func.func @dynamic(%x: memref<?xf32>, %n: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %one = arith.constant 1.0 : f32
  scf.parallel (%i) = (%c0) to (%n) step (%c1) {
    memref.store %one, %x[%i] : memref<?xf32>
    scf.reduce
  }
  func.return
}
