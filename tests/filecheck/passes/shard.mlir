// shard: the graph one device runs under a placement. With tp=2, column-split projections (q, k, v, gate, up:
// N / 2 rows), row-split ones (o_proj, down_proj: K / 2 columns) each followed by an all-reduce, heads halved,
// the vocabulary split (embedding rows, then an all-reduce; lm_head rows, then an all-gather of the logits).
// With pp=2 the hidden state crosses from stage 0 to stage 1 in a transfer after the first layer.
// RUN: q35c opt %s -p 'shard{tp=2 pp=2}' | filecheck %s
// RUN: q35c opt %s -p 'shard{tp=2 pp=2},materialize-weights,lower-graph' | filecheck %s --check-prefix=LOWERED
// RUN: not q35c opt %s -p 'shard{tp=3}' 2>&1 | filecheck %s --check-prefix=BAD

// CHECK:       builtin.module attributes {q35.placement = {tp = 2 : i64, pp = 2 : i64}}
// CHECK:       %embed_tokens = q35.weight "embed_tokens" : !q35.packed<128x64, #q35.scheme<fp16>>
// CHECK:       q35.all_reduce %x {group = 2 : i64} : tensor<1x64xf16>
// CHECK:       %decoder.0.q_proj = q35.weight "decoder.0.q_proj" : !q35.packed<32x64, #q35.scheme<int8>>
// CHECK:       %decoder.0.o_proj = q35.weight "decoder.0.o_proj" : !q35.packed<64x32, #q35.scheme<int8>>
// CHECK:       q35.transfer %{{.*}} {from = 0 : i64, to = 1 : i64} : tensor<1x64xf16>
// CHECK-NEXT:  %decoder.1.input_layernorm = q35.weight
// CHECK:       %logits_1 = q35.all_gather %logits {group = 2 : i64} : (tensor<1x128xf16>) -> tensor<1x256xf16>
// CHECK-NEXT:  func.return %logits_1 : tensor<1x256xf16>
// CHECK-LABEL: func.func @decoder
// CHECK:       q35.attention %q, %k, %v, %k_cache, %v_cache {num_heads = 2 : i64, num_kv_heads = 1 : i64, head_dim = 16 : i64}
// CHECK:       %[[O:.*]] = q35.linear %a, %o_proj : (tensor<1x32xf16>, !q35.packed<64x32, #q35.scheme<int8>>) -> tensor<1x64xf16>
// CHECK-NEXT:  %[[R:.*]] = q35.all_reduce %[[O]] {group = 2 : i64} : tensor<1x64xf16>
// CHECK-NEXT:  q35.add %x, %[[R]]
// CHECK:       q35.all_reduce

// The collectives stay through lowering, for the cost model to read.
// LOWERED:     q35.all_reduce
// LOWERED:     q35.transfer
// LOWERED:     q35.all_gather

