"""The per-layer breakdown is the cost model's own per-kernel costs: its parts add up to the figures of the
comparison, and matmul kernels are assigned by the weights they serve; roofline points and cited sources."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import pytest

from q35c.predict.predictor import compare
from q35c.report.build import BuildReport, collect, ir_module
from q35c.report.ir import dump_stages, kernel_key

TARGETS = ["h100-sxm", "groq-lpu", "m2-max"]


@pytest.fixture(scope="module")
def build() -> BuildReport:
    report = compare("tiny", "q3p5:g=32", TARGETS, prompt=16, gen=8)
    with tempfile.TemporaryDirectory() as tmp:
        ir = dump_stages("tiny", "q3p5:g=32", TARGETS, Path(tmp), ir_module(report).keys())
    return collect(report, ir)


def test_parts_add_up_to_the_reported_times(build: BuildReport) -> None:
    for result in build.report.targets:
        detail = build.detail(result.target)
        assert detail.decode is not None and detail.prefill is not None and result.decode and result.prefill
        assert math.isclose(detail.decode.seconds, result.decode.seconds, rel_tol=1e-9)
        assert math.isclose(detail.prefill.seconds, result.prefill.seconds, rel_tol=1e-9)
        assert math.isclose(detail.decode.joules, result.decode.joules, rel_tol=1e-9)
        assert math.isclose(sum(s for _, s, _ in detail.decode.by_kind()), result.decode.seconds, rel_tol=1e-9)


def test_kernels_are_grouped_by_layer_kind(build: BuildReport) -> None:
    decode = build.detail("h100-sxm").decode
    assert decode is not None
    kinds = [k for k, _, _ in decode.by_kind()]
    for kind in ("embedding", "norms", "attention projections", "attention", "MLP projections", "lm_head"):
        assert kind in kinds
    labels = {p.label for p in decode.parts if p.kind == "attention projections"}
    assert labels == {"linear 64x64 (q_proj, o_proj)", "linear 32x64 (k_proj, v_proj)"}


def test_kernel_key_drops_the_tokens_in_flight() -> None:
    assert kernel_key("linear.1x8192x8192.q3p5_g128_dense.f16") == "linear.8192x8192.q3p5_g128_dense.f16"
    assert kernel_key("linear.512x8192x8192.q3p5_g128_dense.f16") == "linear.8192x8192.q3p5_g128_dense.f16"


def test_roofline_points_lie_under_their_roofs(build: BuildReport) -> None:
    for detail in build.details:
        assert {p.phase for p in detail.roofline} == {"decode", "prefill"}
        for p in detail.roofline:
            assert p.intensity > 0 and p.achieved_ops_per_s > 0
            assert p.achieved_ops_per_s <= p.bound_ops_per_s * (1 + 1e-9)  # predicted time >= roofline bound
            assert p.bound_ops_per_s <= p.roof_ops_per_s * (1 + 1e-9)  # the kernels' bound is under the spec roof


def test_roofline_points_carry_the_tables_roofline_fraction(build: BuildReport) -> None:
    for result in build.report.targets:
        decode = next(p for p in build.detail(result.target).roofline if p.phase == "decode")
        assert decode.roofline_fraction == pytest.approx(result.roofline_fraction)
        assert decode.achieved_ops_per_s / decode.bound_ops_per_s == pytest.approx(result.roofline_fraction)
        assert result.decode is not None and decode.limits[0][0] == result.decode.bottleneck


def test_every_figure_cited_comes_from_the_spec(build: BuildReport) -> None:
    from q35c.targets.spec import load_spec

    for detail in build.details:
        spec = load_spec(detail.target)
        paths = [c.path for c in detail.citations]
        assert f"memory.{spec.main_memory.name}.bandwidth_bytes_per_s" in paths and "power.tdp_w" in paths
        for c in detail.citations:
            assert c.text == spec.source_of(c.path)
    assert "clock_hz" in [c.path for c in build.detail("groq-lpu").citations]


def test_a_target_that_cannot_hold_the_model_gets_no_breakdown() -> None:
    report = compare("llama-2-7b", "fp16", ["m2-max", "groq-lpu"], prompt=0, gen=1, devices=1)
    build = collect(report, {})
    assert build.detail("m2-max").decode is not None and build.detail("m2-max").prefill is None
    groq = build.detail("groq-lpu")
    assert groq.decode is None and groq.roofline == () and groq.citations
