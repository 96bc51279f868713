// tile rejects tile sizes that do not slice the scheme's storage, budgets nothing fits, and unknown targets.
// RUN: not q35c opt %s -p 'materialize-weights,tile{tile-k=64}' 2>&1 | filecheck %s --check-prefix=ALIGN
// RUN: not q35c opt %s -p 'materialize-weights,tile{budget-bytes=256}' 2>&1 | filecheck %s --check-prefix=BUDGET
// RUN: not q35c opt %s -p 'materialize-weights,tile{target=tpu}' 2>&1 | filecheck %s --check-prefix=TARGET
// RUN: not q35c opt %s -p 'materialize-weights,tile{tile-n=-8}' 2>&1 | filecheck %s --check-prefix=NEGATIVE
// RUN: not q35c opt %s -p 'materialize-weights,tile{target=h100-sxm budget-bytes=many}' 2>&1 | filecheck %s --check-prefix=OPTION
// RUN: not q35c opt %s -p 'materialize-weights,tile{budget-bytes=4096 weight-buffers=0}' 2>&1 | filecheck %s --check-prefix=BUFFERS

func.func @f(%x: tensor<1x256xf16>) -> tensor<1x64xf16> {
  %w = q35.weight "proj" : !q35.packed<64x256, #q35.scheme<q3p5, g = 128, container = dense>>
  %y = q35.linear %x, %w : (tensor<1x256xf16>, !q35.packed<64x256, #q35.scheme<q3p5, g = 128, container = dense>>) -> tensor<1x64xf16>
  func.return %y : tensor<1x64xf16>
}

// ALIGN:    q35c: error: {{.*}}: pass 'tile' failed: cannot tile the linear of weight 'proj': tile-k=64 does not align with q3p5:g=128:container=dense storage: K tiles must be multiples of 128 (whole quantization groups and whole storage words)
// BUDGET:   pass 'tile' failed: cannot tile the linear of weight 'proj': no tile of the linear (T=1, N=64, K=256, q3p5:g=128:container=dense) fits 256 bytes: the smallest allowed tile 1x8x128 (T x N x K) needs {{[0-9]+}}
// TARGET:   q35c: error: bad options for pass 'tile': unknown target 'tpu' (valid targets: {{.*}}h100-sxm{{.*}})
// NEGATIVE: pass 'tile' failed: tile-n must be at least 0 (0 = choose), got -8
// OPTION:   q35c: error: bad options for pass 'tile': option budget-bytes takes an integer, got many
// BUFFERS:  pass 'tile' failed: weight-buffers must be at least 1, got 0
