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

Devices: the placement rule of `targets.placement` (tensor parallel within a node of `devices_per_node`,
pipeline stages across nodes), compiled by the `shard` stage: each decoder block of a tensor-parallel module does
two all-reduces of its output (after attention and after the MLP, Megatron-style), ring all-reduces over NVLink or
Infinity Fabric, and stages in different nodes exchange the hidden state over the network (`targets.links`).

Efficiency constants (eta_bw, eta_c, t_launch): `targets.calibration`, fitted on rows c7-c11 (A100).

Compiling: a tile is one thread block's working set, sized for the innermost level with a per-unit capacity
(shared memory per SM, LDS per CU), staged there in double-buffered copies from HBM. N tiles are 16 rows where
that moves no more bytes than a wider tile (`GEMV_ROWS`: decode), else as wide as fits (prefill).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar

from q35c.passes.tile_choice import TilePolicy
from q35c.targets.levels import OnChipLevel, on_chip_levels
from q35c.targets.target import Target

GEMV_ROWS = 16
"""N tiles of a GPU linear kernel: its thread block has 16 warps, and a GEMV (decode) gives each warp a row, so
16 rows keep every warp busy; N tiles are multiples of it (the MMA path's 16-column fragments too). Where a
narrower tile moves no more bytes (a decode step reads each weight once either way), 16 rows give several tiles
per SM, so a block's next weight tile streams in while it computes one; the widest tile that fits shared memory
leaves one tile per block and SMs idle (4096 rows in tiles of 48 are 86 tiles for 132 SMs)."""

if TYPE_CHECKING:
    from q35c.analysis.workload import KernelWork
    from q35c.targets.cost import Cost


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

    def tile_policy(self, budget_bytes: int = 0, keep_int_codes: bool | None = None) -> TilePolicy:
        """The shared policy, N tiles of GEMV_ROWS rows preferred where they move no more bytes (see
        `GEMV_ROWS`)."""
        base = super().tile_policy(budget_bytes, keep_int_codes)
        return replace(base, align_n=GEMV_ROWS, prefer_n=GEMV_ROWS)

    def notes(self) -> tuple[str, ...]:
        own = "tensor-core and vector (unpacking, dequantization) time add per SM; HBM traffic overlaps both"
        from q35c.targets.gpu_occupancy import notes as occupancy_notes

        return (own, *occupancy_notes(self.spec), *super().notes())

    def kernel_cost(self, kernel: KernelWork, *args: Any, **kwargs: Any) -> Cost:
        """The shared engine's cost, with the compute efficiency scaled by the kernel's occupancy (ptxas data;
        `targets.gpu_occupancy`)."""
        from q35c.targets.gpu_occupancy import with_occupancy

        return Target.kernel_cost(with_occupancy(self, kernel), kernel, *args, **kwargs)
