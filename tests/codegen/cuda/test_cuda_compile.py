"""The emitted kernels through the CUDA toolkit: nvcc compiles every one for sm_80 and sm_90, ptxas reports their
resources, and the PTX has the instructions the schedule asks for (cp.async staging, tensor-core MMA)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from xdsl.dialects.builtin import ModuleOp

from q35c.codegen.cuda.emit import PhaseSources, module_kernels
from q35c.codegen.cuda.header import HEADER
from q35c.codegen.cuda.toolkit import ARCHS, Toolkit, find_toolkit, parse_resources
from q35c.util.errors import Q35Error


def write(sources: PhaseSources, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "q35_cuda.h").write_text(HEADER)
    (folder / "launch.cu").write_text(sources.launch)
    (folder / "q35c_kernels.h").write_text(sources.header)
    files = []
    for kernel in sources.kernels:
        (folder / kernel.filename).write_text(kernel.source)
        files.append(folder / kernel.filename)
    return files


@pytest.mark.parametrize("arch", ARCHS)
def test_every_kernel_compiles_without_spills(
    cuda_toolkit: Toolkit, tiny_cuda: dict[str, PhaseSources], tmp_path: Path, arch: str
) -> None:
    for phase, sources in tiny_cuda.items():
        files = write(sources, tmp_path / phase)
        found = {r.kernel: r for r in cuda_toolkit.resources(files, arch)}
        assert set(found) == {k.name for k in sources.kernels}, phase
        for kernel in sources.kernels:
            r = found[kernel.name]
            assert r.arch == arch and 0 < r.registers <= 65536 // kernel.threads
            assert r.spill_bytes == 0, f"{kernel.name} spills {r.spill_bytes} B"


def test_launcher_compiles(cuda_toolkit: Toolkit, tiny_cuda: dict[str, PhaseSources], tmp_path: Path) -> None:
    """The host side (entry points, cooperative launches, occupancy queries) against the CUDA runtime API."""
    write(tiny_cuda["decode"], tmp_path)
    cuda_toolkit.compile_host(tmp_path / "launch.cu", ("sm_90",))


def test_ptx_stages_with_cp_async_and_prefill_uses_tensor_cores(
    cuda_toolkit: Toolkit, tiny_cuda: dict[str, PhaseSources], tmp_path: Path
) -> None:
    gemv = next(k for k in tiny_cuda["decode"].kernels if k.kind == "linear.gemv.q3p5")
    mma = next(k for k in tiny_cuda["prefill"].kernels if k.kind == "linear.mma.q3p5")
    write(tiny_cuda["decode"], tmp_path / "decode")
    write(tiny_cuda["prefill"], tmp_path / "prefill")
    streaming = cuda_toolkit.ptx(tmp_path / "decode" / gemv.filename, "sm_90")
    assert "cp.async.cg.shared.global" in streaming and ", 16;" in streaming  # 128-bit copies into smem
    assert "cp.async.wait_group" in streaming
    prefill = cuda_toolkit.ptx(tmp_path / "prefill" / mma.filename, "sm_90")
    assert "mma.sync.aligned" in prefill


def test_a_second_scheme_compiles(
    cuda_toolkit: Toolkit, compile_model: Callable[..., dict[str, ModuleOp]], tmp_path: Path
) -> None:
    """llama.cpp's q4_0 blocks (fp16 scales inside the byte stream) for a100-sxm (sm_80)."""
    from q35c.targets.gpu_occupancy import sm_limits
    from q35c.targets.registry import get_target

    limits = sm_limits(get_target("a100-sxm").spec)
    for phase, module in compile_model("tiny", "q4_0", "a100-sxm").items():
        sources = module_kernels(module, limits)
        linears = [k for k in sources.kernels if k.kind.startswith("linear.")]
        files = write(sources, tmp_path / phase)
        chosen = [f for f in files if f.stem in {k.name for k in linears}]
        found = cuda_toolkit.resources(chosen, "sm_80")
        assert {r.kernel for r in found} == {k.name for k in linears}
        assert all(r.spill_bytes == 0 for r in found)


def test_a_kernel_ptxas_rejects_is_an_internal_error(cuda_toolkit: Toolkit, tmp_path: Path) -> None:
    bad = tmp_path / "bad.cu"
    bad.write_text('extern "C" __global__ void broken(int* p) { p[0] = undefined_name; }\n')
    with pytest.raises(RuntimeError, match="undefined_name"):
        cuda_toolkit.resources([bad], "sm_90")


def test_unsupported_architecture_and_missing_toolkit_are_setup_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    from q35c.codegen.cuda import toolkit

    with pytest.raises(Q35Error, match="unsupported CUDA architecture 'sm_70'"):
        toolkit.check_arch("sm_70")
    monkeypatch.setenv("PATH", "")
    monkeypatch.setattr(toolkit, "SEARCH", ())
    with pytest.raises(Q35Error, match="nvcc not found"):
        find_toolkit()


def test_resource_lines_parse() -> None:
    text = """ptxas info    : Compiling entry function 'k1' for 'sm_90'
ptxas info    : Function properties for k1
    8 bytes stack frame, 4 bytes spill stores, 4 bytes spill loads
ptxas info    : Used 40 registers, used 1 barriers, 2048 bytes smem, 392 bytes cmem[0]
ptxas info    : Compiling entry function 'k2' for 'sm_90'
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 12 registers, used 0 barriers
"""
    k1, k2 = parse_resources(text)
    assert (k1.kernel, k1.registers, k1.smem_bytes, k1.spill_bytes, k1.stack_bytes) == ("k1", 40, 2048, 8, 8)
    assert (k2.kernel, k2.registers, k2.smem_bytes, k2.spill_bytes) == ("k2", 12, 0, 0)
