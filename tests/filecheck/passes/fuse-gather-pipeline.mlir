// The targets' pipelines end their unpack stage with fuse-gather: in the IR after it (the IR every target
// costs, and the IR `--dump-ir` writes) the embedding's gather reads the quantized table's storage bytes of the
// rows it looks up; no generic unpacks the whole table. Every family, and a tensor-parallel placement (the
// table's rows split over two devices). The model is tiny's config.json with a q4_0 table of 256 x 64.
// RUN: q35c build %S/../../../examples/hf/tiny.json --quant q4_0 --target h100-sxm --print-ir-after unpack 2>&1 >/dev/null | filecheck %s --check-prefixes=CHECK,ALL
// RUN: q35c build %S/../../../examples/hf/tiny.json --quant q4_0 --target host --print-ir-after unpack 2>&1 >/dev/null | filecheck %s --check-prefixes=CHECK,ALL
// RUN: q35c build %S/../../../examples/hf/tiny.json --quant q4_0 --target m2-max --print-ir-after unpack 2>&1 >/dev/null | filecheck %s --check-prefixes=CHECK,ALL
// RUN: q35c build %S/../../../examples/hf/tiny.json --quant q4_0 --target groq-lpu --print-ir-after unpack 2>&1 >/dev/null | filecheck %s --check-prefixes=CHECK,ALL
// RUN: q35c build %S/../../../examples/hf/tiny.json --quant q4_0 --target h100-sxm --tp 2 --print-ir-after unpack 2>&1 >/dev/null | filecheck %s --check-prefixes=TP,ALL

// The decode step's entry: one generic before the decoder call, the gather; its body extracts the code's byte
// and the block's two scale bytes at row id from the storage (18-byte blocks: the code of column d in byte
// 2 + (d mod 16) of block d floordiv 32).
// ALL:         the decode step
// ALL:         IR Dump After unpack
// ALL-LABEL:   func.func @main(%ids: tensor<1xi32>
// ALL-NOT:     q35.kernel = "unpack"
// ALL:         linalg.generic
// ALL-SAME:    ins(%ids : tensor<1xi32>)
// ALL-SAME:    q35.kernel = "embed"
// ALL:         %[[ROW:.*]] = arith.index_cast %id : i32 to index
// ALL:         affine.apply affine_map<(d0, d1, d2, d3) -> ((((d1 * 18) + 2) + d2))> (%[[ROW]],
// CHECK:       tensor.extract %embed_tokens.codes[%[[ROW]], %{{.*}}] : tensor<256x36xi8>
// CHECK:       tensor.extract %embed_tokens.codes[%[[ROW]], %{{.*}}] : tensor<256x36xi8>
// CHECK:       tensor.extract %embed_tokens.codes[%[[ROW]], %{{.*}}] : tensor<256x36xi8>
// TP:          tensor.extract %embed_tokens.codes[%[[ROW]], %{{.*}}] : tensor<128x36xi8>
// TP:          tensor.extract %embed_tokens.codes[%[[ROW]], %{{.*}}] : tensor<128x36xi8>
// TP:          tensor.extract %embed_tokens.codes[%[[ROW]], %{{.*}}] : tensor<128x36xi8>
// ALL:         linalg.yield
// Nothing else runs in the entry before the decoder: no generic unpacking the table or decoding its scales.
// ALL-NOT:     linalg.generic
// ALL:         func.call @decoder