// BAD: 4 query heads do not divide over 3 devices
builtin.module {
  func.func @main(%ids: tensor<1xi32>, %pos: tensor<1xi32>, %decoder.0.k_cache: tensor<0x32xf16>, %decoder.0.v_cache: tensor<0x32xf16>, %decoder.1.k_cache: tensor<0x32xf16>, %decoder.1.v_cache: tensor<0x32xf16>) -> tensor<1x256xf16> {
    %embed_tokens = q35.weight "embed_tokens" : !q35.packed<256x64, #q35.scheme<fp16>>
    %x = q35.embed %ids, %embed_tokens : (tensor<1xi32>, !q35.packed<256x64, #q35.scheme<fp16>>) -> tensor<1x64xf16>
    %decoder.0.input_layernorm = q35.weight "decoder.0.input_layernorm" : !q35.packed<64, #q35.scheme<fp16>>
    %decoder.0.q_proj = q35.weight "decoder.0.q_proj" : !q35.packed<64x64, #q35.scheme<int8>>
    %decoder.0.k_proj = q35.weight "decoder.0.k_proj" : !q35.packed<32x64, #q35.scheme<int8>>
    %decoder.0.v_proj = q35.weight "decoder.0.v_proj" : !q35.packed<32x64, #q35.scheme<int8>>
    %decoder.0.o_proj = q35.weight "decoder.0.o_proj" : !q35.packed<64x64, #q35.scheme<int8>>
    %decoder.0.post_attention_layernorm = q35.weight "decoder.0.post_attention_layernorm" : !q35.packed<64, #q35.scheme<fp16>>
    %decoder.0.gate_proj = q35.weight "decoder.0.gate_proj" : !q35.packed<128x64, #q35.scheme<int8>>
    %decoder.0.up_proj = q35.weight "decoder.0.up_proj" : !q35.packed<128x64, #q35.scheme<int8>>
    %decoder.0.down_proj = q35.weight "decoder.0.down_proj" : !q35.packed<64x128, #q35.scheme<int8>>
    %x_1 = func.call @decoder(%x, %pos, %decoder.0.k_cache, %decoder.0.v_cache, %decoder.0.input_layernorm, %decoder.0.q_proj, %decoder.0.k_proj, %decoder.0.v_proj, %decoder.0.o_proj, %decoder.0.post_attention_layernorm, %decoder.0.gate_proj, %decoder.0.up_proj, %decoder.0.down_proj) : (tensor<1x64xf16>, tensor<1xi32>, tensor<0x32xf16>, tensor<0x32xf16>, !q35.packed<64, #q35.scheme<fp16>>, !q35.packed<64x64, #q35.scheme<int8>>, !q35.packed<32x64, #q35.scheme<int8>>, !q35.packed<32x64, #q35.scheme<int8>>, !q35.packed<64x64, #q35.scheme<int8>>, !q35.packed<64, #q35.scheme<fp16>>, !q35.packed<128x64, #q35.scheme<int8>>, !q35.packed<128x64, #q35.scheme<int8>>, !q35.packed<64x128, #q35.scheme<int8>>) -> tensor<1x64xf16>
    %decoder.1.input_layernorm = q35.weight "decoder.1.input_layernorm" : !q35.packed<64, #q35.scheme<fp16>>
    %decoder.1.q_proj = q35.weight "decoder.1.q_proj" : !q35.packed<64x64, #q35.scheme<int8>>
    %decoder.1.k_proj = q35.weight "decoder.1.k_proj" : !q35.packed<32x64, #q35.scheme<int8>>
    %decoder.1.v_proj = q35.weight "decoder.1.v_proj" : !q35.packed<32x64, #q35.scheme<int8>>
    %decoder.1.o_proj = q35.weight "decoder.1.o_proj" : !q35.packed<64x64, #q35.scheme<int8>>
    %decoder.1.post_attention_layernorm = q35.weight "decoder.1.post_attention_layernorm" : !q35.packed<64, #q35.scheme<fp16>>
    %decoder.1.gate_proj = q35.weight "decoder.1.gate_proj" : !q35.packed<128x64, #q35.scheme<int8>>
    %decoder.1.up_proj = q35.weight "decoder.1.up_proj" : !q35.packed<128x64, #q35.scheme<int8>>
    %decoder.1.down_proj = q35.weight "decoder.1.down_proj" : !q35.packed<64x128, #q35.scheme<int8>>
    %x_2 = func.call @decoder(%x_1, %pos, %decoder.1.k_cache, %decoder.1.v_cache, %decoder.1.input_layernorm, %decoder.1.q_proj, %decoder.1.k_proj, %decoder.1.v_proj, %decoder.1.o_proj, %decoder.1.post_attention_layernorm, %decoder.1.gate_proj, %decoder.1.up_proj, %decoder.1.down_proj) : (tensor<1x64xf16>, tensor<1xi32>, tensor<0x32xf16>, tensor<0x32xf16>, !q35.packed<64, #q35.scheme<fp16>>, !q35.packed<64x64, #q35.scheme<int8>>, !q35.packed<32x64, #q35.scheme<int8>>, !q35.packed<32x64, #q35.scheme<int8>>, !q35.packed<64x64, #q35.scheme<int8>>, !q35.packed<64, #q35.scheme<fp16>>, !q35.packed<128x64, #q35.scheme<int8>>, !q35.packed<128x64, #q35.scheme<int8>>, !q35.packed<64x128, #q35.scheme<int8>>) -> tensor<1x64xf16>
    %norm = q35.weight "norm" : !q35.packed<64, #q35.scheme<fp16>>
    %0 = q35.rmsnorm %x_2, %norm {eps = 1.000000e-05 : f32} : (tensor<1x64xf16>, !q35.packed<64, #q35.scheme<fp16>>) -> tensor<1x64xf16>
    %lm_head = q35.weight "lm_head" : !q35.packed<256x64, #q35.scheme<int8>>
    %logits = q35.linear %0, %lm_head : (tensor<1x64xf16>, !q35.packed<256x64, #q35.scheme<int8>>) -> tensor<1x256xf16>
    func.return %logits : tensor<1x256xf16>
  }
  func.func @decoder(%x: tensor<1x64xf16>, %pos: tensor<1xi32>, %k_cache: tensor<0x32xf16>, %v_cache: tensor<0x32xf16>, %input_layernorm: !q35.packed<64, #q35.scheme<fp16>>, %q_proj: !q35.packed<64x64, #q35.scheme<int8>>, %k_proj: !q35.packed<32x64, #q35.scheme<int8>>, %v_proj: !q35.packed<32x64, #q35.scheme<int8>>, %o_proj: !q35.packed<64x64, #q35.scheme<int8>>, %post_attention_layernorm: !q35.packed<64, #q35.scheme<fp16>>, %gate_proj: !q35.packed<128x64, #q35.scheme<int8>>, %up_proj: !q35.packed<128x64, #q35.scheme<int8>>, %down_proj: !q35.packed<64x128, #q35.scheme<int8>>) -> tensor<1x64xf16> {
    %h = q35.rmsnorm %x, %input_layernorm {eps = 1.000000e-05 : f32} : (tensor<1x64xf16>, !q35.packed<64, #q35.scheme<fp16>>) -> tensor<1x64xf16>
    %0 = q35.linear %h, %q_proj : (tensor<1x64xf16>, !q35.packed<64x64, #q35.scheme<int8>>) -> tensor<1x64xf16>
    %q = q35.rope %0, %pos {head_dim = 16 : i64, theta = 1.000000e+04 : f32} : (tensor<1x64xf16>, tensor<1xi32>) -> tensor<1x64xf16>
    %1 = q35.linear %h, %k_proj : (tensor<1x64xf16>, !q35.packed<32x64, #q35.scheme<int8>>) -> tensor<1x32xf16>
    %k = q35.rope %1, %pos {head_dim = 16 : i64, theta = 1.000000e+04 : f32} : (tensor<1x32xf16>, tensor<1xi32>) -> tensor<1x32xf16>
    %v = q35.linear %h, %v_proj : (tensor<1x64xf16>, !q35.packed<32x64, #q35.scheme<int8>>) -> tensor<1x32xf16>
    %a = q35.attention %q, %k, %v, %k_cache, %v_cache {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64} : (tensor<1x64xf16>, tensor<1x32xf16>, tensor<1x32xf16>, tensor<0x32xf16>, tensor<0x32xf16>) -> tensor<1x64xf16>
    %2 = q35.linear %a, %o_proj : (tensor<1x64xf16>, !q35.packed<64x64, #q35.scheme<int8>>) -> tensor<1x64xf16>
    %x_1 = q35.add %x, %2 : tensor<1x64xf16>
    %h_1 = q35.rmsnorm %x_1, %post_attention_layernorm {eps = 1.000000e-05 : f32} : (tensor<1x64xf16>, !q35.packed<64, #q35.scheme<fp16>>) -> tensor<1x64xf16>
    %3 = q35.linear %h_1, %gate_proj : (tensor<1x64xf16>, !q35.packed<128x64, #q35.scheme<int8>>) -> tensor<1x128xf16>
    %4 = q35.silu %3 : tensor<1x128xf16>
    %5 = q35.linear %h_1, %up_proj : (tensor<1x64xf16>, !q35.packed<128x64, #q35.scheme<int8>>) -> tensor<1x128xf16>
    %6 = q35.mul %4, %5 : tensor<1x128xf16>
    %7 = q35.linear %6, %down_proj : (tensor<1x128xf16>, !q35.packed<64x128, #q35.scheme<int8>>) -> tensor<1x64xf16>
    %x_2 = q35.add %x_1, %7 : tensor<1x64xf16>
    func.return %x_2 : tensor<1x64xf16>
  }
}
