"""The host CPU: measured memory bandwidth and measured float32 matmul throughput.

Per kernel call (the shared engine of `targets.target`):

    t_mem    = (weights + activations + KV read + KV written) / B_measured
    t_cpu    = 2 * MACs / F_measured + ALU ops / (F_measured / 2)
    t_kernel = max(t_mem, t_cpu)

B_measured is the STREAM-like bandwidth and F_measured the float32 BLAS rate `host_probe` measured on this
machine (cached, with the date); fp16 and integer work runs at the fp32 rate (numpy has no faster path), an
element-wise op in the issue slot of one MAC (half the flop rate, as in `targets.target`). There are no
calibration rows for the host, and the measured figures are already achieved rates, so efficiencies are 1.0 and
there is no launch overhead. One device.

Compiling: tiles are sized for one logical CPU's share of the L2 (the default rule, `Target.tile_level`); the
final IR is upstream MLIR that mlir-opt lowers and runs as it is.
"""

from __future__ import annotations

from dataclasses import dataclass

from q35c.targets.target import Target


@dataclass(frozen=True)
class HostTarget(Target):
    """The machine q35c runs on, described by measurement."""

    def notes(self) -> tuple[str, ...]:
        measured = self.spec.measured_at
        own = (f"bandwidth and FLOPS measured on this machine at {measured}",) if measured else ()
        return (*own, *super().notes())
