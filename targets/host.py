"""The host CPU: measured memory bandwidth and float32 matmul throughput, and measured figures of the code q35c
generates for it.

Per kernel call, the shared engine of `targets.target` first:

    t_mem    = (weights + activations + KV read + KV written) / B_measured
    t_cpu    = 2 * MACs / F_measured + ALU ops / (F_measured / 2)
    t_engine = max(t_mem, t_cpu)

B_measured is the STREAM-like bandwidth and F_measured the float32 BLAS rate `host_probe` measured on this
machine (cached, with the date); fp16 and integer work runs at the fp32 rate (numpy has no faster path), an
element-wise op in the issue slot of one MAC (half the flop rate, as in `targets.target`). There are no
calibration rows for the host, and the measured figures are already achieved rates, so efficiencies are 1.0.

What the host adds (`kernel_cost`), every constant measured on this machine and shown, with its source, by
`q35c targets host` (the spec's `[details]`), none fitted to a model's end-to-end time:

    linear kernel of scheme class c (one row, decode):
        t = max(t_mem, weights * matvec_c) + linear_call
    linear kernel of scheme class c (many rows, prefill):
        t = max(t_mem, MACs * matmul_c) + linear_call
    any other kernel (embed, rmsnorm, rope, attention, silu, mul, add):
        t = max(t_mem, ops * elementwise_op) + elementwise_call       ops: ALU ops + MACs

- matvec_c, matmul_c (`details.generated_matvec_<c>_ps_per_weight`, `..._matmul_<c>_ps_per_mac`): the time per
  weight (per MAC) of the linear kernels q35c generates for scheme class c, measured with their weights in
  cache by `q35c.codegen.host.calibrate` on microkernels it compiles (tiny's linears, one thread, thread CPU
  time: the slope of time against weights). They replace t_cpu, the op count at the BLAS rate, which the
  generated code does not reach (or, for the integer matrix-vector path, beats). The class is the scheme named
  in the kernel's function (`linear.1x4096x4096.q4_0.f16` -> `q4_0`, `q3p5_g32_dense` -> `q3p5`);
- elementwise_op (`details.generated_elementwise_ps_per_op`): the time per op of the generated element-wise
  kernels, measured the same way on tiny's decoder function less its linears, at one token and at 16 (the slope
  of its time against its kernels' ops). It replaces t_cpu, which counts an op at half the BLAS flop rate: the
  generated loops are scalar, convert f16 to f32 element by element and keep reductions in memory. An
  embedding's gather is such a kernel: the pipeline's `fuse-gather` has it unpack only the looked-up rows, in
  its body, as the generated code does;
- linear_call, elementwise_call (`details.generated_linear_call_s`, `..._elementwise_call_s`): the fixed time
  of one kernel call of the generated code (the intercepts of the same fits, the decoder's per kernel). Most of
  it is OpenMP: every parallel loop nest forks
  and joins a team even on one thread (`details.parallel_region_s`, a C microkernel of the probe: about 1 us
  here), and a kernel lowers to one to three such loop nests, plus its buffers' malloc/free.

Where the generated code was measured, a call costs its measured fixed time and nothing more: loops too small
to pay for a fork run on the calling thread (`serial-small-loops`), so an element-wise call may fork no team at
all. Where a figure was not measured (no compiler, or `calibrate` never ran: the value is 0 and its source says
so), the host falls back: t_cpu as above for that kernel, and one parallel region as its fixed time; without
OpenMP that is 0 too.

The figures are for one thread (`q35c run --threads 1`); bandwidth and F_measured are all-thread figures. One
device.

Compiling: tiles are sized for one logical CPU's share of the L2 (the default rule, `Target.tile_level`); the
final IR is upstream MLIR that mlir-opt lowers and runs as it is.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from q35c.analysis.workload import Counts, KernelWork
from q35c.targets.cost import Cost
from q35c.targets.target import Target

GENERATED = "generated"
CALL = "kernel call (OpenMP fork/join, buffers)"


def scheme_class(function: str) -> str | None:
    """The scheme class of a linear kernel's function name (`linear.1x64x64.q3p5_g32_dense.f16` -> `q3p5`), or
    None when the name does not follow the `linear.<shape>.<scheme>.<dtype>` pattern."""
    parts = function.split(".")
    if len(parts) < 3 or parts[0] != "linear":
        return None
    return re.sub(r"_dense$", "", re.sub(r"_g\d+.*$", "", parts[2]))


@dataclass(frozen=True)
class HostTarget(Target):
    """The machine q35c runs on, described by measurement."""

    def figure(self, key: str) -> float:
        """A `[details]` figure of the spec; 0.0 where the spec lacks it (not measured)."""
        found = self.spec.details.get(key)
        return 0.0 if found is None else found.value

    def call_seconds(self, kernel: KernelWork) -> float:
        """The fixed time of one call of `kernel` in the generated code (see the module docstring)."""
        key = "generated_linear_call_s" if kernel.name == "linear" else "generated_elementwise_call_s"
        if self.figure("generated_linear_call_s"):  # measured: what the calls of the generated code take
            return max(self.figure(key), 0.0)
        return self.figure("parallel_region_s")

    def generated_compute(self, kernel: KernelWork) -> tuple[str, float] | None:
        """(what, seconds) the generated kernel computes for: a linear from its scheme class's measured rate,
        any other kernel from the element-wise rate; None where the rate was not measured."""
        macs = sum(kernel.macs.values())
        if kernel.name != "linear":
            rate = self.figure("generated_elementwise_ps_per_op") * 1e-12
            ops = kernel.alu_ops + macs
            if not rate or not ops:
                return None
            return f"{GENERATED} {kernel.name}", ops * rate
        scheme = scheme_class(kernel.function)
        weights = sum(kernel.weight_elements.values())
        if scheme is None or not weights or not macs:
            return None
        if macs <= weights:  # one row: a matrix-vector product
            rate = self.figure(f"generated_matvec_{scheme}_ps_per_weight") * 1e-12
            return (f"{GENERATED} {scheme} matvec", weights * rate) if rate else None
        rate = self.figure(f"generated_matmul_{scheme}_ps_per_mac") * 1e-12
        return (f"{GENERATED} {scheme} matmul", macs * rate) if rate else None

    def kernel_cost(self, kernel: KernelWork, active: float = 1.0) -> Cost:
        base = super().kernel_cost(kernel, active)
        call = self.call_seconds(kernel)
        generated = self.generated_compute(kernel)
        if generated is None:
            if not call:
                return base
            limits = dict(base.limits)
            limits[CALL] = call
            return dataclasses.replace(base, seconds=base.seconds + call, limits=Counts(limits))
        what, compute = generated
        main = self.spec.main_memory
        memory = base.bytes.get(main.name, 0.0) / main.bandwidth_bytes_per_s if main.bandwidth_bytes_per_s else 0.0
        binding = (what, compute) if compute >= memory else (f"{main.name} bandwidth", memory)
        limits = {binding[0]: binding[1], CALL: call}
        return dataclasses.replace(
            base, seconds=binding[1] + call, limits=Counts({k: v for k, v in limits.items() if v > 0})
        )

    def notes(self) -> tuple[str, ...]:
        measured = self.spec.measured_at
        own = (f"bandwidth and FLOPS measured on this machine at {measured}",) if measured else ()
        region = self.figure("parallel_region_s")
        if self.figure("generated_linear_call_s"):
            linear = max(self.figure("generated_linear_call_s"), 0.0)
            other = max(self.figure("generated_elementwise_call_s"), 0.0)
            generated = (
                f"generated code measured on this machine: {linear * 1e6:.3g} us per linear call, {other * 1e6:.3g} us"
                " per other kernel call, rates per scheme (`q35c targets host` lists every figure)",
            )
        else:
            generated = (
                f"generated code not measured: one OpenMP region ({region * 1e6:.3g} us) per kernel call; "
                "`python -m q35c.codegen.host.calibrate` measures it",
            )
        return (*own, *generated, *super().notes())
