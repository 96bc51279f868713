"""GPUs (NVIDIA, AMD): HBM-bound decode, tensor-core-bound prefill, tensor parallel over NVLink/Infinity Fabric.

Per kernel call on each of the n devices (the shared engine of `targets.target`):

    t_mem    = (activations + (weights + KV read + KV written) / n) / (eta_bw * B_hbm)
    t_tensor = 2 * MACs / n / peak_tensor[dtype]
    t_vector = sum over op classes of ALU ops / n / (peak_vector[dtype] / 2)
               (integer unpacking at INT32, f16 dequantization at packed FP16, f32 work at FP32)
    t_kernel = max(t_mem, (t_tensor + t_vector) / eta_c) + t_launch

The overlap rule (`units_overlap = False`): the HBM stream overlaps the SM's work, because the schedule stage
stages every weight tile in double-buffered copies (the next tile loads while this one is computed), but the
tensor-core and vector work of a tile add: one SM's warp schedulers issue both, and in the IR the dequantized
tile is an operand of the contraction in the same tile step (unpack -> dequantize -> contract, no buffer
between them). Decode (T = 1) streams every weight once per token: bound by t_mem, or by t_vector where the
unpacking ops per weight outrun the bytes per weight (q3p5 on an H100 at batch 1); unpacking is weight-side, so
batching amortises it. Prefill (T = P) does P MACs per weight loaded and is bound by t_tensor + t_vector (the
weights are dequantized once per token tile).

Devices: the fewest n, a power of two (tensor parallelism splits the heads evenly), with
(weights + KV cache) / n + activations <= HBM capacity. With n > 1, each decoder block does two all-reduces of
its output (after attention and after the MLP, Megatron-style), each a ring over the interconnect:

    t_allreduce = 2 (n-1)/n * A / (B_link / 2) + 2 (n-1) * t_hop

with A the block's output bytes (x batch) and B_link the per-device bandwidth of both directions together (a
ring sends in one). Links cost time only: the specs give no energy per bit for them.

Efficiency constants (eta_bw, eta_c, t_launch): `targets.calibration`, fitted on rows c7-c11 (A100).

Compiling: a tile is one thread block's working set, sized for the innermost level with a per-unit capacity
(shared memory per SM, LDS per CU), staged there in double-buffered copies from HBM.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from q35c.analysis.workload import Counts, Workload
from q35c.targets.levels import OnChipLevel, on_chip_levels
from q35c.targets.target import Cost, DoesNotFit, Footprint, Target, ring_allreduce


@dataclass(frozen=True)
class GpuTarget(Target):
    """A discrete GPU with HBM; several of them run one model tensor-parallel."""

    units_overlap: ClassVar[bool] = False
    """Tensor cores and vector ALUs share the SM's issue: their times add (see the module docstring)."""

    def tile_level(self, budget_bytes: int = 0) -> OnChipLevel:
        """The innermost on-chip level with a per-unit capacity (shared memory per SM, LDS per CU), one thread
        block's share of it (else the innermost on-chip level divided among the units)."""
        spec = self.spec
        on_chip = on_chip_levels(spec)
        per_unit = [(i, level) for i, level in on_chip if level.capacity_per_unit is not None]
        index, level = (per_unit or on_chip)[-1]
        unit = level.capacity_per_unit
        budget = unit.value if unit is not None else level.capacity_bytes / spec.compute_units.count.value
        return OnChipLevel(level.name, index, budget_bytes or int(budget), spec.compute_units.kind)

    def notes(self) -> tuple[str, ...]:
        own = "tensor-core and vector (unpacking, dequantization) time add per SM; HBM traffic overlaps both"
        return (own, *super().notes())

    def devices_needed(self, need: Footprint) -> int:
        room = self.device_bytes() - need.activation_bytes
        count = max(1, math.ceil((need.weight_bytes + need.kv_bytes) / room)) if room > 0 else 0
        if count == 0:
            raise DoesNotFit(f"{self.name}: the activations alone exceed one device's memory")
        return self._check_count(2 ** math.ceil(math.log2(count)), need)

    def explain_devices(self, need: Footprint, devices: int, work: Workload) -> str:
        text = super().explain_devices(need, devices, work)
        if devices > 1:
            text += f"; tensor parallel over {devices} (a power of two), two all-reduces per layer"
        return text

    def communication(self, work: Workload, devices: int) -> Cost:
        link = self.spec.interconnect
        if devices <= 1 or link is None or work.layers == 0:
            return Cost()
        seconds = 0.0
        moved = 0.0
        for block in work.blocks:
            each, sent = ring_allreduce(link, block.output_bytes, devices)
            seconds += 2 * block.calls * each
            moved += 2 * block.calls * sent * devices
        resource = f"{link.kind} all-reduce"
        return Cost(
            seconds=seconds,
            roofline_seconds=seconds,
            bytes=Counts({"link": moved}),
            limits=Counts({resource: seconds}),
        )
