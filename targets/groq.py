"""Groq LPU: weights resident in SRAM across many chips, layers pipelined over C2C links, a static schedule.

A chip has no DRAM: weights and the KV cache must sit in the SRAM of the chips, less what each keeps free for
activations and stream buffers. The placement (`targets.placement`) is the one every family follows: a
tensor-parallel group of at most a GroqNode (8 chips) per pipeline stage, stages across nodes, consecutive layers
per stage; the fewest chips whose fullest stage fits 95% of 230 MB per chip, unless `--devices` or `--tp/--pp`
say otherwise. The `shard` stage compiles it: each chip's IR holds its slices of its stage's layers (heads and
FFN columns, row-split o_proj and down_proj with an all-reduce after each, the vocabulary-split embedding and
lm_head), and `q35.transfer`s carry the hidden state from stage to stage.

Per kernel call, on each chip of its stage (the shared engine of `targets.target`, over that chip's IR):

    t_sram    = (activations + weights + KV read + KV written) / B_sram
    t_install = weight elements * bytes per element / R_install      (at batch 1 the MXM installs every weight
                                                                      block for a single vector)
    t_mxm     = 2 * MACs / peak_mxm[dtype]
    t_vxm     = ALU ops / rate_vxm                                   (unpacking sub-8-bit weights to int8,
                                                                      norms, softmax: element-wise work)
    t_kernel  = max(t_sram, t_install, t_mxm, t_vxm)

and the collectives of the IR over C2C (`targets.links`): all-reduces inside a stage's group over the peer
links of a node (`interconnect.peer_links` x 14 GB/s per peer, one-shot: one hop), transfers between stages
(across nodes: `system.hops_between_nodes` hops). A token passes the stages in turn: per-user latency is the sum
of the stages; with every stage on a different sequence the pipeline completes a step per slowest stage
(`pipeline_tok_s`).

The trade-off of sub-8-bit weights is in these terms, not in a rule: a q3p5 model needs fewer chips than an
int8 one (weight bytes), but the MXM takes only int8 or fp16, so every token pays VXM ALU cycles for each weight
it unpacks (the data ops of the IR's unpack generics: 3.5 per q3p5 dense weight, 2 per int4 weight) -- and with
fewer chips per layer, fewer VXMs share them; each chip also installs every weight it holds into the MXM as int8
per token, so fewer chips per layer means more install time per chip.

R_install is `details.mxm_install_bytes_per_s`, uncertain: the sources give the arrays, vector width and clock
but no install rate, so the spec gives the readings as a range (one vector per array per cycle, 1.15 TB/s, to
the SRAM's read rate, 25.3 TB/s; the value is their geometric middle) and the prediction's range shows them.
Weights wider than 16 bits are installed as fp16. MACs run at the rate of the dtype the IR multiplies: the
pipeline keeps integer weight codes, but activations stay f16, so the MXM's fp16 rate applies (no pass
quantizes activations to int8 yet).

Everything is statically scheduled (no caches, no arbitration), so these times are deterministic: the same
program always takes the same cycles. There are no calibration rows for Groq: efficiencies are 1.0, with no
launch overhead.

Compiling: the MXM takes int8 or fp16, so linears keep integer codes and scale per group (the codes are unpacked
on the VXM); the SRAM is the only memory and the tile level (memory space 0, one chip's SRAM per tile), weights
are resident (nothing is staged), and tiles are capped at the MXM's 320 x 320 arrays (`details.mxm_array_dim`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from q35c.analysis.workload import KernelWork
from q35c.passes.tile_choice import TilePolicy
from q35c.targets.levels import OnChipLevel
from q35c.targets.target import Demand, Target

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

    def install_rate(self) -> tuple[float, str]:
        """(bytes/s the MXM arrays accept weights at, where the figure comes from)."""
        details = self.spec.details
        if "mxm_install_bytes_per_s" in details:
            q = details["mxm_install_bytes_per_s"]
            return q.value, q.cite()
        clock = self.spec.clock.value if self.spec.clock is not None else 0.0
        arrays, width = details["mxm_arrays"].value, details["vector_bytes"].value
        note = f"no install rate in the spec: one {width:.0f}-byte vector per MXM array per cycle assumed"
        return arrays * width * clock, note

    def demands(self, kernel: KernelWork, share: float) -> tuple[list[Demand], dict[str, float], dict[str, float]]:
        demands, bytes_moved, ops = super().demands(kernel, share)
        rate, _ = self.install_rate()
        installed = sum(n * _install_bytes(dtype) for dtype, n in kernel.weight_elements.items())
        if installed and rate:
            demands.append(Demand(INSTALL, installed * share / rate, self.efficiency.compute))
        return demands, bytes_moved, ops


def _install_bytes(dtype: str) -> float:
    """Bytes the MXM loads per weight: int8 codes 1, anything wider as fp16 (the widest type it takes)."""
    return 1.0 if dtype in ("int8", "int4", "int2", "int1") else 2.0
