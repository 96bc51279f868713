// schedule-memory needs a known target, and fails naming the kernel, its tile, its weights and the capacity when a
// tile does not fit the tile level (Apple: an assumed 32 KiB of threadgroup memory).
// RUN: not q35c opt %s -p 'materialize-weights,tile{tile-n=256},unpack-bits,schedule-memory{target=m2-max}' 2>&1 | filecheck %s --check-prefix=FIT
// RUN: not q35c opt %s -p 'materialize-weights,tile,unpack-bits,schedule-memory' 2>&1 | filecheck %s --check-prefix=NOTARGET
// RUN: not q35c opt %s -p 'materialize-weights,tile,unpack-bits,schedule-memory{target=tpu}' 2>&1 | filecheck %s --check-prefix=TARGET
// Without target=NAME the memory comes as options; they must name the tile level's space and budget.
// RUN: not q35c opt %s -p 'materialize-weights,tile,unpack-bits,schedule-memory{spaces=hbm,smem tile-space=2 budget-bytes=4096}' 2>&1 | filecheck %s --check-prefix=SPACE
// RUN: not q35c opt %s -p 'materialize-weights,tile,unpack-bits,schedule-memory{spaces=hbm,smem}' 2>&1 | filecheck %s --check-prefix=BUDGET
// RUN: not q35c opt %s -p 'materialize-weights,tile{tile-n=256},unpack-bits,schedule-memory{spaces=dram,threadgroup budget-bytes=32768 per=threadgroup}' 2>&1 | filecheck %s --check-prefix=UNNAMED

func.func @f(%x: tensor<1x4096xf16>) -> tensor<1x512xf16> {
  %w = q35.weight "up_proj" : !q35.packed<512x4096, #q35.scheme<q3p5, g = 128, container = dense>>
  %y = q35.linear %x, %w : (tensor<1x4096xf16>, !q35.packed<512x4096, #q35.scheme<q3p5, g = 128, container = dense>>) -> tensor<1x512xf16>
  func.return %y : tensor<1x512xf16>
}

// FIT:      pass 'schedule-memory' failed: tile 1x256x4096 (T x N x K) of kernel @linear.1x512x4096.q3p5_g128_dense.f16 (q3p5:g=128:container=dense; weights: up_proj) needs {{[0-9]+}} bytes of threadgroup at its peak, but the budget is 32768 per threadgroup: codes_ring tensor<2x256x448xi32> = 917504 B,
// NOTARGET: pass 'schedule-memory' failed: schedule-memory needs a target, e.g. schedule-memory{target=h100-sxm}
// TARGET:   q35c: error: bad options for pass 'schedule-memory': unknown target 'tpu' (valid targets: {{.*}}h100-sxm
// SPACE:    pass 'schedule-memory' failed: tile-space=2 names no space of hbm,smem
// BUDGET:   pass 'schedule-memory' failed: schedule-memory needs budget-bytes (one tile's share of smem)
// UNNAMED:  needs {{[0-9]+}} bytes of threadgroup at its peak, but the budget is 32768 per threadgroup:
