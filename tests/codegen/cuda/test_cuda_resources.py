"""The ptxas resource data in the repository (targets/data/cuda_resources.json) matches the kernels the emitter
makes today: a change to the emitter or to the GPU pipeline that changes a kernel makes these fail until
scripts/cuda_resources.py is run again."""

from __future__ import annotations

from pathlib import Path

import pytest

from q35c.codegen.cuda.header import HEADER
from q35c.codegen.cuda.resources import (
    REFERENCE_SCHEMES,
    REFERENCE_TARGETS,
    digest,
    markdown_table,
    reference_build,
    stored,
)
from q35c.codegen.cuda.toolkit import Toolkit
from q35c.targets.gpu_occupancy import DATA, sm_limits
from q35c.targets.registry import get_target

STALE = "the CUDA kernels changed: run scripts/cuda_resources.py to regenerate targets/data/cuda_resources.json"
CHECKED = [(target, "q3p5") for target in REFERENCE_TARGETS]  # the rest: scripts/cuda_resources.py


def test_data_covers_the_reference_builds() -> None:
    data = stored()
    assert DATA.is_file()
    assert set(data["builds"]) == {f"{t}/{s}" for t in REFERENCE_TARGETS for s in REFERENCE_SCHEMES}
    for target in REFERENCE_TARGETS:
        limits = sm_limits(get_target(target).spec)
        assert limits is not None
        table = data["archs"][limits.arch]
        for scheme in REFERENCE_SCHEMES:
            name = scheme.split(":")[0]
            assert f"linear.gemv.{name}" in table and f"linear.mma.{name}" in table
        assert {"attention", "rmsnorm", "rope", "embed", "silu", "mul", "add"} <= set(table)
        assert all(row["spill_bytes"] == 0 for kind, row in table.items() if kind.startswith("linear.gemv."))


@pytest.mark.parametrize(("target", "scheme"), CHECKED)
def test_data_is_not_stale(target: str, scheme: str) -> None:
    assert digest(reference_build(target, scheme)) == stored()["builds"][f"{target}/{scheme}"], STALE


def test_ptxas_agrees_with_the_data(cuda_toolkit: Toolkit, tmp_path: Path) -> None:
    """Registers of the h100-sxm q3p5 decode kernels as ptxas reports them now: never above the class's row."""
    limits = sm_limits(get_target("h100-sxm").spec)
    assert limits is not None
    table = stored()["archs"][limits.arch]
    sources = reference_build("h100-sxm", "q3p5")["decode"]
    (tmp_path / "q35_cuda.h").write_text(HEADER)
    files = []
    for kernel in sources.kernels:
        (tmp_path / kernel.filename).write_text(kernel.source)
        files.append(tmp_path / kernel.filename)
    kinds = {k.name: k.kind for k in sources.kernels}
    for found in cuda_toolkit.resources(files, limits.arch):
        row = table[kinds[found.kernel]]
        assert found.registers <= row["registers"], found.kernel
        if row["example"] == f"h100-sxm/q3p5/decode/{found.kernel}":
            assert found.registers == row["registers"]


def test_the_docs_table_is_the_data() -> None:
    """docs/cuda.md shows the data's table (regenerated with the data) and says no kernel spills."""
    page = (Path(__file__).resolve().parents[3] / "docs" / "cuda.md").read_text(encoding="utf-8")
    data = stored(DATA)
    assert markdown_table(data) in page, "docs/cuda.md: paste the table scripts/cuda_resources.py prints"
    assert "no kernel spills" in page
    assert all(r["spill_bytes"] == 0 for table in data["archs"].values() for r in table.values())
