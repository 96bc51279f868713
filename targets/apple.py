"""Apple silicon: one GPU sharing unified memory with the CPU, FP16 at the FP32 rate.

Per kernel call (the shared engine of `targets.target`):

    t_mem    = (weights + activations + KV read + KV written) / (eta_bw * B_unified)
    t_gpu    = (2 * MACs / peak[fp16] + ALU ops / (peak[op dtype] / 2)) / eta_c
    t_kernel = max(t_mem, t_gpu) + t_launch

The GPU's ALUs do both the matrix work and the element-wise work (unpacking, dequantization, norms), so their
times add on one unit. FP16 runs at the FP32 rate: the specs give the two equal peaks. The specs give no integer
rate, so integer ops (the shifts of unpacking) take one FP32 issue slot each, at peak / 2. Prefill is bound by
t_gpu, where dequantizing quantized weights adds ALU time that fp16 weights do not need. At batch 1 a decode
step does one MAC and A weight-side ALU ops per weight (A from the IR: 2.0 for int8, 4.6 for q4_0, 5.5 for q3p5
dense), so it stays bound by t_mem while

    (1 + A) / (eta_c * peak / 2)  <  bytes per weight / (eta_bw * B_unified)

With the fitted constants, on an M2 Max (13.6 TFLOPS, 400 GB/s) that holds up to A = 7.3 at q4_0's 0.5625
bytes per weight and A = 6.0 at q3p5 dense's 0.469 (g = 128); an M1 Max (10.6 TFLOPS, the same bandwidth) allows
A = 5.5 and 4.4, so it is unpacking-bound at q3p5.

Devices: one Mac (the specs' `max_devices`); a model whose weights, KV cache and activations exceed the unified
memory does not fit. Energy: per-action energies plus the static power for the whole time; the power figure
is a whole-system reading (see the spec), so the cap is loose.

Efficiency constants (eta_bw, eta_c, t_launch): `targets.calibration`, fitted on rows c1-c6 (M2 Max).

Compiling: the specs' only on-chip level is the system-level cache (SLC), shared by the chip, so tiles are sized
for an assumed threadgroup memory of `THREADGROUP_BYTES` per threadgroup, numbered as the memory space after the
spec's levels (2), and staged there in double-buffered copies from unified memory. The SLC serves the re-reads
whose working set it holds (`targets.levels.serving_level`): their energy, no time (the specs give no SLC
bandwidth).
"""

from __future__ import annotations

from dataclasses import dataclass

from q35c.targets.levels import OnChipLevel
from q35c.targets.target import Target

THREADGROUP_BYTES = 32 * 1024
"""Threadgroup memory assumed per Apple GPU threadgroup: the Apple specs have no on-chip level. 32 KiB is the
Metal limit `maxThreadgroupMemoryLength` on M-series GPUs; it is an assumption here, overridable with the
`budget-bytes` pipeline option (or the tile pass's option)."""


@dataclass(frozen=True)
class AppleTarget(Target):
    """An Apple M-series chip: the shared engine with one GPU unit and unified memory."""

    def tile_level(self, budget_bytes: int = 0) -> OnChipLevel:
        """An assumed threadgroup memory of THREADGROUP_BYTES (`budget_bytes` overrides it), the memory space after
        the spec's levels. The system-level cache is shared by the whole chip and managed by hardware, not a place
        for tiles; a spec that gives an on-chip level split per unit (`capacity_per_unit_bytes`) gets the default
        rule instead."""
        if any(level.on_chip and level.capacity_per_unit is not None for level in self.spec.memory):
            return super().tile_level(budget_bytes)
        budget = budget_bytes or THREADGROUP_BYTES
        return OnChipLevel("threadgroup", len(self.spec.memory), budget, "threadgroup", assumed=True)
