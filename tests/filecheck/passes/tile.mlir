// tile: each q35.linear becomes a call to a kernel function looping over weight tiles; remainders are static tiles.
// RUN: q35c opt %s -p 'materialize-weights,tile{tile-n=64}' | filecheck %s
// RUN: q35c opt %s -p 'materialize-weights,tile{tile-n=64 tile-k=64 tile-t=1}' | filecheck %s --check-prefix=KTILE
// RUN: q35c opt %s -p 'materialize-weights,tile{target=groq-lpu}' | filecheck %s --check-prefix=GROQ
// target=NAME is a convenience of q35c opt: it expands to the options the target gives the pass.
// RUN: q35c opt %s -p 'materialize-weights,tile{budget-bytes=230686720 align-n=1 max-n=320 max-k=320 weight-buffers=1 keep-int-codes=true}' | filecheck %s --check-prefix=GROQ
// After unpack-bits, real MLIR reads the tiled kernels (dynamic slices, loops, partial sums):
// RUN: q35c opt %s -p 'materialize-weights,tile{tile-n=64 tile-k=64 tile-t=1},unpack-bits' | mlir-opt > /dev/null

func.func @two(%x: tensor<2x128xf16>) -> (tensor<2x200xf16>, tensor<2x200xf16>) {
  %a = q35.weight "a" : !q35.packed<200x128, #q35.scheme<int4, g = 32>>
  %b = q35.weight "b" : !q35.packed<200x128, #q35.scheme<int4, g = 32>>
  %ya = q35.linear %x, %a : (tensor<2x128xf16>, !q35.packed<200x128, #q35.scheme<int4, g = 32>>) -> tensor<2x200xf16>
  %yb = q35.linear %x, %b : (tensor<2x128xf16>, !q35.packed<200x128, #q35.scheme<int4, g = 32>>) -> tensor<2x200xf16>
  func.return %ya, %yb : tensor<2x200xf16>, tensor<2x200xf16>
}

// Both linears share one kernel, named after its shape, scheme and activation type.
// CHECK-LABEL: func.func @two
// CHECK:       %ya = func.call @linear.2x200x128.int4_g32.f16(%x, %a.codes, %a.scale, %a.offset)
// CHECK:       %yb = func.call @linear.2x200x128.int4_g32.f16(%x, %b.codes, %b.scale, %b.offset)
// CHECK-NOT:   q35.linear
// CHECK:       func.func private @linear.2x200x128.int4_g32.f16(%x: tensor<2x128xf16>, %codes: tensor<200x16xi32> {q35.storage = "codes"}, %scale: tensor<200x4xf16> {q35.storage = "scale"}, %offset: tensor<200x4xf16> {q35.storage = "offset"}) -> tensor<2x200xf16>
// CHECK-SAME:    attributes {q35.kernel = "linear", q35.scheme = "int4:g=32", q35.tile = array<i64: 2, 64, 128>}
// Three whole 64-row tiles in a loop ...
// CHECK:       %[[Y:.*]] = tensor.empty() : tensor<2x200xf16>
// CHECK:       %[[LOOP:.*]] = scf.for %n = %c0 to %c192 step %c64 iter_args(%y_n = %[[Y]]) -> (tensor<2x200xf16>) {
// CHECK-NEXT:    %codes_tile = tensor.extract_slice %codes[%n, 0] [64, 16] [1, 1] : tensor<200x16xi32> to tensor<64x16xi32>
// CHECK-NEXT:    %scale_tile = tensor.extract_slice %scale[%n, 0] [64, 4] [1, 1] : tensor<200x4xf16> to tensor<64x4xf16>
// CHECK-NEXT:    %offset_tile = tensor.extract_slice %offset[%n, 0] [64, 4] [1, 1] : tensor<200x4xf16> to tensor<64x4xf16>
// CHECK-NEXT:    %w_tile = q35_storage.assemble %codes_tile, %scale_tile, %offset_tile : (tensor<64x16xi32>, tensor<64x4xf16>, tensor<64x4xf16>) -> !q35.packed<64x128, #q35.scheme<int4, g = 32>>
// CHECK-NEXT:    %y_tile = q35.linear %x, %w_tile : (tensor<2x128xf16>, !q35.packed<64x128, #q35.scheme<int4, g = 32>>) -> tensor<2x64xf16>
// CHECK-NEXT:    %[[INS:.*]] = tensor.insert_slice %y_tile into %y_n[0, %n] [2, 64] [1, 1] : tensor<2x64xf16> into tensor<2x200xf16>
// CHECK-NEXT:    scf.yield %[[INS]] : tensor<2x200xf16>
// CHECK-NEXT:  } {q35.tile_dim = "n"}
// ... and the 8-row remainder as a static tile.
// CHECK-NEXT:  %codes_tile_1 = tensor.extract_slice %codes[192, 0] [8, 16] [1, 1] : tensor<200x16xi32> to tensor<8x16xi32>
// CHECK:       %w_tile_1 = q35_storage.assemble {{.*}} -> !q35.packed<8x128, #q35.scheme<int4, g = 32>>
// CHECK-NEXT:  %y_tile_1 = q35.linear %x, %w_tile_1 : {{.*}} -> tensor<2x8xf16>
// CHECK-NEXT:  %[[LAST:.*]] = tensor.insert_slice %y_tile_1 into %[[LOOP]][0, 192] [2, 8] [1, 1]
// CHECK-NEXT:  func.return %[[LAST]] : tensor<2x200xf16>
// CHECK-NOT:   func.func

// Tiled along T, N and K: a token loop around a row loop around a K loop; K tiles slice codes at K/8 words and
// scales at K/32 groups, accumulate f32 partial sums in the loop-carried accumulator, and round once.
// KTILE-LABEL:     func.func private @linear.2x200x128.int4_g32.f16
// KTILE-SAME:        q35.tile = array<i64: 1, 64, 64>
// KTILE:           scf.for %t = %c0 to %c2 step %c1 iter_args
// KTILE:           scf.for %n = %c0 to %c192 step %c64 iter_args
// KTILE:           %acc_init = linalg.fill
// KTILE:           %[[ACC:.*]] = scf.for %k = %c0 to %c128 step %c64 iter_args(%acc_init_k = %acc_init) -> (tensor<1x64xf32>) {
// KTILE-NEXT:        %x_tile = tensor.extract_slice %x[%t, %k] [1, 64] [1, 1] : tensor<2x128xf16> to tensor<1x64xf16>
// KTILE:             %x_f32 = linalg.generic {{.*}} ins(%x_tile : tensor<1x64xf16>) outs(%x_f32_init : tensor<1x64xf32>)
// KTILE:             arith.extf
// KTILE:             %[[W:.*]] = arith.divui %k, %c8 : index
// KTILE-NEXT:        %codes_tile = tensor.extract_slice %codes[%n, %[[W]]] [64, 8] [1, 1] : tensor<200x16xi32> to tensor<64x8xi32>
// KTILE-NEXT:        %[[G:.*]] = arith.divui %k, %c32 : index
// KTILE-NEXT:        %scale_tile = tensor.extract_slice %scale[%n, %[[G]]] [64, 2] [1, 1] : tensor<200x4xf16> to tensor<64x2xf16>
// KTILE-NEXT:        %offset_tile = tensor.extract_slice %offset[%n, %[[G]]] [64, 2] [1, 1] : tensor<200x4xf16> to tensor<64x2xf16>
// KTILE-NEXT:        %w_tile = q35_storage.assemble {{.*}} -> !q35.packed<64x64, #q35.scheme<int4, g = 32>>
// KTILE-NEXT:        %y_tile = q35.linear %x_f32, %w_tile : (tensor<1x64xf32>, !q35.packed<64x64, #q35.scheme<int4, g = 32>>) -> tensor<1x64xf32>
// KTILE-NEXT:        %acc = linalg.generic {{.*}} ins(%y_tile : tensor<1x64xf32>) outs(%acc_init_k : tensor<1x64xf32>)
// KTILE:               arith.addf
// KTILE:             scf.yield %acc : tensor<1x64xf32>
// KTILE-NEXT:      } {q35.tile_dim = "k"}
// KTILE:           linalg.generic {{.*}} ins(%[[ACC]] : tensor<1x64xf32>) outs(%y_tile_init : tensor<1x64xf16>)
// KTILE:             arith.truncf
// KTILE:           tensor.insert_slice %{{.*}} into %{{.*}}[%t, %n] [1, 64] [1, 1] : tensor<1x64xf16> into tensor<2x200xf16>
// KTILE:           } {q35.tile_dim = "n"}

// Groq: tiles map onto the MXM's 320 x 320 arrays; a 200-row weight is one N tile, K tiles are the widest
// multiple of the scheme's granule (32 for int4:g=32) that fits 320: 128 here (all of K).
// GROQ:        q35.tile = array<i64: 2, 200, 128>
