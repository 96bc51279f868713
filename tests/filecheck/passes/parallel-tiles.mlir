// parallel-tiles: a kernel's loops become one parallel loop (one OpenMP region): tile buffers are forwarded
// (results stored in place, a zero-filled initial value read as zero), loops producing a row's scales run inside
// that row's iteration into a row buffer of its own, the tile loop and its rows become one nest, independent
// sibling loops one loop; loops whose iterations or siblings depend on each other are left alone.
// RUN: mlir-opt %s --mlir-print-op-generic -o %t.mlir
// (min_body=4: these loops run fewer operations per iteration than the default asks for a concatenation.)
// RUN: q35c opt %t.mlir -p 'parallel-tiles{min_body=4}' | mlir-opt | filecheck %s
// RUN: q35c opt %t.mlir -p 'parallel-tiles{min_body=4}' | mlir-opt --convert-scf-to-openmp | filecheck %s --check-prefix=OMP
// RUN: q35c opt %t.mlir -p 'parallel-tiles' | mlir-opt | filecheck %s --check-prefix=SMALL

// Two tiles of 4 rows in a loop and a last tile of 2 rows: one loop over the 10 rows.
// CHECK-LABEL: func.func @tiles
// CHECK:         %[[ZERO:.*]] = arith.constant 0.000000e+00 : f32
// CHECK-NOT:     memref.alloc
// CHECK-NOT:     memref.copy
// CHECK:         scf.parallel (%[[U:.*]]) = (%{{.*}}) to (%{{.*}}) step
// CHECK:           %[[FIRST:.*]] = arith.cmpi ult, %[[U]], %{{.*}} : index
// CHECK-NEXT:      scf.if %[[FIRST]] {
// CHECK:             %[[T:.*]] = arith.muli %{{.*}}, %{{.*}} : index
// CHECK:             %[[Y:.*]] = memref.subview %{{.*}}[0, %[[T]]] [1, 4] [1, 1]
// CHECK:             scf.for {{.*}} iter_args(%{{.*}} = %[[ZERO]])
// CHECK:             memref.store %{{.*}}, %[[Y]][%{{.*}}, %{{.*}}]
// CHECK:           } else {
// CHECK:             memref.store %{{.*}}, %{{.*}}[%{{.*}}, %{{.*}}] : memref<1x2xf32, strided<[10, 1], offset: 8>>
// CHECK:           }
// CHECK-NOT:     scf.parallel
// CHECK:         return
// With the default min_body: a loop over the two tiles and the last tile's loop.
// SMALL-LABEL: func.func @tiles
// SMALL-COUNT-2: scf.parallel
// SMALL-NOT:     scf.parallel
// SMALL-LABEL: func.func @scales
// OMP-LABEL: func.func @tiles
// OMP-COUNT-1:   omp.parallel
// OMP-NOT:       omp.parallel
// OMP-LABEL: func.func @scales
func.func @tiles(%w: memref<10x64xf32>, %y: memref<1x10xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %c4 = arith.constant 4 : index
  %c8 = arith.constant 8 : index
  %c64 = arith.constant 64 : index
  %zero = arith.constant 0.0 : f32
  scf.for %t = %c0 to %c8 step %c4 {
    %wt = memref.subview %w[%t, 0] [4, 64] [1, 1] : memref<10x64xf32> to memref<4x64xf32, strided<[64, 1], offset: ?>>
    %acc = memref.alloc() : memref<1x4xf32>
    scf.for %i = %c0 to %c1 step %c1 {
      scf.for %j = %c0 to %c4 step %c1 {
        memref.store %zero, %acc[%i, %j] : memref<1x4xf32>
      }
    }
    %tile = memref.alloc() : memref<1x4xf32>
    scf.parallel (%i, %j) = (%c0, %c0) to (%c1, %c4) step (%c1, %c1) {
      %init = memref.load %acc[%i, %j] : memref<1x4xf32>
      %sum = scf.for %k = %c0 to %c64 step %c1 iter_args(%s = %init) -> (f32) {
        %v = memref.load %wt[%j, %k] : memref<4x64xf32, strided<[64, 1], offset: ?>>
        %n = arith.addf %s, %v : f32
        scf.yield %n : f32
      }
      %total = arith.addf %sum, %zero : f32
      memref.store %total, %acc[%i, %j] : memref<1x4xf32>
      memref.store %total, %tile[%i, %j] : memref<1x4xf32>
      scf.reduce
    }
    %out = memref.subview %y[0, %t] [1, 4] [1, 1] : memref<1x10xf32> to memref<1x4xf32, strided<[10, 1], offset: ?>>
    memref.copy %tile, %out : memref<1x4xf32> to memref<1x4xf32, strided<[10, 1], offset: ?>>
    memref.dealloc %acc : memref<1x4xf32>
    memref.dealloc %tile : memref<1x4xf32>
  }
  %wl = memref.subview %w[8, 0] [2, 64] [1, 1] : memref<10x64xf32> to memref<2x64xf32, strided<[64, 1], offset: 512>>
  %last = memref.alloc() : memref<1x2xf32>
  scf.parallel (%i, %j) = (%c0, %c0) to (%c1, %c2) step (%c1, %c1) {
    %sum = scf.for %k = %c0 to %c64 step %c1 iter_args(%s = %zero) -> (f32) {
      %v = memref.load %wl[%j, %k] : memref<2x64xf32, strided<[64, 1], offset: 512>>
      %n = arith.addf %s, %v : f32
      scf.yield %n : f32
    }
    memref.store %sum, %last[%i, %j] : memref<1x2xf32>
    scf.reduce
  }
  %out = memref.subview %y[0, 8] [1, 2] [1, 1] : memref<1x10xf32> to memref<1x2xf32, strided<[10, 1], offset: 8>>
  memref.copy %last, %out : memref<1x2xf32> to memref<1x2xf32, strided<[10, 1], offset: 8>>
  memref.dealloc %last : memref<1x2xf32>
  func.return
}

