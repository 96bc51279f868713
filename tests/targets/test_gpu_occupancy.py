"""Occupancy from ptxas resources against the spec's SM limits, and where it enters the GPU cost."""

from __future__ import annotations

from dataclasses import replace

import pytest

from q35c.analysis.workload import KernelWork
from q35c.targets import gpu_occupancy
from q35c.targets.gpu_occupancy import Resources, SmLimits, issue_factor, kernel_class, occupancy, sm_limits
from q35c.targets.registry import get_target


def h100() -> SmLimits:
    limits = sm_limits(get_target("h100-sxm").spec)
    assert limits is not None
    return limits


def test_nvidia_specs_have_sm_limits_and_amd_does_not() -> None:
    assert h100().arch == "sm_90" and h100().warps_to_issue == 16
    a100 = sm_limits(get_target("a100-sxm").spec)
    assert a100 is not None and a100.arch == "sm_80"
    assert a100.shared_memory_per_sm_bytes < h100().shared_memory_per_sm_bytes
    assert sm_limits(get_target("mi300x").spec) is None


@pytest.mark.parametrize(
    ("res", "blocks", "limiter"),
    [
        (Resources(24, 0, 256), 8, "threads"),  # 2048 threads per SM
        (Resources(64, 0, 256), 4, "registers"),  # 64 x 32 = 2048 registers per warp, 32 warps
        (Resources(40, 0, 256), 6, "registers"),  # 40 -> 1280 per warp: 51 warps, 6 blocks of 8
        (Resources(62, 192512, 512), 1, "shared memory"),  # (192512 + 1024) B: one per 233472 B
        (Resources(96, 100000, 512), 1, "registers"),  # 3072 per warp: 21 warps, one block of 16
        (Resources(16, 0, 32), 32, "threads"),  # at most 32 blocks
    ],
)
def test_occupancy_as_the_calculator_counts_it(res: Resources, blocks: int, limiter: str) -> None:
    occ = occupancy(h100(), res)
    assert (occ.blocks, occ.limiter) == (blocks, limiter)
    assert occ.warps == blocks * -(-res.threads // 32)


def test_a_block_larger_than_the_sm_does_not_launch() -> None:
    assert occupancy(h100(), Resources(32, 300_000, 256)).blocks == 0


def test_issue_factor_needs_schedulers_times_latency_warps() -> None:
    limits = h100()
    assert issue_factor(limits, occupancy(limits, Resources(32, 0, 256))) == 1.0
    assert issue_factor(limits, occupancy(limits, Resources(255, 0, 256))) == 0.5  # one block of 8 warps
    slow = replace(limits, dependent_issue_latency_cycles=6)
    assert issue_factor(slow, occupancy(slow, Resources(96, 100000, 512))) == pytest.approx(16 / 24)


def test_kernel_classes_of_costed_kernels() -> None:
    gemv = KernelWork("linear", "linear.1x4096x4096.q3p5_g128_dense.f16", 1)
    mma = KernelWork("linear", "linear.512x4096x4096.q4_0.f16", 1)
    assert kernel_class(gemv) == "linear.gemv.q3p5"
    assert kernel_class(mma) == "linear.mma.q4_0"
    assert kernel_class(KernelWork("attention", "decoder", 32)) == "attention"


def test_low_occupancy_scales_the_compute_efficiency(monkeypatch: pytest.MonkeyPatch) -> None:
    target = get_target("h100-sxm")
    kernel = KernelWork("linear", "linear.1x4096x4096.q3p5_g128_dense.f16", 1)
    monkeypatch.setattr(gpu_occupancy, "resource_table", lambda arch: {"linear.gemv.q3p5": Resources(255, 0, 256)})
    slower = gpu_occupancy.with_occupancy(target, kernel)
    assert slower.efficiency.compute == pytest.approx(target.efficiency.compute * 0.5)
    assert slower.efficiency.bandwidth == target.efficiency.bandwidth
    monkeypatch.setattr(gpu_occupancy, "resource_table", lambda arch: {"linear.gemv.q3p5": Resources(32, 0, 256)})
    assert gpu_occupancy.with_occupancy(target, kernel) is target
    amd = get_target("mi300x")
    assert gpu_occupancy.with_occupancy(amd, kernel) is amd


def test_the_repository_data_drives_the_notes() -> None:
    notes = " ".join(get_target("h100-sxm").notes())
    assert "occupancy (sm_90; registers and shared memory from ptxas" in notes
    assert "GEMV " in notes and "MMA " in notes and "warps per SM" in notes
    assert "occupancy" not in " ".join(get_target("mi300x").notes())


def test_predictions_do_not_need_a_toolkit(monkeypatch: pytest.MonkeyPatch) -> None:
    """The cost reads the repository's data: with no nvcc reachable, a GPU prediction is the same."""
    from q35c.predict.predictor import Predictor, Scenario

    def predict() -> tuple[float | None, float | None]:
        result = Predictor("tiny", None, Scenario(1, 64, 16), ()).predict(get_target("h100-sxm"))
        return result.decode_tok_s, result.decode_tok_s_low

    before = predict()
    monkeypatch.setenv("PATH", "")
    assert predict() == before
