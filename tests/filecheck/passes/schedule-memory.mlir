// schedule-memory: tiles stream from main memory into the target's tile level through two-slot rings carried by
// the tile loop (the next tile's copy is issued before the current one is used), the last iteration is peeled,
// remainders are copied once, intermediates live on chip unless they stream into their consumer (q35.fused),
// output tiles are copied back, and the peaks per level are recorded.
// RUN: q35c opt %s -p 'materialize-weights,tile{tile-n=64},unpack-bits,schedule-memory{target=h100-sxm}' | filecheck %s
// target=NAME expands to the target's memory as options; given explicitly, they compile the same:
// RUN: q35c opt %s -p 'materialize-weights,tile{tile-n=64},unpack-bits,schedule-memory{spaces=hbm,l2,smem tile-space=2 budget-bytes=228000 per=SM}' | filecheck %s
// RUN: q35c opt %s -p 'materialize-weights,tile{tile-n=64 tile-k=64},unpack-bits,schedule-memory{target=h100-sxm}' | filecheck %s --check-prefix=KTILE
// RUN: q35c opt %s -p 'materialize-weights,tile{target=groq-lpu},unpack-bits{keep-int-codes=true},schedule-memory{target=groq-lpu}' | filecheck %s --check-prefix=GROQ
// Real MLIR bufferizes the memory spaces into memrefs and lowers the result to LLVM:
// RUN: q35c opt %s -p 'materialize-weights,tile{tile-n=64 tile-k=64},unpack-bits,schedule-memory{target=h100-sxm}' | mlir-opt --one-shot-bufferize=bufferize-function-boundaries | filecheck %s --check-prefix=BUF
// RUN: q35c opt %s -p 'materialize-weights,tile{tile-n=64 tile-k=64},unpack-bits,schedule-memory{target=h100-sxm}' | mlir-opt --one-shot-bufferize=bufferize-function-boundaries --convert-linalg-to-loops --lower-affine --convert-scf-to-cf --expand-strided-metadata --lower-affine --finalize-memref-to-llvm --convert-arith-to-llvm --convert-index-to-llvm --convert-func-to-llvm --convert-cf-to-llvm --reconcile-unrealized-casts > /dev/null

