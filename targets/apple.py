"""Apple silicon: one GPU sharing unified memory with the CPU, FP16 at the FP32 rate.

Per kernel call (the shared engine of `targets.target`):

    t_mem    = (weights + activations + KV read + KV written) / (eta_bw * B_unified)
    t_gpu    = (2 * MACs / peak[fp16] + ALU ops / peak[op dtype]) / eta_c
    t_kernel = max(t_mem, t_gpu) + t_launch

The GPU's ALUs do both the matrix work and the element-wise work (unpacking, dequantization, norms), so their
times add on one unit. FP16 runs at the FP32 rate: the specs give the two equal peaks, and integer ops run at
the fp32 rate of the same ALUs. Decode is bound by t_mem; prefill by t_gpu, where dequantizing quantized weights
adds ALU time that fp16 weights do not need.

Devices: one Mac (the specs' `max_devices`); a model whose weights, KV cache and activations exceed the unified
memory does not fit. Energy: per-action energies plus the static power for the whole time; the power figure
is a whole-system reading (see the spec), so the cap is loose.

Efficiency constants (eta_bw, eta_c, t_launch): `targets.calibration`, fitted on rows c1-c6 (M2 Max).
"""

from __future__ import annotations

from dataclasses import dataclass

from q35c.targets.target import Target


@dataclass(frozen=True)
class AppleTarget(Target):
    """An Apple M-series chip: the shared engine with one GPU unit and unified memory."""
