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
"""

from __future__ import annotations

from dataclasses import dataclass

from q35c.targets.target import Target


@dataclass(frozen=True)
class HostTarget(Target):
    """The machine q35c runs on, described by measurement."""
