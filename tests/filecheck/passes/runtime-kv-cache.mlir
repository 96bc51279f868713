// runtime-kv-cache: every attention masks its cache rows by the positions of its new keys (those of the rope
// producing k), and returns its new k and v rows; calls return them on, in the order of the entry's caches.
// RUN: q35c opt %s -p runtime-kv-cache | filecheck %s
// The numpy reference and the host pipeline accept the result:
// RUN: q35c opt %s -p runtime-kv-cache,materialize-weights,lower-graph,unpack-bits | mlir-opt > /dev/null

// CHECK-LABEL: func.func @main
// CHECK-SAME:    -> (tensor<1x64xf16>, tensor<1x32xf16>, tensor<1x32xf16>, tensor<1x32xf16>, tensor<1x32xf16>)
// CHECK:         %x_1, %decoder.0.k_cache_rows, %decoder.0.v_cache_rows = func.call @decoder(%x, %pos, %decoder.0.k_cache, %decoder.0.v_cache, %wq, %wk, %wv)
// CHECK:         %x_2, %decoder.1.k_cache_rows, %decoder.1.v_cache_rows = func.call @decoder(%x_1, %pos, %decoder.1.k_cache, %decoder.1.v_cache, %wq, %wk, %wv)
// CHECK:         func.return %x_2, %decoder.0.k_cache_rows, %decoder.0.v_cache_rows, %decoder.1.k_cache_rows, %decoder.1.v_cache_rows
// CHECK-LABEL: func.func @decoder
// CHECK-SAME:    -> (tensor<1x64xf16>, tensor<1x32xf16>, tensor<1x32xf16>)
// CHECK:         %a = q35.attention %q, %k, %v, %k_cache, %v_cache positions %pos {{.*}} tensor<1xi32>) -> tensor<1x64xf16>
// CHECK:         func.return %a, %k, %v : tensor<1x64xf16>, tensor<1x32xf16>, tensor<1x32xf16>
func.func @main(%x: tensor<1x64xf16>, %pos: tensor<1xi32>, %decoder.0.k_cache: tensor<8x32xf16>, %decoder.0.v_cache: tensor<8x32xf16>, %decoder.1.k_cache: tensor<8x32xf16>, %decoder.1.v_cache: tensor<8x32xf16>) -> tensor<1x64xf16> {
  %wq = q35.weight "q_proj" : !q35.packed<64x64, #q35.scheme<int8>>
  %wk = q35.weight "k_proj" : !q35.packed<32x64, #q35.scheme<int8>>
  %wv = q35.weight "v_proj" : !q35.packed<32x64, #q35.scheme<int8>>
  %x_1 = func.call @decoder(%x, %pos, %decoder.0.k_cache, %decoder.0.v_cache, %wq, %wk, %wv) : (tensor<1x64xf16>, tensor<1xi32>, tensor<8x32xf16>, tensor<8x32xf16>, !q35.packed<64x64, #q35.scheme<int8>>, !q35.packed<32x64, #q35.scheme<int8>>, !q35.packed<32x64, #q35.scheme<int8>>) -> tensor<1x64xf16>
  %x_2 = func.call @decoder(%x_1, %pos, %decoder.1.k_cache, %decoder.1.v_cache, %wq, %wk, %wv) : (tensor<1x64xf16>, tensor<1xi32>, tensor<8x32xf16>, tensor<8x32xf16>, !q35.packed<64x64, #q35.scheme<int8>>, !q35.packed<32x64, #q35.scheme<int8>>, !q35.packed<32x64, #q35.scheme<int8>>) -> tensor<1x64xf16>
  func.return %x_2 : tensor<1x64xf16>
}
func.func @decoder(%x: tensor<1x64xf16>, %pos: tensor<1xi32>, %k_cache: tensor<8x32xf16>, %v_cache: tensor<8x32xf16>, %wq: !q35.packed<64x64, #q35.scheme<int8>>, %wk: !q35.packed<32x64, #q35.scheme<int8>>, %wv: !q35.packed<32x64, #q35.scheme<int8>>) -> tensor<1x64xf16> {
  %0 = q35.linear %x, %wq : (tensor<1x64xf16>, !q35.packed<64x64, #q35.scheme<int8>>) -> tensor<1x64xf16>
  %q = q35.rope %0, %pos {head_dim = 16 : i64, theta = 1.000000e+04 : f32} : (tensor<1x64xf16>, tensor<1xi32>) -> tensor<1x64xf16>
  %1 = q35.linear %x, %wk : (tensor<1x64xf16>, !q35.packed<32x64, #q35.scheme<int8>>) -> tensor<1x32xf16>
  %k = q35.rope %1, %pos {head_dim = 16 : i64, theta = 1.000000e+04 : f32} : (tensor<1x32xf16>, tensor<1xi32>) -> tensor<1x32xf16>
  %v = q35.linear %x, %wv : (tensor<1x64xf16>, !q35.packed<32x64, #q35.scheme<int8>>) -> tensor<1x32xf16>
  %a = q35.attention %q, %k, %v, %k_cache, %v_cache {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64} : (tensor<1x64xf16>, tensor<1x32xf16>, tensor<1x32xf16>, tensor<8x32xf16>, tensor<8x32xf16>) -> tensor<1x64xf16>
  func.return %a : tensor<1x64xf16>
}
