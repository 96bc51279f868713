"""Groq LPU: weights resident in SRAM across many chips, layers pipelined over C2C links, a static schedule.

A chip has no DRAM: weights and the KV cache must sit in the SRAM of the chips, less what each keeps free for
activations and stream buffers. So

    chips >= ceil((weights + KV cache) / (SRAM per chip - live activations))

(the fewest that hold the model, unless `--devices` asks for more). Successive layers sit on successive groups
of chips (a pipeline); within a group the chips split each layer (tensor parallel). With n chips and L layers a
group has g = max(1, n / L) chips (fewer chips than layers: each chip holds several layers and runs them in
turn). At batch 1 a token passes every group in turn, so per kernel call, on each of the g chips of its group:

    t_sram    = (activations + (weights + KV read + KV written) / g) / B_sram
    t_install = weight elements / g * bytes per element / R_install        (the MXM loads every weight block
                                                                             for a single vector at batch 1)
    t_mxm     = 2 * MACs / g / peak_mxm[dtype]
    t_vxm     = ALU ops / g / rate_vxm                                     (unpacking sub-8-bit weights to int8,
                                                                             norms, softmax: element-wise work)
    t_kernel  = max(t_sram, t_install, t_mxm, t_vxm)

and per pass the C2C traffic between the min(n, L) pipeline stages, plus two all-reduces per layer inside each
group of g >= 2 chips (as on GPUs):

    t_c2c = (stages - 1) * (A / B_link + t_hop) + 2 L * [2 (g-1)/g * A / (B_c2c / 2) + 2 (g-1) * t_hop]

with A a block's output bytes, B_link one link's bandwidth (one direction), B_c2c a chip's (both directions).

The trade-off of sub-8-bit weights is in these terms, not in a rule: a q3p5 model needs fewer chips than an
int8 one (weight bytes), but the MXM takes only int8 or fp16, so every token pays VXM ALU cycles for each weight
it unpacks (the data ops of the IR's unpack generics, by the counting rule of `_kernels.body_work`: 3.5 per
q3p5 dense weight, 2 per int4 weight) -- and with fewer chips per layer, fewer VXMs share them; each chip also
installs every weight it holds into the MXM as int8 per token, so fewer chips per layer means more install time
per chip.

R_install is `details.mxm_install_bytes_per_s` when the spec gives it, otherwise derived from the spec as one
vector (`details.vector_bytes`) per MXM array (`details.mxm_arrays`) per clock -- an assumption about how fast
weights enter the arrays, flagged in the target's notes. Weights wider than 16 bits are installed as fp16.

Everything is statically scheduled (no caches, no arbitration), so these times are deterministic: the same
program always takes the same cycles. There are no calibration rows for Groq: efficiencies are 1.0, with no
launch overhead.

Compiling: the MXM takes int8 or fp16, so linears keep integer codes and scale per group (the codes are unpacked
on the VXM); the SRAM is the only memory and the tile level (memory space 0, one chip's SRAM per tile), weights
are resident (nothing is staged), and tiles are capped at the MXM's 320 x 320 arrays (`details.mxm_array_dim`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from q35c.analysis.workload import Counts, KernelWork, Workload
from q35c.passes.tile_choice import TilePolicy
from q35c.targets.levels import OnChipLevel
from q35c.targets.target import Cost, Demand, DoesNotFit, Footprint, Target, ring_allreduce

INSTALL = "MXM weight install"
CITED_FIGURES = ("clock_hz", "details.mxm_arrays", "details.vector_bytes", "details.mxm_install_bytes_per_s")
"""The figures behind the derived weight-install rate (`install_rate`), cited with every costed result."""


@dataclass(frozen=True)
class GroqTarget(Target):
    """GroqChips in a pipeline of tensor-parallel groups, weights resident in SRAM."""

    keeps_int_codes: ClassVar[bool] = True

    def tile_level(self, budget_bytes: int = 0) -> OnChipLevel:
        """The SRAM, the only memory: weights are resident, a tile's budget is one chip's SRAM."""
        level = self.spec.memory[0]
        return OnChipLevel(level.name, 0, budget_bytes or int(level.capacity_bytes), "chip")

    def tile_policy(self, budget_bytes: int = 0, keep_int_codes: bool | None = None) -> TilePolicy:
        """Tiles capped at the MXM array (`details.mxm_array_dim`; a spec without it leaves them uncapped), any
        number of rows (no granule), weights resident (one buffer)."""
        base = super().tile_policy(budget_bytes, keep_int_codes)
        details = self.spec.details
        dim = int(details["mxm_array_dim"].value) if "mxm_array_dim" in details else None
        return TilePolicy(
            base.budget_bytes, align_n=1, max_n=dim, max_k=dim, weight_buffers=1, keep_int_codes=base.keep_int_codes
        )

    def describe_tiling(self, level: OnChipLevel) -> str:
        return "linears into kernels over MXM-sized weight tiles (320 x 320 at most)"

    def describe_placement(self, level: OnChipLevel) -> str:
        return "everything resident in SRAM: no copies; record peak SRAM use"

    def notes(self) -> tuple[str, ...]:
        return (
            "statically scheduled: these times are deterministic (no caches, no arbitration)",
            f"MXM weight install rate: {self.install_rate()[1]}",
            *super().notes(),
        )

    def cited_figures(self) -> tuple[str, ...]:
        return CITED_FIGURES

    def usable_sram(self, need: Footprint) -> float:
        """SRAM per chip for weights and KV cache: the capacity less the live activations."""
        return self.device_bytes() - need.activation_bytes

    def devices_needed(self, need: Footprint) -> int:
        room = self.usable_sram(need)
        if room <= 0:
            raise DoesNotFit(f"{self.name}: the activations alone exceed one chip's SRAM")
        return self._check_count(max(1, math.ceil((need.weight_bytes + need.kv_bytes) / room)), need)

    def explain_devices(self, need: Footprint, devices: int, work: Workload) -> str:
        room = self.usable_sram(need)
        return (
            f"{devices} chips: {(need.weight_bytes + need.kv_bytes) / 1e9:.2f} GB of weights and KV cache in "
            f"{room / 1e6:.0f} MB of SRAM per chip (less {need.activation_bytes / 1e6:.2f} MB of activations); "
            f"{work.layers} layers pipelined, {self.group(work, devices):.2f} chips per layer"
        )

    def group(self, work: Workload, devices: int) -> float:
        """Chips working on one layer at once: n / L, at least one."""
        return max(1.0, devices / max(1, work.layers))

    def share(self, work: Workload, devices: int) -> float:
        return 1.0 / self.group(work, devices)

    def active_devices(self, work: Workload, devices: int) -> float:
        return self.group(work, devices)

    def install_rate(self) -> tuple[float, str]:
        """(bytes/s the MXM arrays accept weights at, where the figure comes from)."""
        details = self.spec.details
        if "mxm_install_bytes_per_s" in details:
            q = details["mxm_install_bytes_per_s"]
            return q.value, q.cite()
        clock = self.spec.clock.value if self.spec.clock is not None else 0.0
        arrays, width = details["mxm_arrays"].value, details["vector_bytes"].value
        note = f"assumed one {width:.0f}-byte vector per MXM array per cycle: {arrays:.0f} x {width:.0f} B x clock"
        return arrays * width * clock, note

    def demands(self, kernel: KernelWork, share: float) -> tuple[list[Demand], dict[str, float], dict[str, float]]:
        demands, bytes_moved, ops = super().demands(kernel, share)
        rate, _ = self.install_rate()
        installed = sum(n * _install_bytes(dtype) for dtype, n in kernel.weight_elements.items())
        if installed and rate:
            demands.append(Demand(INSTALL, installed * share / rate, self.efficiency.compute))
        return demands, bytes_moved, ops

    def communication(self, work: Workload, devices: int) -> Cost:
        link = self.spec.interconnect
        layers = work.layers
        if devices <= 1 or link is None or layers == 0:
            return Cost()
        hop = link.hop_latency.value if link.hop_latency is not None else 0.0
        # without a per-link figure in the spec, one direction of the chip's aggregate (an upper bound)
        one_link = link.link_bandwidth.value if link.link_bandwidth is not None else link.bandwidth_bytes_per_s / 2
        payload = max((b.output_bytes for b in work.blocks), default=0.0)
        stages = min(devices, layers)
        seconds = (stages - 1) * (payload / one_link + hop)
        moved = (stages - 1) * payload
        g = devices // layers
        if g >= 2:
            each, sent = ring_allreduce(link, payload, g)
            seconds += 2 * layers * each
            moved += 2 * layers * sent * g
        return Cost(
            seconds=seconds,
            roofline_seconds=seconds,
            bytes=Counts({"link": moved}),
            limits=Counts({f"{link.kind} transfers": seconds}),
        )


def _install_bytes(dtype: str) -> float:
    """Bytes the MXM loads per weight: int8 codes 1, anything wider as fp16 (the widest type it takes)."""
    return 1.0 if dtype in ("int8", "int4", "int2", "int1") else 2.0
