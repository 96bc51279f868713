"""The host's measured figures of generated code: the probe's OpenMP region microkernel, the cached
generated-code figures (`host-codegen.json`) as spec details with their source, and how the host cost model
uses them (measured rates where there are any, one region per call where there are none)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from types import MappingProxyType

import pytest

from q35c.analysis.workload import Counts, KernelWork
from q35c.targets import host_probe
from q35c.targets.host import CALL, HostTarget, scheme_class
from q35c.targets.registry import get_target
from q35c.targets.target import Target

MATVEC_S = 500e-12
CALL_S = 3e-6
ELEMENTWISE_CALL_S = 0.7e-6
ELEMENTWISE_OP_S = 2e-9


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("Q35C_CACHE_DIR", str(tmp_path))
    host_probe.save(host_probe.measure(array_bytes=1 << 16, matmul_n=32, min_seconds=0.0, runs=3))
    yield tmp_path


def figures(**changes: object) -> host_probe.GeneratedCode:
    found = host_probe.GeneratedCode(
        measured_at="2026-01-01T00:00:00+00:00",
        machine=host_probe.current_machine(),
        generator=host_probe.generator_digest(),
        threads=1,
        microkernels="test figures",
        linear_call_s=CALL_S,
        elementwise_call_s=ELEMENTWISE_CALL_S,
        elementwise_s_per_op=ELEMENTWISE_OP_S,
        matvec_s_per_weight={"q4_0": MATVEC_S},
        matmul_s_per_mac={"q4_0": MATVEC_S / 2},
    )
    return dataclasses.replace(found, **changes)  # type: ignore[arg-type]


def linear(rows: int = 1, k: int = 4096, n: int = 4096, scheme: str = "q4_0") -> KernelWork:
    return KernelWork(
        name="linear",
        function=f"linear.{rows}x{n}x{k}.{scheme}.f16",
        calls=1,
        macs=Counts({"fp16": float(rows * n * k)}),
        weight_alu=Counts({"int": 2.5 * n * k, "fp32.mul": float(n * k)}),
        weight_bytes=n * k * 0.5625,
        weight_elements=Counts({"fp16": float(n * k)}),
        activation_read=2.0 * rows * k,
        activation_written=2.0 * rows * n,
    )


def elementwise(ops: float = 10_000.0) -> KernelWork:
    return KernelWork(
        name="rmsnorm", function="decoder", calls=1, token_alu=Counts({"fp32.mul": ops}), activation_read=2.0e3
    )


def host() -> HostTarget:
    target = get_target("host")
    assert isinstance(target, HostTarget)
    return target


def test_scheme_class_is_the_scheme_in_the_kernel_name_without_its_group() -> None:
    assert scheme_class("linear.1x64x64.q3p5_g32_dense.f16") == "q3p5"
    assert scheme_class("linear.16x4096x4096.q4_0.f16") == "q4_0"
    assert scheme_class("linear.1x64x64.int4_g128.f16") == "int4"
    assert scheme_class("decoder") is None


def test_the_probe_times_an_openmp_region_when_a_compiler_is_present() -> None:
    if host_probe.region_library() is None:
        pytest.skip("no clang with OpenMP")
    m = host_probe.load_cached()
    assert m is not None and m.parallel_region_s is not None and len(m.region_samples) == 3
    assert 0 < m.parallel_region_s < 1e-3  # a fork/join, not a sleep
    region = host().spec.details["parallel_region_s"]
    assert region.value == m.parallel_region_s and "C microkernel" in region.note


def test_generated_figures_round_trip_and_belong_to_their_machine(cache: Path) -> None:
    assert host_probe.load_generated() is None
    found = figures()
    host_probe.save_generated(found)
    assert host_probe.load_generated() == found
    other = dataclasses.replace(found.machine, cpu_model="another CPU")
    host_probe.save_generated(dataclasses.replace(found, machine=other))
    assert host_probe.load_generated() is None


def test_spec_details_carry_the_figures_with_their_source() -> None:
    unmeasured = host().spec.details
    assert unmeasured["generated_matvec_q4_0_ps_per_weight"].value == 0
    assert "not measured" in unmeasured["generated_linear_call_s"].source
    host_probe.save_generated(figures())
    details = host().spec.details
    assert details["generated_matvec_q4_0_ps_per_weight"].value == pytest.approx(MATVEC_S * 1e12)
    assert details["generated_matvec_q4_1_ps_per_weight"].value == 0  # a class not measured
    assert details["generated_linear_call_s"].value == CALL_S
    assert details["generated_elementwise_ps_per_op"].value == pytest.approx(ELEMENTWISE_OP_S * 1e12)
    assert "test figures" in details["generated_linear_call_s"].source


def test_a_linear_costs_its_measured_rate_or_memory_plus_its_call() -> None:
    host_probe.save_generated(figures())
    target = host()
    bandwidth = target.spec.main_memory.bandwidth_bytes_per_s
    kernel = linear()
    cost = target.kernel_cost(kernel)
    memory = Target.kernel_cost(target, kernel).bytes["dram"] / bandwidth
    assert cost.seconds == pytest.approx(max(memory, 4096 * 4096 * MATVEC_S) + CALL_S)
    assert cost.limits[CALL] == pytest.approx(CALL_S)
    many = target.kernel_cost(linear(rows=16))
    assert many.seconds >= 16 * 4096 * 4096 * MATVEC_S / 2 + CALL_S - 1e-12
    other = target.kernel_cost(linear(scheme="q4_1"))  # not measured: the engine's time, plus the call
    assert other.seconds == pytest.approx(Target.kernel_cost(target, linear(scheme="q4_1")).seconds + CALL_S)


def test_an_elementwise_kernel_costs_its_ops_at_the_measured_rate_plus_its_call() -> None:
    host_probe.save_generated(figures())
    target = host()
    bandwidth = target.spec.main_memory.bandwidth_bytes_per_s
    small, large = target.kernel_cost(elementwise(1e3)), target.kernel_cost(elementwise(1e6))
    memory = small.bytes["dram"] / bandwidth
    call = ELEMENTWISE_CALL_S  # measured: the call costs what the generated code was measured to take
    assert small.seconds == pytest.approx(max(memory, 1e3 * ELEMENTWISE_OP_S) + call)
    assert large.seconds - small.seconds == pytest.approx((1e6 - 1e3) * ELEMENTWISE_OP_S, rel=1e-6)


def test_an_embedding_gather_costs_all_its_ops_at_the_element_wise_rate() -> None:
    """A gather unpacks the rows it reads in its body (fuse-gather): every ALU op of it, weight-side ones too,
    at the generated element-wise rate."""
    host_probe.save_generated(figures())
    target = host()
    gather = KernelWork(
        name="embed",
        function="main",
        calls=1,
        weight_alu=Counts({"int": 1e3}),
        weight_bytes=4096.0,
        token_alu=Counts({"int": 3e4, "fp32.mul": 4096.0}),
    )
    cost = target.kernel_cost(gather)
    memory = cost.bytes["dram"] / target.spec.main_memory.bandwidth_bytes_per_s
    assert cost.seconds == pytest.approx(max(memory, (1e3 + 3e4 + 4096) * ELEMENTWISE_OP_S) + ELEMENTWISE_CALL_S)


def test_without_generated_figures_each_call_costs_one_parallel_region() -> None:
    target = host()
    region = target.figure("parallel_region_s")
    for kernel in (linear(), elementwise()):
        base = Target.kernel_cost(target, kernel)
        assert target.kernel_cost(kernel).seconds == pytest.approx(base.seconds + region)
    bare = HostTarget(dataclasses.replace(target.spec, details=MappingProxyType({})), target.efficiency)
    assert bare.kernel_cost(linear()) == Target.kernel_cost(bare, linear())  # nothing measured: the engine


def test_figures_of_another_code_generator_are_not_used(cache: Path) -> None:
    host_probe.save_generated(figures())
    assert host_probe.load_generated() == figures()
    host_probe.save_generated(figures(generator="0" * 16))  # measured on code another generator made
    assert host_probe.load_generated() is None


def test_the_generator_digest_follows_the_sources(monkeypatch: pytest.MonkeyPatch) -> None:
    digest = host_probe.generator_digest.__wrapped__()
    assert len(digest) == 16 and digest == host_probe.generator_digest()
    monkeypatch.setattr(host_probe, "GENERATOR_PACKAGES", ("q35c.passes",))  # other sources: another digest
    assert host_probe.generator_digest.__wrapped__() != digest
    modules = set()
    for module in ("q35c.targets.pipeline", "q35c.targets.pass_options"):  # single modules count by their text
        monkeypatch.setattr(host_probe, "GENERATOR_PACKAGES", (module,))
        modules.add(host_probe.generator_digest.__wrapped__())
    assert len(modules) == 2 and digest not in modules
