// unpack-bits: packed weights -> integer codes (shifts, masks, sign extension) -> dequantized f32 -> matmul.
// RUN: q35c opt %s -p unpack-bits | filecheck %s
// RUN: q35c opt %s -p 'unpack-bits{keep-int-codes=true}' | filecheck %s --check-prefix=INT
// Real MLIR reads the result (nothing of q35 is left):
// RUN: q35c opt %s -p unpack-bits | mlir-opt > /dev/null
// RUN: q35c opt %s -p 'unpack-bits{keep-int-codes=true}' | mlir-opt > /dev/null

// q3p5 dense: pair p = k/2 sits at stream bits [7p, 7p+7); it reads the words holding its first and last bit
// (different when the pair straddles a word boundary), joins them into a 64-bit window hi:lo, shifts by
// 7p mod 32 and masks 7 bits; n1 = sext4(c >> 3) at even k, n2 = sext3(c & 7) at odd k.
// CHECK-LABEL: func.func @q3p5_dense
// CHECK:       %codes = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, (((d1 floordiv 2) * 7) floordiv 32))>, affine_map<(d0, d1) -> (d0, ((((d1 floordiv 2) * 7) + 6) floordiv 32))>, affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]} ins(%words, %words : tensor<4x7xi32>, tensor<4x7xi32>) outs(%{{.*}} : tensor<4x64xi8>)
// CHECK-NEXT:  ^bb0(%lo: i32, %hi: i32, %{{.*}}: i8):
// CHECK:         %[[K:.*]] = arith.index_cast %{{.*}} : index to i32
// CHECK:         %[[P:.*]] = arith.shrui %[[K]], %{{.*}} : i32
// CHECK:         %[[P7:.*]] = arith.muli %[[P]], %[[C7:.*]] : i32
// CHECK:         %bit = arith.andi %[[P7]], %{{.*}} : i32
// CHECK:         %[[HI:.*]] = arith.extui %hi : i32 to i64
// CHECK:         %[[C32:.*]] = arith.constant 32 : i64
// CHECK:         %[[HI_UP:.*]] = arith.shli %[[HI]], %[[C32]] : i64
// CHECK:         %[[LO:.*]] = arith.extui %lo : i32 to i64
// CHECK:         %window = arith.ori %[[HI_UP]], %[[LO]] : i64
// CHECK:         %[[BIT:.*]] = arith.extui %bit : i32 to i64
// CHECK:         %[[FIELD:.*]] = arith.shrui %window, %[[BIT]] : i64
// CHECK:         %[[C127:.*]] = arith.constant 127 : i64
// CHECK:         %[[MASKED:.*]] = arith.andi %[[FIELD]], %[[C127]] : i64
// CHECK:         %pair = arith.trunci %[[MASKED]] : i64 to i32
// CHECK:         %[[C3:.*]] = arith.constant 3 : i32
// CHECK:         %[[HIGH:.*]] = arith.shrui %pair, %[[C3]] : i32
// CHECK:         %[[C15:.*]] = arith.constant 15 : i32
// CHECK:         %[[NIB:.*]] = arith.andi %[[HIGH]], %[[C15]] : i32
// CHECK:         %[[C28:.*]] = arith.constant 28 : i32
// CHECK:         %[[UP4:.*]] = arith.shli %[[NIB]], %[[C28]] : i32
// CHECK:         %n1 = arith.shrsi %[[UP4]], %[[C28]] : i32
// CHECK:         %[[LOW3:.*]] = arith.andi %pair, %[[C7]] : i32
// CHECK:         %[[C29:.*]] = arith.constant 29 : i32
// CHECK:         %[[UP3:.*]] = arith.shli %[[LOW3]], %[[C29]] : i32
// CHECK:         %n2 = arith.shrsi %[[UP3]], %[[C29]] : i32
// CHECK:         %[[ODD:.*]] = arith.cmpi ne, %{{.*}}, %{{.*}} : i32
// CHECK:         %[[CODE:.*]] = arith.select %[[ODD]], %n2, %n1 : i32
// CHECK:         %[[CODE8:.*]] = arith.trunci %[[CODE]] : i32 to i8
// CHECK-NEXT:    linalg.yield %[[CODE8]] : i8
// The odd (3-bit) slot has twice the step: its code is doubled before w = scale * e + offset.
// CHECK:       %w = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0, (d1 floordiv 32))>, affine_map<(d0, d1) -> (d0, (d1 floordiv 32))>, affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]} ins(%codes, %scale, %offset : tensor<4x64xi8>, tensor<4x2xf16>, tensor<4x2xf16>)
// CHECK:         %[[TWICE:.*]] = arith.shli %code, %{{.*}} : i8
// CHECK-NEXT:    %[[E:.*]] = arith.select %{{.*}}, %[[TWICE]], %code : i8
// CHECK-NEXT:    %[[EF:.*]] = arith.sitofp %[[E]] : i8 to f32
// CHECK-NEXT:    %[[SE:.*]] = arith.mulf %{{.*}}, %[[EF]] : f32
// CHECK-NEXT:    %[[O:.*]] = arith.extf %offset_1 : f16 to f32
// CHECK-NEXT:    %[[W:.*]] = arith.addf %[[SE]], %[[O]] : f32
// CHECK-NEXT:    linalg.yield %[[W]] : f32
// CHECK:       %acc = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d2)>, affine_map<(d0, d1, d2) -> (d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1)>], iterator_types = ["parallel", "parallel", "reduction"]} ins(%x, %w : tensor<1x64xf16>, tensor<4x64xf32>)
// CHECK:       %y = linalg.generic
// CHECK:         arith.truncf %{{.*}} : f32 to f16
// CHECK:       func.return %y : tensor<1x4xf16>
// With keep-int-codes the matmul runs on the codes per group, then scale and offset apply per group.
// INT-LABEL:   func.func @q3p5_dense
// INT:         %x_groups = tensor.expand_shape %x {{\[\[}}0 : i64], [1 : i64, 2 : i64]] output_shape [1, 2, 32] : tensor<1x64xf16> into tensor<1x2x32xf16>
// INT:         %codes = linalg.generic
// INT:         %code_groups = tensor.expand_shape %codes
// INT:         %p = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d2, d3)>, affine_map<(d0, d1, d2, d3) -> (d1, d2, d3)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%x_groups, %code_groups : tensor<1x2x32xf16>, tensor<4x2x32xi8>) outs(%{{.*}} : tensor<1x4x2xf32>)
// INT:         %xsum = linalg.generic
// INT:         %acc = linalg.generic {{.*}} ins(%p, %scale, %offset, %xsum : tensor<1x4x2xf32>, tensor<4x2xf16>, tensor<4x2xf16>, tensor<1x2xf32>)
// INT-NOT:     q35
// INT:         func.return %y : tensor<1x4xf16>
func.func @q3p5_dense(%x: tensor<1x64xf16>, %words: tensor<4x7xi32>, %scale: tensor<4x2xf16>, %offset: tensor<4x2xf16>) -> tensor<1x4xf16> {
  %w = q35_storage.assemble %words, %scale, %offset : (tensor<4x7xi32>, tensor<4x2xf16>, tensor<4x2xf16>) -> !q35.packed<4x64, #q35.scheme<q3p5, g = 32, container = dense>>
  %y = q35.linear %x, %w : (tensor<1x64xf16>, !q35.packed<4x64, #q35.scheme<q3p5, g = 32, container = dense>>) -> tensor<1x4xf16>
  func.return %y : tensor<1x4xf16>
}

// q4_0: block b = k/32 is 18 bytes, a little-endian f16 scale then 16 bytes; byte 2 + (k mod 16) holds k in its
// low nibble for k mod 32 < 16, in its high nibble above; code = nibble - 8. The scale is rebuilt from its bytes.
// CHECK-LABEL: func.func @q4_0
// CHECK:       %codes = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, ((((d1 floordiv 32) * 18) + 2) + (d1 mod 16)))>, affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]} ins(%blocks : tensor<4x36xi8>) outs(%{{.*}} : tensor<4x64xi8>)
// CHECK-NEXT:  ^bb0(%byte: i8, %{{.*}}: i8):
// CHECK-NEXT:    %[[B:.*]] = arith.extui %byte : i8 to i32
// CHECK:         %[[K:.*]] = arith.index_cast %{{.*}} : index to i32
// CHECK-NEXT:    %[[C4:.*]] = arith.constant 4 : i32
// CHECK-NEXT:    %[[HALF:.*]] = arith.shrui %[[K]], %[[C4]] : i32
// CHECK-NEXT:    %[[C1:.*]] = arith.constant 1 : i32
// CHECK-NEXT:    %[[UPPER:.*]] = arith.andi %[[HALF]], %[[C1]] : i32
// CHECK-NEXT:    %[[C2:.*]] = arith.constant 2 : i32
// CHECK-NEXT:    %shift = arith.shli %[[UPPER]], %[[C2]] : i32
// CHECK-NEXT:    %[[FIELD:.*]] = arith.shrui %[[B]], %shift : i32
// CHECK-NEXT:    %[[C15:.*]] = arith.constant 15 : i32
// CHECK-NEXT:    %[[NIB:.*]] = arith.andi %[[FIELD]], %[[C15]] : i32
// CHECK-NEXT:    %[[C8:.*]] = arith.constant 8 : i32
// CHECK-NEXT:    %[[CODE:.*]] = arith.subi %[[NIB]], %[[C8]] : i32
// CHECK-NEXT:    %[[CODE8:.*]] = arith.trunci %[[CODE]] : i32 to i8
// CHECK-NEXT:    linalg.yield %[[CODE8]] : i8
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
// CHECK:       %w = linalg.generic {{.*}} ins(%codes, %scale : tensor<4x64xi8>, tensor<4x2xf16>)
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

// int4: 8 codes per word, code j in bits [4j, 4j+4).
// CHECK-LABEL: func.func @int4_codes
// CHECK:       %codes = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, (d1 floordiv 8))>, affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]} ins(%words : tensor<4x8xi32>)
// CHECK:         %shift = arith.shli %{{.*}}, %{{.*}} : i32
// CHECK-NEXT:    %[[FIELD:.*]] = arith.shrui %word, %shift : i32
// CHECK-NEXT:    %[[C15:.*]] = arith.constant 15 : i32
// CHECK-NEXT:    %[[NIB:.*]] = arith.andi %[[FIELD]], %[[C15]] : i32
// CHECK-NEXT:    %[[C28:.*]] = arith.constant 28 : i32
// CHECK-NEXT:    %[[UP:.*]] = arith.shli %[[NIB]], %[[C28]] : i32
// CHECK-NEXT:    %[[CODE:.*]] = arith.shrsi %[[UP]], %[[C28]] : i32
// CHECK-NEXT:    %[[CODE8:.*]] = arith.trunci %[[CODE]] : i32 to i8
// CHECK-NEXT:    linalg.yield %[[CODE8]] : i8
// CHECK:       func.return %codes : tensor<4x64xi8>
func.func @int4_codes(%words: tensor<4x8xi32>, %scale: tensor<4x2xf16>, %offset: tensor<4x2xf16>) -> tensor<4x64xi8> {
  %w = q35_storage.assemble %words, %scale, %offset : (tensor<4x8xi32>, tensor<4x2xf16>, tensor<4x2xf16>) -> !q35.packed<4x64, #q35.scheme<int4, g = 32>>
  %c = q35_storage.unpack %w : !q35.packed<4x64, #q35.scheme<int4, g = 32>> -> tensor<4x64xi8>
  func.return %c : tensor<4x64xi8>
}

// q3p5 byte: one pair code per byte.
// CHECK-LABEL: func.func @q3p5_byte_codes
// CHECK:       %codes = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, (d1 floordiv 2))>, affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]} ins(%pairs : tensor<4x32xi8>)
// CHECK:         %n1 = arith.shrsi
// CHECK:         %n2 = arith.shrsi
// CHECK:         arith.select %{{.*}}, %n2, %n1 : i32
func.func @q3p5_byte_codes(%pairs: tensor<4x32xi8>, %scale: tensor<4x1xf16>, %offset: tensor<4x1xf16>) -> tensor<4x64xi8> {
  %w = q35_storage.assemble %pairs, %scale, %offset : (tensor<4x32xi8>, tensor<4x1xf16>, tensor<4x1xf16>) -> !q35.packed<4x64, #q35.scheme<q3p5, g = 64, container = byte>>
  %c = q35_storage.unpack %w : !q35.packed<4x64, #q35.scheme<q3p5, g = 64, container = byte>> -> tensor<4x64xi8>
  func.return %c : tensor<4x64xi8>
}

// q8_0: the 32 int8 codes follow the 2-byte scale of each 34-byte block.
// CHECK-LABEL: func.func @q8_0_codes
// CHECK:       %codes = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, ((((d1 floordiv 32) * 34) + 2) + (d1 mod 32)))>, affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]} ins(%blocks : tensor<4x68xi8>)
// CHECK-NEXT:  ^bb0(%byte: i8, %{{.*}}: i8):
// CHECK-NEXT:    linalg.yield %byte : i8
func.func @q8_0_codes(%blocks: tensor<4x68xi8>) -> tensor<4x64xi8> {
  %w = q35_storage.assemble %blocks : (tensor<4x68xi8>) -> !q35.packed<4x64, #q35.scheme<q8_0>>
  %c = q35_storage.unpack %w : !q35.packed<4x64, #q35.scheme<q8_0>> -> tensor<4x64xi8>
  func.return %c : tensor<4x64xi8>
}

// int8 stores its codes as they are: no unpacking generic, one scale per row (g = K).
// CHECK-LABEL: func.func @int8
// CHECK-NOT:   %codes = linalg.generic
// CHECK:       %w = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0, (d1 floordiv 64))>, affine_map<(d0, d1) -> (d0, d1)>], {{.*}} ins(%codes, %scale : tensor<4x64xi8>, tensor<4x1xf16>)
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
