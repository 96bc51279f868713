// unpack-bits: packed weights -> integer codes (shifts, masks, sign extension) -> dequantized f32 -> matmul.
// RUN: q35c opt %s -p unpack-bits | filecheck %s
// RUN: q35c opt %s -p 'unpack-bits{keep-int-codes=true}' | filecheck %s --check-prefix=INT
// Real MLIR reads the result (nothing of q35 is left):
// RUN: q35c opt %s -p unpack-bits | mlir-opt > /dev/null
// RUN: q35c opt %s -p 'unpack-bits{keep-int-codes=true}' | mlir-opt > /dev/null

// q3p5 dense: one generic over (n, pair p, slot). Pair p sits at stream bits [7p, 7p+7): it reads the words
// holding its first and last bit (different when the pair straddles a word boundary) and joins them once per
// pair, c = (lo >> 7p mod 32) | (hi << min(32 - 7p mod 32, 31)); then one shift pair per code extracts and
// sign-extends it: n1 = (c << 25) >>s 28, and for the linear the odd slot's step, 2 n2 = (c << 29) >>s 28.
// CHECK-LABEL: func.func @q3p5_dense
// CHECK:       %codes_init = tensor.empty() : tensor<4x32x2xi8>
// CHECK-NEXT:  %steps_grid = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, ((d1 * 7) floordiv 32))>, affine_map<(d0, d1, d2) -> (d0, (((d1 * 7) + 6) floordiv 32))>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel"]} ins(%words, %words : tensor<4x7xi32>, tensor<4x7xi32>) outs(%codes_init : tensor<4x32x2xi8>) attrs = {q35.kernel = "unpack"}
// CHECK-NEXT:  ^bb0(%lo: i32, %hi: i32, %{{.*}}: i8):
// CHECK-NEXT:    %[[PIDX:.*]] = linalg.index 1 : index
// CHECK-NEXT:    %[[P:.*]] = arith.index_cast %[[PIDX]] : index to i32
// CHECK-NEXT:    %[[C7:.*]] = arith.constant 7 : i32
// CHECK-NEXT:    %[[P7:.*]] = arith.muli %[[P]], %[[C7]] : i32
// CHECK-NEXT:    %[[C31:.*]] = arith.constant 31 : i32
// CHECK-NEXT:    %bit = arith.andi %[[P7]], %[[C31]] : i32
// CHECK-NEXT:    %[[C32:.*]] = arith.constant 32 : i32
// CHECK-NEXT:    %[[REST:.*]] = arith.subi %[[C32]], %bit : i32
// CHECK-NEXT:    %wrap = arith.minui %[[REST]], %[[C31]] : i32
// CHECK-NEXT:    %[[LOW:.*]] = arith.shrui %lo, %bit : i32
// CHECK-NEXT:    %[[HIGH:.*]] = arith.shli %hi, %wrap : i32
// CHECK-NEXT:    %pair = arith.ori %[[LOW]], %[[HIGH]] : i32
// CHECK-NEXT:    %[[SIDX:.*]] = linalg.index 2 : index
// CHECK-NEXT:    %[[SLOT:.*]] = arith.index_cast %[[SIDX]] : index to i32
// CHECK-NEXT:    %[[C2:.*]] = arith.constant 2 : i32
// CHECK-NEXT:    %[[S4:.*]] = arith.shli %[[SLOT]], %[[C2]] : i32
// CHECK-NEXT:    %[[C25:.*]] = arith.constant 25 : i32
// CHECK-NEXT:    %left = arith.addi %[[S4]], %[[C25]] : i32
// CHECK-NEXT:    %[[UP:.*]] = arith.shli %pair, %left : i32
// CHECK-NEXT:    %[[C28:.*]] = arith.constant 28 : i32
// CHECK-NEXT:    %[[E:.*]] = arith.shrsi %[[UP]], %[[C28]] : i32
// CHECK-NEXT:    %[[E8:.*]] = arith.trunci %[[E]] : i32 to i8
// CHECK-NEXT:    linalg.yield %[[E8]] : i8
// CHECK:       %steps = tensor.collapse_shape %steps_grid {{\[\[}}0 : i64], [1 : i64, 2 : i64]] : tensor<4x32x2xi8> into tensor<4x64xi8>
// Dequantization over (n, group j, i): one conversion and one fused multiply-add per weight.
// CHECK:       %w_grid = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, ((d1 * 32) + d2))>, affine_map<(d0, d1, d2) -> (d0, d1)>, affine_map<(d0, d1, d2) -> (d0, d1)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel"]} ins(%steps, %scale, %offset : tensor<4x64xi8>, tensor<4x2xf16>, tensor<4x2xf16>) outs(%{{.*}} : tensor<4x2x32xf32>)
// CHECK-NEXT:  ^bb0(%e: i8, %scale_1: f16, %offset_1: f16, %{{.*}}: f32):
// CHECK-NEXT:    %[[EF:.*]] = arith.sitofp %e : i8 to f32
// CHECK-NEXT:    %[[S:.*]] = arith.extf %scale_1 : f16 to f32
// CHECK-NEXT:    %[[O:.*]] = arith.extf %offset_1 : f16 to f32
// CHECK-NEXT:    %[[W:.*]] = math.fma %[[EF]], %[[S]], %[[O]] : f32
// CHECK-NEXT:    linalg.yield %[[W]] : f32
// CHECK:       %w = tensor.collapse_shape %w_grid {{\[\[}}0 : i64], [1 : i64, 2 : i64]] : tensor<4x2x32xf32> into tensor<4x64xf32>
// CHECK:       %acc = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d2)>, affine_map<(d0, d1, d2) -> (d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1)>], iterator_types = ["parallel", "parallel", "reduction"]} ins(%x, %w : tensor<1x64xf16>, tensor<4x64xf32>)
// CHECK:       %y = linalg.generic
// CHECK:         arith.truncf %{{.*}} : f32 to f16
// CHECK:       func.return %y : tensor<1x4xf16>
// With keep-int-codes the matmul runs on the codes (the odd slot's doubled already), then scale and offset apply
// per group.
// INT-LABEL:   func.func @q3p5_dense
// INT:         %x_groups = tensor.expand_shape %x {{\[\[}}0 : i64], [1 : i64, 2 : i64]] output_shape [1, 2, 32] : tensor<1x64xf16> into tensor<1x2x32xf16>
// INT:         %steps_grid = linalg.generic
// INT:         %code_groups = tensor.expand_shape %steps
// INT:         %p = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d2, d3)>, affine_map<(d0, d1, d2, d3) -> (d1, d2, d3)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%x_groups, %code_groups : tensor<1x2x32xf16>, tensor<4x2x32xi8>) outs(%{{.*}} : tensor<1x4x2xf32>)
// INT-NEXT:    ^bb0(%x_1: f16, %e: i8, %p_1: f32):
// INT-NEXT:      %[[X:.*]] = arith.extf %x_1 : f16 to f32
// INT-NEXT:      %[[EF:.*]] = arith.sitofp %e : i8 to f32
// INT-NEXT:      %[[XE:.*]] = arith.mulf %[[X]], %[[EF]] : f32
// INT-NEXT:      %[[P:.*]] = arith.addf %p_1, %[[XE]] : f32
// INT-NEXT:      linalg.yield %[[P]] : f32
// INT:         %xsum = linalg.generic
// INT:         %acc = linalg.generic {{.*}} ins(%p, %scale, %offset, %xsum : tensor<1x4x2xf32>, tensor<4x2xf16>, tensor<4x2xf16>, tensor<1x2xf32>)
// INT-NOT:     q35
// INT:         func.return %y : tensor<1x4xf16>
func.func @q3p5_dense(%x: tensor<1x64xf16>, %words: tensor<4x7xi32>, %scale: tensor<4x2xf16>, %offset: tensor<4x2xf16>) -> tensor<1x4xf16> {
  %w = q35_storage.assemble %words, %scale, %offset : (tensor<4x7xi32>, tensor<4x2xf16>, tensor<4x2xf16>) -> !q35.packed<4x64, #q35.scheme<q3p5, g = 32, container = dense>>
  %y = q35.linear %x, %w : (tensor<1x64xf16>, !q35.packed<4x64, #q35.scheme<q3p5, g = 32, container = dense>>) -> tensor<1x4xf16>
  func.return %y : tensor<1x4xf16>
}

// q4_0: one generic over (n, block b, byte i, half h), block b being 18 bytes: a little-endian f16 scale then 16
// bytes; byte i holds element 32b + i in its low nibble and 32b + 16 + i in its high nibble, each as code + 8.
// xor 0x88 (once per byte: h is the innermost loop) turns both into 4-bit two's complement; a shift pair per
// code extracts and sign-extends it. The output map puts h before i; the scale is rebuilt from its bytes.
// CHECK-LABEL: func.func @q4_0
// CHECK:       %codes_grid = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, (((d1 * 18) + 2) + d2))>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d3, d2)>], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%blocks : tensor<4x36xi8>) outs(%{{.*}} : tensor<4x2x2x16xi8>) attrs = {q35.kernel = "unpack"}
// CHECK-NEXT:  ^bb0(%byte: i8, %{{.*}}: i8):
// CHECK-NEXT:    %[[B:.*]] = arith.extui %byte : i8 to i32
// CHECK-NEXT:    %[[C136:.*]] = arith.constant 136 : i32
// CHECK-NEXT:    %flipped = arith.xori %[[B]], %[[C136]] : i32
// CHECK-NEXT:    %[[C28:.*]] = arith.constant 28 : i32
// CHECK-NEXT:    %[[HIDX:.*]] = linalg.index 3 : index
// CHECK-NEXT:    %[[H:.*]] = arith.index_cast %[[HIDX]] : index to i32
// CHECK-NEXT:    %[[C2:.*]] = arith.constant 2 : i32
// CHECK-NEXT:    %[[H4:.*]] = arith.shli %[[H]], %[[C2]] : i32
// CHECK-NEXT:    %left = arith.subi %[[C28]], %[[H4]] : i32
// CHECK-NEXT:    %[[UP:.*]] = arith.shli %flipped, %left : i32
// CHECK-NEXT:    %[[CODE:.*]] = arith.shrsi %[[UP]], %[[C28]] : i32
// CHECK-NEXT:    %[[CODE8:.*]] = arith.trunci %[[CODE]] : i32 to i8
// CHECK-NEXT:    linalg.yield %[[CODE8]] : i8
// CHECK:       %codes = tensor.collapse_shape %codes_grid {{\[\[}}0 : i64], [1 : i64, 2 : i64, 3 : i64]] : tensor<4x2x2x16xi8> into tensor<4x64xi8>
// CHECK:       %scale = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, (d1 * 18))>, affine_map<(d0, d1) -> (d0, ((d1 * 18) + 1))>, affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]} ins(%blocks, %blocks : tensor<4x36xi8>, tensor<4x36xi8>) outs(%{{.*}} : tensor<4x2xf16>)
// CHECK-NEXT:  ^bb0(%scale_lo: i8, %scale_hi: i8, %{{.*}}: f16):
// CHECK-NEXT:    %[[LO:.*]] = arith.extui %scale_lo : i8 to i16
// CHECK-NEXT:    %[[HI:.*]] = arith.extui %scale_hi : i8 to i16
// CHECK-NEXT:    %[[C8_16:.*]] = arith.constant 8 : i16
// CHECK-NEXT:    %[[HI_UP:.*]] = arith.shli %[[HI]], %[[C8_16]] : i16
// CHECK-NEXT:    %[[BITS:.*]] = arith.ori %[[LO]], %[[HI_UP]] : i16
// CHECK-NEXT:    %[[D:.*]] = arith.bitcast %[[BITS]] : i16 to f16
// CHECK-NEXT:    linalg.yield %[[D]] : f16
// Symmetric: w = scale * code, no offset; f32 activations need no final truncation.
// CHECK:       %w_grid = linalg.generic {{.*}} ins(%codes, %scale : tensor<4x64xi8>, tensor<4x2xf16>)
// CHECK:         %[[EF:.*]] = arith.sitofp %e : i8 to f32
// CHECK-NEXT:    %[[S:.*]] = arith.extf %scale_1 : f16 to f32
// CHECK-NEXT:    %[[W:.*]] = arith.mulf %[[S]], %[[EF]] : f32
// CHECK:       %acc = linalg.generic
// CHECK-NOT:   arith.truncf
// CHECK:       func.return %acc : tensor<1x4xf32>
// INT-LABEL:   func.func @q4_0
// INT:         %acc = linalg.generic {{.*}} ins(%p, %scale : tensor<1x4x2xf32>, tensor<4x2xf16>)
// INT:         func.return %acc : tensor<1x4xf32>
func.func @q4_0(%x: tensor<1x64xf32>, %blocks: tensor<4x36xi8>) -> tensor<1x4xf32> {
  %w = q35_storage.assemble %blocks : (tensor<4x36xi8>) -> !q35.packed<4x64, #q35.scheme<q4_0>>
  %y = q35.linear %x, %w : (tensor<1x64xf32>, !q35.packed<4x64, #q35.scheme<q4_0>>) -> tensor<1x4xf32>
  func.return %y : tensor<1x4xf32>
}

// int4: one generic over (n, word, i), code i of a word in bits [4i, 4i+4): (word << (28 - 4i)) >>s 28.
// CHECK-LABEL: func.func @int4_codes
// CHECK:       %codes_grid = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel"]} ins(%words : tensor<4x8xi32>) outs(%{{.*}} : tensor<4x8x8xi8>) attrs = {q35.kernel = "unpack"}
// CHECK:         %left = arith.subi %[[C28:.*]], %{{.*}} : i32
// CHECK-NEXT:    %[[UP:.*]] = arith.shli %word, %left : i32
// CHECK-NEXT:    %[[CODE:.*]] = arith.shrsi %[[UP]], %[[C28]] : i32
// CHECK-NEXT:    %[[CODE8:.*]] = arith.trunci %[[CODE]] : i32 to i8
// CHECK-NEXT:    linalg.yield %[[CODE8]] : i8
// CHECK:       %codes = tensor.collapse_shape %codes_grid {{\[\[}}0 : i64], [1 : i64, 2 : i64]] : tensor<4x8x8xi8> into tensor<4x64xi8>
// CHECK:       func.return %codes : tensor<4x64xi8>
func.func @int4_codes(%words: tensor<4x8xi32>, %scale: tensor<4x2xf16>, %offset: tensor<4x2xf16>) -> tensor<4x64xi8> {
  %w = q35_storage.assemble %words, %scale, %offset : (tensor<4x8xi32>, tensor<4x2xf16>, tensor<4x2xf16>) -> !q35.packed<4x64, #q35.scheme<int4, g = 32>>
  %c = q35_storage.unpack %w : !q35.packed<4x64, #q35.scheme<int4, g = 32>> -> tensor<4x64xi8>
  func.return %c : tensor<4x64xi8>
}

// q3p5 byte: one pair code per byte; the codes themselves (q35_storage.unpack): n2 = (c << 29) >>s 29.
// CHECK-LABEL: func.func @q3p5_byte_codes
// CHECK:       %codes_grid = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel"]} ins(%pairs : tensor<4x32xi8>)
// CHECK-NEXT:  ^bb0(%pair_byte: i8, %{{.*}}: i8):
// CHECK-NEXT:    %pair = arith.extui %pair_byte : i8 to i32
// CHECK:         %[[UP:.*]] = arith.shli %pair, %left : i32
// CHECK:         %right = arith.addi %{{.*}}, %{{.*}} : i32
// CHECK-NEXT:    %[[CODE:.*]] = arith.shrsi %[[UP]], %right : i32
// CHECK-NOT:     arith.select
// CHECK:       %codes = tensor.collapse_shape %codes_grid
func.func @q3p5_byte_codes(%pairs: tensor<4x32xi8>, %scale: tensor<4x1xf16>, %offset: tensor<4x1xf16>) -> tensor<4x64xi8> {
  %w = q35_storage.assemble %pairs, %scale, %offset : (tensor<4x32xi8>, tensor<4x1xf16>, tensor<4x1xf16>) -> !q35.packed<4x64, #q35.scheme<q3p5, g = 64, container = byte>>
  %c = q35_storage.unpack %w : !q35.packed<4x64, #q35.scheme<q3p5, g = 64, container = byte>> -> tensor<4x64xi8>
  func.return %c : tensor<4x64xi8>
}

// q8_0: the 32 int8 codes follow the 2-byte scale of each 34-byte block.
// CHECK-LABEL: func.func @q8_0_codes
// CHECK:       %codes_grid = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, (((d1 * 34) + 2) + d2))>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel"]} ins(%blocks : tensor<4x68xi8>)
// CHECK-NEXT:  ^bb0(%byte: i8, %{{.*}}: i8):
// CHECK-NEXT:    linalg.yield %byte : i8
func.func @q8_0_codes(%blocks: tensor<4x68xi8>) -> tensor<4x64xi8> {
  %w = q35_storage.assemble %blocks : (tensor<4x68xi8>) -> !q35.packed<4x64, #q35.scheme<q8_0>>
  %c = q35_storage.unpack %w : !q35.packed<4x64, #q35.scheme<q8_0>> -> tensor<4x64xi8>
  func.return %c : tensor<4x64xi8>
}

// int8 stores its codes as they are: no unpacking generic, one scale per row (g = K).
// CHECK-LABEL: func.func @int8
// CHECK-NOT:   q35.kernel = "unpack"
// CHECK:       %w_grid = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, ((d1 * 64) + d2))>, affine_map<(d0, d1, d2) -> (d0, d1)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>], {{.*}} ins(%codes, %scale : tensor<4x64xi8>, tensor<4x1xf16>)
func.func @int8(%x: tensor<2x64xf16>, %codes: tensor<4x64xi8>, %scale: tensor<4x1xf16>) -> tensor<2x4xf16> {
  %w = q35_storage.assemble %codes, %scale : (tensor<4x64xi8>, tensor<4x1xf16>) -> !q35.packed<4x64, #q35.scheme<int8>>
  %y = q35.linear %x, %w : (tensor<2x64xf16>, !q35.packed<4x64, #q35.scheme<int8>>) -> tensor<2x4xf16>
  func.return %y : tensor<2x4xf16>
}

// fp16 weights go straight into the matmul (also with keep-int-codes: there are no codes).
// CHECK-LABEL: func.func @fp16
// CHECK:       %acc = linalg.generic {{.*}} ins(%x, %weights : tensor<2x64xf16>, tensor<4x64xf16>)
// CHECK:         arith.extf %w : f16 to f32
// INT-LABEL:   func.func @fp16
// INT:         %acc = linalg.generic {{.*}} ins(%x, %weights : tensor<2x64xf16>, tensor<4x64xf16>)
func.func @fp16(%x: tensor<2x64xf16>, %weights: tensor<4x64xf16>) -> tensor<2x4xf16> {
  %w = q35_storage.assemble %weights : (tensor<4x64xf16>) -> !q35.packed<4x64, #q35.scheme<fp16>>
  %y = q35.linear %x, %w : (tensor<2x64xf16>, !q35.packed<4x64, #q35.scheme<fp16>>) -> tensor<2x4xf16>
  func.return %y : tensor<2x4xf16>
}

// CHECK-NOT: q35