func.func @proj(%x: tensor<1x128xf16>) -> tensor<1x200xf16> {
  %w = q35.weight "proj" : !q35.packed<200x128, #q35.scheme<int4, g = 32>>
  %y = q35.linear %x, %w : (tensor<1x128xf16>, !q35.packed<200x128, #q35.scheme<int4, g = 32>>) -> tensor<1x200xf16>
  func.return %y : tensor<1x200xf16>
}

// Memory spaces number the spec's levels; the peaks are per level (smem: per tile, i.e. per SM).
// CHECK:       builtin.module attributes {q35.memory_spaces = ["hbm", "l2", "smem"], q35.tile_level = "smem", q35.tile_budget_bytes = 228000 : i64, q35.peak_bytes = {hbm = {{[0-9]+}} : i64, smem = 10880 : i64}}
// CHECK:       func.func private @linear.1x200x128.int4_g32.f16
// CHECK-SAME:    q35.peak_bytes = {hbm = 400 : i64, smem = 10880 : i64}
// The activations are read whole by every tile: copied in once.
// CHECK:       %x_staged_buf = bufferization.alloc_tensor() {memory_space = 2 : i64} : tensor<1x128xf16>
// CHECK-NEXT:  %x_staged = linalg.copy {q35.src_space = 0 : i64, q35.dst_space = 2 : i64} ins(%x : tensor<1x128xf16>) outs(%x_staged_buf : tensor<1x128xf16>)
// Prologue: tile 0 into slot 0 of a two-slot ring, per storage tensor.
// CHECK:       %codes_ring = bufferization.alloc_tensor() {memory_space = 2 : i64} : tensor<2x64x16xi32>
// CHECK-NEXT:  %codes_tile = tensor.extract_slice %codes[0, 0] [64, 16] [1, 1]
// CHECK-NEXT:  %codes_slot = tensor.extract_slice %codes_ring[0, 0, 0] [1, 64, 16] [1, 1, 1] : tensor<2x64x16xi32> to tensor<64x16xi32>
// CHECK-NEXT:  %codes_copied = linalg.copy {q35.src_space = 0 : i64, q35.dst_space = 2 : i64} ins(%codes_tile : tensor<64x16xi32>) outs(%codes_slot : tensor<64x16xi32>)
// CHECK-NEXT:  %codes_ring_1 = tensor.insert_slice %codes_copied into %codes_ring[0, 0, 0] [1, 64, 16] [1, 1, 1]
// CHECK:       %scale_ring = bufferization.alloc_tensor() {memory_space = 2 : i64} : tensor<2x64x4xf16>
// CHECK:       %offset_ring = bufferization.alloc_tensor() {memory_space = 2 : i64} : tensor<2x64x4xf16>
// The loop runs over the first two of three tiles and carries the rings.
// CHECK:       %[[Y:.*]], %[[CODES:.*]], %[[SCALE:.*]], %[[OFFSET:.*]] = scf.for %n = %c0 to %c128 step %c64 iter_args(%y_n = %y, %codes_ring_2 = %codes_ring_1, %scale_ring_2 = %scale_ring_1, %offset_ring_2 = %offset_ring_1)
// CHECK-NEXT:    %[[I:.*]] = arith.divui %n, %c64 : index
// CHECK-NEXT:    %slot = arith.remui %[[I]], %c2 : index
// CHECK-NEXT:    %next_slot = arith.subi %c1, %slot : index
// CHECK-NEXT:    %next = arith.addi %n, %c64 : index
// First the copy of the next tile into the other slot ...
// CHECK-NEXT:    %codes_tile_1 = tensor.extract_slice %codes[%next, 0] [64, 16] [1, 1]
// CHECK-NEXT:    %codes_slot_1 = tensor.extract_slice %codes_ring_2[%next_slot, 0, 0] [1, 64, 16] [1, 1, 1]
// CHECK-NEXT:    %codes_copied_1 = linalg.copy {q35.src_space = 0 : i64, q35.dst_space = 2 : i64} ins(%codes_tile_1 : tensor<64x16xi32>) outs(%codes_slot_1 : tensor<64x16xi32>)
// CHECK-NEXT:    %codes_ring_3 = tensor.insert_slice %codes_copied_1 into %codes_ring_2[%next_slot, 0, 0] [1, 64, 16] [1, 1, 1]
// ... then the computation on the current slot.
// CHECK:         %codes_tile_2 = tensor.extract_slice %codes_ring_3[%slot, 0, 0] [1, 64, 16] [1, 1, 1] : tensor<2x64x16xi32> to tensor<64x16xi32>
// Decoded codes and dequantized weights stream into the matmul: no buffer.
// CHECK:         %codes_init = tensor.empty() : tensor<64x{{[0-9x]+}}xi8>
// CHECK-NEXT:    linalg.generic {{.*}} ins(%codes_tile_2 : tensor<64x16xi32>) outs(%codes_init : tensor<64x{{[0-9x]+}}xi8>) attrs = {q35.kernel = "unpack", q35.fused}
// CHECK:         %w_init = tensor.empty() : tensor<64x{{[0-9x]+}}xf32>
// CHECK:         attrs = {q35.fused}
// The accumulator and the rounded output tile live in shared memory; the output is copied back.
// CHECK:         %acc_empty = bufferization.alloc_tensor() {memory_space = 2 : i64} : tensor<1x64xf32>
// CHECK:         ins(%x_staged, %w : tensor<1x128xf16>, tensor<64x128xf32>)
// CHECK:         %y_init = bufferization.alloc_tensor() {memory_space = 2 : i64} : tensor<1x64xf16>
// CHECK:         %y_slice = tensor.extract_slice %y_n[0, %n] [1, 64] [1, 1]
// CHECK-NEXT:    %y_out = linalg.copy {q35.src_space = 2 : i64, q35.dst_space = 0 : i64} ins(%y_1 : tensor<1x64xf16>) outs(%y_slice : tensor<1x64xf16>)
// CHECK-NEXT:    %[[INS:.*]] = tensor.insert_slice %y_out into %y_n[0, %n] [1, 64] [1, 1]
// CHECK-NEXT:    scf.yield %[[INS]], %codes_ring_3, %scale_ring_3, %offset_ring_3
// CHECK-NEXT:  } {q35.tile_dim = "n"}
// The peeled third tile computes on slot 0 ((3 - 1) mod 2) and copies nothing more in.
// CHECK-NEXT:  %codes_tile_3 = tensor.extract_slice %[[CODES]][0, 0, 0] [1, 64, 16] [1, 1, 1]
// CHECK-NOT:   linalg.copy {q35.src_space = 0
// CHECK:       tensor.insert_slice %{{.*}} into %[[Y]][0, 128] [1, 64] [1, 1]
// The 8-row remainder is copied in once.
// CHECK:       %codes_tile_4 = tensor.extract_slice %codes[192, 0] [8, 16] [1, 1]
// CHECK-NEXT:  %codes_tile_staged_buf = bufferization.alloc_tensor() {memory_space = 2 : i64} : tensor<8x16xi32>
// CHECK-NEXT:  %codes_tile_staged = linalg.copy {q35.src_space = 0 : i64, q35.dst_space = 2 : i64} ins(%codes_tile_4 : tensor<8x16xi32>) outs(%codes_tile_staged_buf : tensor<8x16xi32>)

// With K tiles, the rings are carried by the K loop (innermost), the activations stream too, and the row loop
// carries only the output.
// KTILE:       scf.for %n = %c0 to %c192 step %c64 iter_args(%y_n = %y) -> (tensor<1x200xf16>) {
// KTILE:         %x_ring = bufferization.alloc_tensor() {memory_space = 2 : i64} : tensor<2x1x64xf16>
// KTILE:         %codes_ring = bufferization.alloc_tensor() {memory_space = 2 : i64} : tensor<2x64x8xi32>
// KTILE:         scf.for %k = %c0 to %c64 step %c64 iter_args(%acc_init_k = %acc_init, %x_ring_2 = %x_ring_1, %codes_ring_2 = %codes_ring_1, %scale_ring_2 = %scale_ring_1, %offset_ring_2 = %offset_ring_1)
// KTILE:           %x_tile_1 = tensor.extract_slice %x[0, %next] [1, 64] [1, 1]
// KTILE:           %[[W:.*]] = arith.divui %next, %c8 : index
// KTILE-NEXT:      %codes_tile_1 = tensor.extract_slice %codes[%n, %[[W]]] [64, 8] [1, 1]
// KTILE:         } {q35.tile_dim = "k"}
// KTILE:       } {q35.tile_dim = "n"}

// Groq: weights are resident in SRAM (space 0, the only level); nothing is copied, the peak counts them.
// GROQ:        builtin.module attributes {q35.memory_spaces = ["sram"], q35.tile_level = "sram", q35.tile_budget_bytes = 230686720 : i64, q35.peak_bytes = {sram = {{[0-9]+}} : i64}}
// GROQ-NOT:    linalg.copy
// GROQ-NOT:    bufferization.alloc_tensor
// GROQ:        q35.fused

// BUF:         memref.alloc() {alignment = 64 : i64} : memref<2x64x8xi32, 2>
// BUF:         linalg.copy {q35.dst_space = 2 : i64, q35.src_space = 0 : i64} ins(%{{.*}} : memref<64x8xi32, strided<[?, ?], offset: ?>>) outs(%{{.*}} : memref<64x8xi32, strided<[8, 1]>, 2>)
