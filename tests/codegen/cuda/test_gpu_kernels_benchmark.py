"""benchmarks/gpu_kernels.py without a GPU: it says so and writes nothing (exit 0, a benchmark run where there is
nothing to measure), and `--print-target` (which the device check reads a target name from) fails with the
reason on stderr, so that no message is taken for a target name. The recorded H200 run is well formed."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def gpu_kernels(load_script: Callable[[Path, str], ModuleType]) -> ModuleType:
    return load_script(ROOT / "benchmarks" / "gpu_kernels.py", "gpu_kernels")


def test_without_a_gpu_nothing_is_measured(
    gpu_kernels: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("Q35C_LIBCUDA", str(tmp_path / "missing-libcuda.so"))
    out = tmp_path / "figures.json"
    assert gpu_kernels.main(["--json", str(out)]) == 0
    assert "nothing measured" in capsys.readouterr().out and not out.exists()
    assert gpu_kernels.main(["--print-target"]) == 2
    printed = capsys.readouterr()
    assert printed.out == "" and "nothing measured" in printed.err


def test_the_recorded_run_has_every_kernel_beside_its_prediction(gpu_kernels: ModuleType) -> None:
    data = json.loads((ROOT / "benchmarks" / "results" / "gpu_kernels.json").read_text(encoding="utf-8"))
    assert data["target"] == gpu_kernels.device_target(data["device"]) == "h200"
    cases = {case["case"]: case for case in data["cases"]}
    assert {"tiny", "llama-2-7b"} <= set(cases)  # the recorded run predates the tiny-wide case
    for phase in cases["tiny"]["phases"]:
        assert phase["numerics"]["ok"]
    for case in cases.values():
        for phase in case["phases"]:
            assert phase["kernels"] and all(k["measured_us"] > 0 and k["predicted_us"] > 0 for k in phase["kernels"])
            assert phase["tok_s"] > 0 and phase["predicted_tok_s"] > 0


def test_the_widened_tiny_has_its_dims_and_a_missing_dim_is_refused(gpu_kernels: ModuleType, tmp_path: Path) -> None:
    from q35c.frontend import load_graph

    wide = gpu_kernels.with_dims(ROOT / "examples" / "tiny.q35", gpu_kernels.WIDE_TINY, tmp_path, "tiny-wide", True)
    graph = load_graph(str(wide))
    assert graph.name == "tiny-wide"
    dims = dict(graph.dims)
    assert {name: dims[name] for name in gpu_kernels.WIDE_TINY} == gpu_kernels.WIDE_TINY
    with pytest.raises(SystemExit, match="no single `dim depth = N` line"):
        gpu_kernels.with_dims(ROOT / "examples" / "tiny.q35", {"depth": 2}, tmp_path, "x")