// The rows' scales, unpacked by a loop of their own (16 rows x 4 groups), are unpacked inside each row's iteration.
// CHECK-LABEL: func.func @scales
// CHECK-NOT:     memref.alloc
// CHECK:         scf.parallel (%{{.*}}, %[[R:.*]]) = (%{{.*}}, %{{.*}}) to (%{{.*}}, %{{.*}}) step
// CHECK-NEXT:      %[[Z:.*]] = arith.constant 0 : index
// CHECK-NEXT:      %[[ROW:.*]] = memref.alloca() {alignment = 64 : i64} : memref<1x4xf32>
// CHECK-NEXT:      scf.for %[[G:.*]] = %{{.*}} to %{{.*}} step %{{.*}} {
// CHECK-NEXT:        %[[S:.*]] = memref.load %{{.*}}[%[[R]], %[[G]]] : memref<16x4xf32>
// CHECK-NEXT:        memref.store %[[S]], %[[ROW]][%[[Z]], %[[G]]] : memref<1x4xf32>
// CHECK-NEXT:      }
// CHECK:           memref.load %[[ROW]][%[[Z]], %{{.*}}] : memref<1x4xf32>
// CHECK-NOT:     scf.parallel
// CHECK:         return
// OMP-COUNT-1:   omp.parallel
// OMP-NOT:       omp.parallel
// OMP-LABEL: func.func @dependent
func.func @scales(%packed: memref<16x4xf32>, %x: memref<4xf32>, %y: memref<1x16xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  %c16 = arith.constant 16 : index
  %zero = arith.constant 0.0 : f32
  %scale = memref.alloc() : memref<16x4xf32>
  scf.parallel (%r, %g) = (%c0, %c0) to (%c16, %c4) step (%c1, %c1) {
    %s = memref.load %packed[%r, %g] : memref<16x4xf32>
    memref.store %s, %scale[%r, %g] : memref<16x4xf32>
    scf.reduce
  }
  scf.parallel (%i, %r) = (%c0, %c0) to (%c1, %c16) step (%c1, %c1) {
    %sum = scf.for %g = %c0 to %c4 step %c1 iter_args(%acc = %zero) -> (f32) {
      %s = memref.load %scale[%r, %g] : memref<16x4xf32>
      %v = memref.load %x[%g] : memref<4xf32>
      %p = arith.mulf %s, %v : f32
      %n = arith.addf %acc, %p : f32
      scf.yield %n : f32
    }
    memref.store %sum, %y[%i, %r] : memref<1x16xf32>
    scf.reduce
  }
  memref.dealloc %scale : memref<16x4xf32>
  func.return
}

