"""The generated-code figures come from kernels q35c compiles and times itself: a least-squares line through
(size, seconds), and for one scheme class a positive rate per weight, per op and a fixed time per call, cached
where the host spec reads them."""

from __future__ import annotations

from pathlib import Path

import pytest

from q35c.codegen.host.calibrate import fit_line, generated, host_probe
from q35c.codegen.host.toolchain import Toolchain
from q35c.targets.registry import get_target


def test_fit_line_recovers_a_line_and_never_goes_negative() -> None:
    intercept, slope = fit_line([(1.0, 3.0), (2.0, 5.0), (4.0, 9.0)])
    assert intercept == pytest.approx(1.0) and slope == pytest.approx(2.0)
    assert fit_line([(1.0, 1.0), (2.0, 0.5)]) == (pytest.approx(1.5), 0.0)  # a falling line: slope clamped
    assert fit_line([(3.0, 2.0), (3.0, 4.0)]) == (3.0, 0.0)  # one size: the median, no slope


def test_one_scheme_class_is_measured_cached_and_read_by_the_spec(
    host_toolchain: Toolchain, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("Q35C_CACHE_DIR", str(tmp_path))
    host_probe.save(host_probe.measure(array_bytes=1 << 16, matmul_n=32, min_seconds=0.0, runs=1))
    from q35c.codegen.host import calibrate

    monkeypatch.setattr(calibrate, "MIN_SECONDS", 0.0)
    found = calibrate.measure_generated(schemes=("q4_0",))
    assert found.matvec_s_per_weight["q4_0"] > 0 and found.matmul_s_per_mac["q4_0"] > 0
    assert found.linear_call_s > 0 and found.elementwise_s_per_op > 0
    host_probe.save_generated(found)
    assert generated() == found  # cached: not measured again
    details = get_target("host").spec.details
    assert details["generated_matvec_q4_0_ps_per_weight"].value == pytest.approx(
        found.matvec_s_per_weight["q4_0"] * 1e12
    )
