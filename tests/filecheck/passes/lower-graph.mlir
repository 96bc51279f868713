// lower-graph: embed, rmsnorm, rope, attention, silu, mul, add -> linalg/tensor/arith/math on tensors, each
// op's main linalg op tagged q35.kernel = "<op>"; q35.linear is left for unpack-bits.
// RUN: q35c opt %s -p lower-graph | filecheck %s
// RUN: q35c opt %s -p lower-graph,unpack-bits | filecheck %s --check-prefix=KERNEL
// Real MLIR reads the result of the host lowering (nothing of q35 is left):
// RUN: q35c opt %s -p lower-graph,unpack-bits | mlir-opt > /dev/null

// fp16 table: a gather, one generic over (t, d) that extracts table[id[t], d].
// CHECK-LABEL: func.func @embed_fp16
// CHECK:       %x = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0)>, affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]} ins(%ids : tensor<2xi32>) outs(%{{.*}} : tensor<2x8xf16>) attrs = {q35.kernel = "embed"}
// CHECK-NEXT:  ^bb0(%id: i32, %{{.*}}: f16):
// CHECK-NEXT:    %[[ROW:.*]] = arith.index_cast %id : i32 to index
// CHECK-NEXT:    %[[COL:.*]] = linalg.index 1 : index
// CHECK-NEXT:    %[[W:.*]] = tensor.extract %table[%[[ROW]], %[[COL]]] : tensor<16x8xf16>
// CHECK-NEXT:    linalg.yield %[[W]] : f16
// CHECK-NOT:   q35.embed
func.func @embed_fp16(%ids: tensor<2xi32>, %table: tensor<16x8xf16>) -> tensor<2x8xf16> {
  %t = q35_storage.assemble %table : (tensor<16x8xf16>) -> !q35.packed<16x8, #q35.scheme<fp16>>
  %x = q35.embed %ids, %t : (tensor<2xi32>, !q35.packed<16x8, #q35.scheme<fp16>>) -> tensor<2x8xf16>
  func.return %x : tensor<2x8xf16>
}

// Quantized table: the codes come from q35_storage.unpack (unpack-bits lowers it); the gather decodes the rows
// it reads, w = offset[id, d/g] + scale[id, d/g] * code[id, d].
// CHECK-LABEL: func.func @embed_int4
// CHECK:       %[[CODES:.*]] = q35_storage.unpack %t
// CHECK:       linalg.generic {{.*}} ins(%ids : tensor<2xi32>) outs(%{{.*}} : tensor<2x64xf16>) attrs = {q35.kernel = "embed"}
// CHECK:         %[[G:.*]] = arith.divui %{{.*}}, %{{.*}} : i32
// CHECK:         %[[C:.*]] = tensor.extract %[[CODES]][%{{.*}}, %{{.*}}] : tensor<16x64xi8>
// CHECK:         %[[CF:.*]] = arith.sitofp %[[C]] : i8 to f32
// CHECK:         tensor.extract %scale[%{{.*}}, %{{.*}}] : tensor<16x2xf16>
// CHECK:         arith.mulf %[[CF]], %{{.*}} : f32
// CHECK:         tensor.extract %offset[%{{.*}}, %{{.*}}] : tensor<16x2xf16>
// CHECK:         arith.addf
// CHECK:         arith.truncf %{{.*}} : f32 to f16
// The codes generic made by unpack-bits is tagged "unpack":
// KERNEL-LABEL: func.func @embed_int4
// KERNEL:       %codes{{.*}} = linalg.generic {{.*}} attrs = {q35.kernel = "unpack"}
// KERNEL:       linalg.generic {{.*}} attrs = {q35.kernel = "embed"}
func.func @embed_int4(%ids: tensor<2xi32>, %codes: tensor<16x8xi32>, %scale: tensor<16x2xf16>, %offset: tensor<16x2xf16>) -> tensor<2x64xf16> {
  %t = q35_storage.assemble %codes, %scale, %offset : (tensor<16x8xi32>, tensor<16x2xf16>, tensor<16x2xf16>) -> !q35.packed<16x64, #q35.scheme<int4, g = 32>>
  %x = q35.embed %ids, %t : (tensor<2xi32>, !q35.packed<16x64, #q35.scheme<int4, g = 32>>) -> tensor<2x64xf16>
  func.return %x : tensor<2x64xf16>
}

// rmsnorm: ss[t] = sum_d x^2 in f32, then y = x * rsqrt(ss / D + eps) * gain, rounded once.
// CHECK-LABEL: func.func @rmsnorm
// CHECK:       %ss_init = linalg.fill
// CHECK:       %ss = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0)>], iterator_types = ["parallel", "reduction"]} ins(%x : tensor<2x8xf16>) outs(%ss_init : tensor<2xf32>)
// CHECK:         %[[X:.*]] = arith.extf %{{.*}} : f16 to f32
// CHECK-NEXT:    %[[X2:.*]] = arith.mulf %[[X]], %[[X]] : f32
// CHECK-NEXT:    arith.addf %{{.*}}, %[[X2]] : f32
// CHECK:       %y = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0)>, affine_map<(d0, d1) -> (d1)>, affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]} ins(%x, %ss, %gain : tensor<2x8xf16>, tensor<2xf32>, tensor<8xf16>) outs(%{{.*}} : tensor<2x8xf16>) attrs = {q35.kernel = "rmsnorm"}
// CHECK:         %[[D:.*]] = arith.constant 8.000000e+00 : f32
// CHECK-NEXT:    %[[MS:.*]] = arith.divf %ss_1, %[[D]] : f32
// CHECK-NEXT:    %[[EPS:.*]] = arith.constant 1.000000e-05 : f32
// CHECK-NEXT:    %[[V:.*]] = arith.addf %[[MS]], %[[EPS]] : f32
// CHECK-NEXT:    %[[INV:.*]] = math.rsqrt %[[V]] : f32
// CHECK:         arith.truncf %{{.*}} : f32 to f16
// CHECK-NOT:   q35_storage.assemble
func.func @rmsnorm(%x: tensor<2x8xf16>, %gain: tensor<8xf16>) -> tensor<2x8xf16> {
  %g = q35_storage.assemble %gain : (tensor<8xf16>) -> !q35.packed<8, #q35.scheme<fp16>>
  %y = q35.rmsnorm %x, %g {eps = 1.0e-05 : f32} : (tensor<2x8xf16>, !q35.packed<8, #q35.scheme<fp16>>) -> tensor<2x8xf16>
  func.return %y : tensor<2x8xf16>
}

// rope, rotate-half per head (head_dim 4, 2 heads): x is seen as [T, heads, head_dim]; the partner of i is
// (i + 2) mod 4; inv_freq[i] = 10000^(-2i/4) is a constant; out = x cos -/+ partner sin (minus in the first half).
// CHECK-LABEL: func.func @rope
// CHECK:       %inv_freq = arith.constant dense<[1.000000e+00, 1.000000e-02]> : tensor<2xf32>
// CHECK:       %x_heads = tensor.expand_shape %x {{\[\[}}0 : i64], [1 : i64, 2 : i64]] output_shape [2, 2, 4] : tensor<2x8xf16> into tensor<2x2x4xf16>
// CHECK:       %rope = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1, ((d2 + 2) mod 4))>, affine_map<(d0, d1, d2) -> (d0)>, affine_map<(d0, d1, d2) -> ((d2 mod 2))>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel"]} ins(%x_heads, %x_heads, %pos, %inv_freq : {{.*}}) outs(%{{.*}} : tensor<2x2x4xf16>) attrs = {q35.kernel = "rope"}
// CHECK:         %[[ANGLE:.*]] = arith.mulf %{{.*}}, %inv_freq_1 : f32
// CHECK:         math.cos %[[ANGLE]] : f32
// CHECK:         math.sin %[[ANGLE]] : f32
// CHECK:         %[[FIRST:.*]] = arith.cmpi slt, %{{.*}}, %{{.*}} : i32
// CHECK:         %[[SUB:.*]] = arith.subf
// CHECK-NEXT:    %[[ADD:.*]] = arith.addf
// CHECK-NEXT:    arith.select %[[FIRST]], %[[SUB]], %[[ADD]] : f32
// CHECK:       %y = tensor.collapse_shape %rope {{\[\[}}0 : i64], [1 : i64, 2 : i64]] : tensor<2x2x4xf16> into tensor<2x8xf16>
func.func @rope(%x: tensor<2x8xf16>, %pos: tensor<2xi32>) -> tensor<2x8xf16> {
  %y = q35.rope %x, %pos {head_dim = 4 : i64, theta = 1.0e+04 : f32} : (tensor<2x8xf16>, tensor<2xi32>) -> tensor<2x8xf16>
  func.return %y : tensor<2x8xf16>
}

// attention, C = 3 cached and T = 2 new tokens, 4 query heads on 2 KV heads (query head h reads KV head h / 2):
// K and V are [cache; new], scores are masked where j > C + t, softmax in f32 with the row max subtracted.
// CHECK-LABEL: func.func @attention
// CHECK:       %q_heads = tensor.expand_shape %q {{.*}} : tensor<2x16xf16> into tensor<2x4x4xf16>
// CHECK:       %[[K0:.*]] = tensor.insert_slice %kc into %{{.*}}[0, 0] [3, 8] [1, 1] : tensor<3x8xf16> into tensor<5x8xf16>
// CHECK-NEXT:  %k_all_rows = tensor.insert_slice %k into %[[K0]][3, 0] [2, 8] [1, 1] : tensor<2x8xf16> into tensor<5x8xf16>
// CHECK-NEXT:  %k_all = tensor.expand_shape %k_all_rows {{.*}} : tensor<5x8xf16> into tensor<5x2x4xf16>
// CHECK:       %v_all = tensor.expand_shape
// CHECK:       %dots = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d1, d0, d3)>, affine_map<(d0, d1, d2, d3) -> (d2, (d0 floordiv 2), d3)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%q_heads, %k_all : tensor<2x4x4xf16>, tensor<5x2x4xf16>) outs(%{{.*}} : tensor<4x2x5xf32>)
// CHECK:       %scores = linalg.generic
// CHECK:         arith.constant 5.000000e-01 : f32
// CHECK:       %max_init = linalg.fill ins(%{{.*}} : f32) outs(%{{.*}} : tensor<4x2xf32>)
// CHECK:       %max = linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "reduction"]} ins(%scores : tensor<4x2x5xf32>) outs(%max_init : tensor<4x2xf32>)
// CHECK:         %[[C:.*]] = arith.constant 3 : i32
// CHECK-NEXT:    %[[LAST:.*]] = arith.addi %{{.*}}, %[[C]] : i32
// CHECK-NEXT:    %[[VALID:.*]] = arith.cmpi sle, %{{.*}}, %[[LAST]] : i32
// CHECK-NEXT:    %[[NEG_INF:.*]] = arith.constant 0xff800000 : f32
// CHECK-NEXT:    %[[S:.*]] = arith.select %[[VALID]], %s, %[[NEG_INF]] : f32
// CHECK-NEXT:    arith.maximumf %{{.*}}, %[[S]] : f32
// CHECK:       %e = linalg.generic
// CHECK:         math.exp
// CHECK:       %sum = linalg.generic {{.*}} ins(%e : tensor<4x2x5xf32>) outs(%{{.*}} : tensor<4x2xf32>)
// CHECK:       %o = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d1, d0, d3)>, affine_map<(d0, d1, d2, d3) -> (d3, (d1 floordiv 2), d2)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%e, %v_all : tensor<4x2x5xf32>, tensor<5x2x4xf16>) outs(%{{.*}} : tensor<2x4x4xf32>) attrs = {q35.kernel = "attention", q35.kv_append_bytes = 64 : i64}
// CHECK:       %attn = linalg.generic {{.*}} ins(%o, %sum : tensor<2x4x4xf32>, tensor<4x2xf32>) outs(%{{.*}} : tensor<2x4x4xf16>)
// CHECK:         arith.divf
// CHECK-NEXT:    arith.truncf
// CHECK:       %attn_out = tensor.collapse_shape %attn {{.*}} : tensor<2x4x4xf16> into tensor<2x16xf16>
func.func @attention(%q: tensor<2x16xf16>, %k: tensor<2x8xf16>, %v: tensor<2x8xf16>, %kc: tensor<3x8xf16>, %vc: tensor<3x8xf16>) -> tensor<2x16xf16> {
  %o = q35.attention %q, %k, %v, %kc, %vc {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 4 : i64} : (tensor<2x16xf16>, tensor<2x8xf16>, tensor<2x8xf16>, tensor<3x8xf16>, tensor<3x8xf16>) -> tensor<2x16xf16>
  func.return %o : tensor<2x16xf16>
}

// An empty cache (C = 0) needs no concatenation.
// CHECK-LABEL: func.func @attention_no_cache
// CHECK-NOT:   tensor.insert_slice
// CHECK:       %k_all = tensor.expand_shape %k {{.*}} : tensor<1x8xf16> into tensor<1x2x4xf16>
func.func @attention_no_cache(%q: tensor<1x16xf16>, %k: tensor<1x8xf16>, %v: tensor<1x8xf16>, %kc: tensor<0x8xf16>, %vc: tensor<0x8xf16>) -> tensor<1x16xf16> {
  %o = q35.attention %q, %k, %v, %kc, %vc {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 4 : i64} : (tensor<1x16xf16>, tensor<1x8xf16>, tensor<1x8xf16>, tensor<0x8xf16>, tensor<0x8xf16>) -> tensor<1x16xf16>
  func.return %o : tensor<1x16xf16>
}

// silu = x / (1 + exp(-x)); mul and add in f32, each rounded once.
// CHECK-LABEL: func.func @elementwise
// CHECK:       %y = linalg.generic {{.*}} ins(%a : tensor<2x8xf16>) outs(%{{.*}} : tensor<2x8xf16>) attrs = {q35.kernel = "silu"}
// CHECK:         %[[X:.*]] = arith.extf %{{.*}} : f16 to f32
// CHECK-NEXT:    %[[NEG:.*]] = arith.negf %[[X]] : f32
// CHECK-NEXT:    %[[EXP:.*]] = math.exp %[[NEG]] : f32
// CHECK-NEXT:    %[[ONE:.*]] = arith.constant 1.000000e+00 : f32
// CHECK-NEXT:    %[[DEN:.*]] = arith.addf %[[EXP]], %[[ONE]] : f32
// CHECK-NEXT:    %[[Y:.*]] = arith.divf %[[X]], %[[DEN]] : f32
// CHECK-NEXT:    arith.truncf %[[Y]] : f32 to f16
// CHECK:       %y_1 = linalg.generic {{.*}} ins(%y, %b : tensor<2x8xf16>, tensor<2x8xf16>) {{.*}} attrs = {q35.kernel = "mul"}
// CHECK:         arith.mulf %{{.*}}, %{{.*}} : f32
// CHECK:       %y_2 = linalg.generic {{.*}} ins(%y_1, %a : tensor<2x8xf16>, tensor<2x8xf16>) {{.*}} attrs = {q35.kernel = "add"}
// CHECK:         arith.addf %{{.*}}, %{{.*}} : f32
// CHECK:       func.return %y_2 : tensor<2x8xf16>
func.func @elementwise(%a: tensor<2x8xf16>, %b: tensor<2x8xf16>) -> tensor<2x8xf16> {
  %s = q35.silu %a : tensor<2x8xf16>
  %m = q35.mul %s, %b : tensor<2x8xf16>
  %y = q35.add %m, %a : tensor<2x8xf16>
  func.return %y : tensor<2x8xf16>
}

// q35.linear is unpack-bits' to lower: lower-graph leaves it; unpack-bits tags the matmul "linear".
// CHECK-LABEL: func.func @linear
// CHECK:       q35.linear
// KERNEL-LABEL: func.func @linear
// KERNEL:       %codes_grid = linalg.generic {{.*}} attrs = {q35.kernel = "unpack"}
// KERNEL:       %acc = linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "reduction"]} {{.*}} attrs = {q35.kernel = "linear"}
func.func @linear(%x: tensor<2x64xf16>, %blocks: tensor<8x36xi8>) -> tensor<2x8xf16> {
  %w = q35_storage.assemble %blocks : (tensor<8x36xi8>) -> !q35.packed<8x64, #q35.scheme<q4_0>>
  %y = q35.linear %x, %w : (tensor<2x64xf16>, !q35.packed<8x64, #q35.scheme<q4_0>>) -> tensor<2x8xf16>
  func.return %y : tensor<2x8xf16>
}

// A batch of 2 sequences: every attention generic gets an outer batch loop, K and V are per-sequence [cache; new].
// CHECK-LABEL: func.func @attention_batch2
// CHECK:       %k_all_cache = tensor.expand_shape %kc {{.*}} : tensor<6x8xf16> into tensor<2x3x8xf16>
// CHECK:       %k_all_new = tensor.expand_shape %k {{.*}} : tensor<4x8xf16> into tensor<2x2x8xf16>
// CHECK:       tensor.insert_slice %k_all_new into %{{.*}}[0, 3, 0] [2, 2, 8] [1, 1, 1] : tensor<2x2x8xf16> into tensor<2x5x8xf16>
// CHECK:       %dots = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3, d4) -> (d0, d2, d1, d4)>, affine_map<(d0, d1, d2, d3, d4) -> (d0, d3, (d1 floordiv 2), d4)>
// CHECK:       %o = linalg.generic {{.*}} attrs = {q35.kernel = "attention", q35.kv_append_bytes = 128 : i64, q35.batch = 2 : i64}
// CHECK:       %attn_out = tensor.collapse_shape %attn {{.*}} : tensor<2x2x4x4xf16> into tensor<4x16xf16>
func.func @attention_batch2(%q: tensor<4x16xf16>, %k: tensor<4x8xf16>, %v: tensor<4x8xf16>, %kc: tensor<6x8xf16>, %vc: tensor<6x8xf16>) -> tensor<4x16xf16> {
  %o = q35.attention %q, %k, %v, %kc, %vc {batch = 2 : i64, num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 4 : i64} : (tensor<4x16xf16>, tensor<4x8xf16>, tensor<4x8xf16>, tensor<6x8xf16>, tensor<6x8xf16>) -> tensor<4x16xf16>
  func.return %o : tensor<4x16xf16>
}