// Left alone: a tile reads the next tile's output (iterations depend on each other), a row reads another row's
// scales (not fusable), and a loop reads what its sibling wrote (not concatenated).
// CHECK-LABEL: func.func @dependent
// CHECK:         scf.for
// CHECK:           scf.parallel
// CHECK:         memref.alloc() : memref<16x4xf32>
// CHECK:         scf.parallel
// CHECK:         scf.parallel
// CHECK:         scf.parallel
func.func @dependent(%w: memref<8x64xf32>, %y: memref<1x9xf32>, %packed: memref<16x4xf32>, %z: memref<1x16xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  %c8 = arith.constant 8 : index
  %c16 = arith.constant 16 : index
  %c64 = arith.constant 64 : index
  %zero = arith.constant 0.0 : f32
  scf.for %t = %c0 to %c8 step %c4 {
    %next = arith.addi %t, %c1 : index
    %ahead = memref.subview %y[0, %next] [1, 4] [1, 1] : memref<1x9xf32> to memref<1x4xf32, strided<[9, 1], offset: ?>>
    %out = memref.subview %y[0, %t] [1, 4] [1, 1] : memref<1x9xf32> to memref<1x4xf32, strided<[9, 1], offset: ?>>
    scf.parallel (%i, %j) = (%c0, %c0) to (%c1, %c4) step (%c1, %c1) {
      %prev = memref.load %ahead[%i, %j] : memref<1x4xf32, strided<[9, 1], offset: ?>>
      %v = memref.load %w[%j, %c0] : memref<8x64xf32>
      %n = arith.addf %prev, %v : f32
      memref.store %n, %out[%i, %j] : memref<1x4xf32, strided<[9, 1], offset: ?>>
      scf.reduce
    }
  }
  %scale = memref.alloc() : memref<16x4xf32>
  scf.parallel (%r, %g) = (%c0, %c0) to (%c16, %c4) step (%c1, %c1) {
    %s = memref.load %packed[%r, %g] : memref<16x4xf32>
    memref.store %s, %scale[%r, %g] : memref<16x4xf32>
    scf.reduce
  }
  scf.parallel (%i, %r) = (%c0, %c0) to (%c1, %c16) step (%c1, %c1) {
    %other = arith.subi %c16, %r : index
    %row = arith.subi %other, %c1 : index
    %sum = scf.for %g = %c0 to %c4 step %c1 iter_args(%acc = %zero) -> (f32) {
      %s = memref.load %scale[%row, %g] : memref<16x4xf32>
      %n = arith.addf %acc, %s : f32
      scf.yield %n : f32
    }
    memref.store %sum, %z[%i, %r] : memref<1x16xf32>
    scf.reduce
  }
  scf.parallel (%i, %r) = (%c0, %c0) to (%c1, %c16) step (%c1, %c1) {
    %sum = scf.for %g = %c0 to %c64 step %c1 iter_args(%acc = %zero) -> (f32) {
      %v = memref.load %z[%i, %r] : memref<1x16xf32>
      %n = arith.addf %acc, %v : f32
      scf.yield %n : f32
    }
    memref.store %sum, %packed[%r, %c0] : memref<16x4xf32>
    scf.reduce
  }
  memref.dealloc %scale : memref<16x4xf32>
  func.return
}
