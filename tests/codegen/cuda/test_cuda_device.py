"""`q35c run --target <NVIDIA GPU>` without a GPU: the refusals, the launch plan against `launch.cu`, the driver
calls' argument packing and their ctypes signatures against `cuda.h`, and a whole run against a stand-in driver
(`fake_libcuda.c`: host memory, kernels logged instead of run), which checks what reaches the driver: every
launch in the launcher's order, with its grid, block, shared memory and parameters, the result copies, the
timing hold."""

from __future__ import annotations

import ctypes
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from q35c.cli.main import main
from q35c.codegen.cuda.emit import PhaseSources
from q35c.codegen.cuda.kernel import Kernel
from q35c.codegen.cuda.libcuda import LIBRARY_ENV, pack_arguments
from q35c.codegen.cuda.plan import Copied, Launched, flatten, grid_blocks
from q35c.codegen.cuda.toolkit import Toolkit, check_device_arch
from q35c.util.errors import Q35Error

FAKE_SOURCE = Path(__file__).with_name("fake_libcuda.c")


@pytest.fixture(scope="module")
def fake_driver(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The stand-in libcuda, compiled with the C compiler of this machine."""
    compiler = shutil.which("cc") or shutil.which("clang-22") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler for the stand-in CUDA driver")
    out = tmp_path_factory.mktemp("fake-cuda") / "libcuda_fake.so"
    subprocess.run([compiler, "-shared", "-fPIC", "-O1", "-o", str(out), str(FAKE_SOURCE)], check=True)
    return out


def test_no_driver_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(LIBRARY_ENV, "/nonexistent/libcuda.so.1")
    assert main(["run", "tiny", "--target", "h100-sxm"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("q35c: error: no CUDA device is visible to this process: cannot load the CUDA driver")
    assert err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("Q35C_FAKE_CUDA_DEVICES", "0", "the driver reports 0 device(s)"),
        ("Q35C_FAKE_CUDA_FAIL", "cuInit", "cuInit failed: CUDA_ERROR_NO_DEVICE (no CUDA-capable device is detected)"),
    ],
)
def test_no_device_is_a_one_line_error(
    fake_driver: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    value: str,
    message: str,
) -> None:
    monkeypatch.setenv(LIBRARY_ENV, str(fake_driver))
    monkeypatch.setenv(variable, value)
    assert main(["run", "tiny", "--target", "h200"]) == 2
    err = capsys.readouterr().err
    assert err == f"q35c: error: no CUDA device is visible to this process: {message}\n"


def test_amd_targets_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "tiny", "--target", "mi300x"]) == 2
    err = capsys.readouterr().err
    assert "an NVIDIA GPU through CUDA: --target a100-sxm|h100-pcie|h100-sxm|h200; mi300x is AMD gpu" in err


def test_pack_arguments_points_at_each_value() -> None:
    values = [0x7F00_0000_1000, 0, 2**64 - 1, 42]
    params, slots = pack_arguments(values)
    read = [ctypes.cast(params[i], ctypes.POINTER(ctypes.c_uint64)).contents.value for i in range(len(values))]
    assert read == values
    assert params[len(values)] is None  # the end marker
    assert ctypes.addressof(slots) == params[0]


def _kernel(kind: str, work: int, threads: int, cooperative: bool = False) -> Kernel:
    return Kernel("k", kind, "f", "", (), work, 0, cooperative, threads)


def test_grid_blocks_follow_the_launcher_rule() -> None:
    # a linear kernel: a block per tile, at most the resident blocks
    assert grid_blocks(_kernel("linear.gemv.q3p5", 1000, 512), 132, 1) == 132
    assert grid_blocks(_kernel("linear.gemv.q3p5", 7, 512), 132, 1) == 7
    # an element-wise kernel: a thread per element, never capped
    assert grid_blocks(_kernel("add", 10**6, 256), 132, 8) == 3907
    # a cooperative kernel: a thread per element, at most the resident blocks
    assert grid_blocks(_kernel("rmsnorm", 10**6, 256, True), 132, 4) == 528
    assert grid_blocks(_kernel("rmsnorm", 64, 256, True), 132, 4) == 1
    assert grid_blocks(_kernel("rmsnorm", 64, 256, True), 132, 0) == 1


def _launch_cu_order(launch: str, entry: str = "q35_main") -> list[str]:
    """The kernels `launch.cu`'s `entry` launches, in order, through its calls."""
    bodies: dict[str, list[tuple[str, str]]] = {}
    current = None
    for line in launch.splitlines():
        if start := re.match(r"cudaError_t (q35_\w+)\(.*\) \{$", line):
            current = bodies.setdefault(start.group(1), [])
        elif current is not None and (grid := re.search(r"q35_grid\(\(const void\*\)(\w+),", line)):
            current.append(("kernel", grid.group(1)))
        elif current is not None and (call := re.match(r"  Q35_CHECK\((q35_\w+)\(", line)):
            current.append(("call", call.group(1)))

    def expand(name: str, depth: int) -> list[str]:
        assert depth < 8
        out: list[str] = []
        for what, target in bodies[name]:
            out += [target] if what == "kernel" else expand(target, depth + 1)
        return out

    return expand(entry, 0)


@pytest.mark.parametrize("phase", ["decode", "prefill"])
def test_the_plan_is_the_launcher(tiny_cuda: dict[str, PhaseSources], phase: str) -> None:
    sources = tiny_cuda[phase]
    plans = sources.plans
    args = [10_000 * (i + 1) for i in range(len(_main_args(sources)))]
    workspace, result = 10**9, 5 * 10**8
    steps = flatten(plans, "main", args, result, workspace)
    launched = [s for s in steps if isinstance(s, Launched)]
    assert [s.kernel.name for s in launched] == _launch_cu_order(sources.launch)
    # every pointer is an argument, the workspace (within its size) or a callee's result (in the workspace)
    size = plans["main"].workspace
    for step in launched:
        for address in step.addresses:
            assert address in args or workspace <= address < workspace + size, (step.kernel.name, address)
    # the workspace sizes are the header's
    for name, plan in plans.items():
        define = re.escape(re.sub(r"\W", "_", name))
        assert re.search(rf"#define Q35_WORKSPACE_{define} {plan.workspace}LL", sources.header)
    # the step ends by copying the logits into the result
    last = steps[-1]
    assert (
        isinstance(last, Copied)
        and last.destination == result
        and last.bytes == 2 * 256 * (1 if phase == "decode" else 384)
    )
    # the decoder block runs twice (tiny has 2 layers), each with its own weights
    decoder = [s for s in launched if s.kernel.name == "decoder_00_rmsnorm"]
    assert len(decoder) == 2 and decoder[0].addresses != decoder[1].addresses


def _main_args(sources: PhaseSources) -> list[str]:
    signature = re.search(r"cudaError_t q35_main\((.*?)\) \{", sources.launch)
    assert signature is not None
    params = [p.strip() for p in signature.group(1).split(",")]
    return params[:-3]  # result, workspace, stream


def test_device_architectures(monkeypatch: pytest.MonkeyPatch) -> None:
    for arch in ("sm_80", "sm_86", "sm_90", "sm_90a", "sm_100", "sm_120"):
        check_device_arch(arch)
    for arch in ("sm_75", "sm_70", "compute_90", "sm90"):
        with pytest.raises(Q35Error, match="sm_80 or later"):
            check_device_arch(arch)


def test_cubin_for_sm90(cuda_toolkit: Toolkit, tiny_cuda: dict[str, PhaseSources], tmp_path: Path) -> None:
    """A kernel of tiny and the run's hold kernel in one cubin for sm_90, as a device run compiles them."""
    from q35c.codegen.cuda.device import HOLD_SOURCE
    from q35c.codegen.cuda.header import HEADER

    kernel = next(k for k in tiny_cuda["decode"].kernels if k.kind == "rmsnorm")
    (tmp_path / "q35_cuda.h").write_text(HEADER)
    (tmp_path / kernel.filename).write_text(kernel.source)
    image = cuda_toolkit.cubin([tmp_path / kernel.filename], "sm_90", HOLD_SOURCE)
    assert image[:4] == b"\x7fELF"
    assert kernel.name.encode() in image and b"q35c_hold" in image


def _fake_run(fake_driver: Path, monkeypatch: pytest.MonkeyPatch, log: Path, **env: str) -> object:
    from q35c.codegen.cuda import toolkit
    from q35c.codegen.cuda.device import DeviceRequest, run_on_device

    monkeypatch.setenv(LIBRARY_ENV, str(fake_driver))
    monkeypatch.setenv("Q35C_FAKE_CUDA_LOG", str(log))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(toolkit.Toolkit, "cubin", lambda self, files, arch, extra="": b"\x7fELF stand-in")
    request = DeviceRequest("tiny", "h200", None, prompt=4, gen=2, prefill_runs=1, phases=("decode",))
    return run_on_device(request)


def test_a_run_through_the_stand_in_driver(fake_driver: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from q35c.codegen.cuda.device import DeviceRun

    log = tmp_path / "driver.log"
    result = _fake_run(fake_driver, monkeypatch, log)
    assert isinstance(result, DeviceRun)
    (decode,) = result.phases
    lines = log.read_text().splitlines()
    launches = [line.split() for line in lines if line.startswith(("launch ", "coop "))]
    holds = [parts for parts in launches if parts[1] == "q35c_hold"]
    kernels = [parts for parts in launches if parts[1] != "q35c_hold"]
    # two untimed runs (numerics, warm-up), then gen = 2 timed runs, each after a hold of the stream
    assert len(holds) == 2 and all(int(parts[5]) >= 1_000_000 for parts in holds)
    per_run = decode.launches
    assert len(kernels) == 4 * per_run
    first = kernels[:per_run]
    assert all(kernels[i * per_run : (i + 1) * per_run] == first for i in range(4))  # same launches each run
    by_name = {k.name: k for k in _kernels(result)}
    for how, name, grid, block, smem, *params in first:
        kernel = by_name[name]
        assert how == ("coop" if kernel.cooperative else "launch")
        assert int(block) == kernel.threads and int(smem) == kernel.smem_bytes
        assert int(grid) == grid_blocks(kernel, 132, 1 if kernel.threads > 256 else 4)  # the stand-in's occupancy
        assert len(params) == len(kernel.params) and all(int(p) != 0 for p in params)
    assert sum(line.startswith("copy ") for line in lines) == 4 * 3  # main and each decoder call copy a result
    # the kernels did not run, so the logits (zeros) are not the reference's: the check says so
    assert decode.numerics is not None and not decode.numerics.ok and not result.ok
    assert decode.seconds and decode.predicted_seconds is not None and decode.predicted_seconds > 0
    assert {k.name for k in decode.kernels} == set(by_name) and all(k.predicted_s for k in decode.kernels)
    text = "\n".join(result.lines())
    assert "MISMATCH" in text and "Fake GPU (sm_90, 132 SMs" in text


def _kernels(result: object) -> list[Kernel]:
    from q35c.codegen.cuda.device import DeviceRun

    assert isinstance(result, DeviceRun)
    from q35c.codegen.cuda.emit import cuda_phases
    from q35c.predict.predictor import Predictor, Scenario

    keys = Predictor("tiny", None, Scenario(1, 4, 2), ()).phase_keys()
    return list(cuda_phases("h200", {"decode": keys["decode"]})["decode"].kernels)


def test_a_failing_driver_call_is_named(fake_driver: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from q35c.codegen.cuda.libcuda import CudaError

    with pytest.raises(CudaError, match=r"^cuModuleLoadData: CUDA_ERROR_INVALID_IMAGE \(device kernel image is"):
        _fake_run(fake_driver, monkeypatch, tmp_path / "driver.log", Q35C_FAKE_CUDA_FAIL="cuModuleLoadData")
    with pytest.raises(CudaError, match=r"^cuLaunchKernel\(decoder_01_rope, grid 1, block 256, smem 0\): CUDA_"):
        _fake_run(fake_driver, monkeypatch, tmp_path / "driver.log", Q35C_FAKE_CUDA_FAIL="decoder_01_rope")


def _cuda_header(toolkit: Toolkit) -> Path | None:
    nvcc = Path(toolkit.nvcc).resolve()
    candidates = [nvcc.parent.parent / "include" / "cuda.h", Path("/usr/local/cuda/include/cuda.h")]
    text = nvcc.read_text(errors="replace") if nvcc.stat().st_size < 4096 else ""  # a wrapper script: its target
    candidates += [Path(m).parent.parent / "include" / "cuda.h" for m in re.findall(r"(/\S+/bin/nvcc)", text)]
    return next((c for c in candidates if c.is_file()), None)


_HANDLES = {"CUcontext", "CUmodule", "CUfunction", "CUstream", "CUevent"}
_SCALARS = {
    "CUdeviceptr": ("u", 8),
    "size_t": ("u", 8),
    "unsigned int": ("u", 4),
    "unsigned char": ("u", 1),
    "int": ("i", 4),
    "CUdevice": ("i", 4),
    "CUresult": ("i", 4),
    "CUdevice_attribute": ("i", 4),
    "CUfunction_attribute": ("i", 4),
}


def _c_kind(param: str) -> object:
    """How a C parameter is passed: `pointer`, or (signedness, bytes)."""
    words = param.replace("const ", "").strip()
    if "*" in words:
        return "pointer"
    typ = " ".join(words.split()[:-1])  # drop the parameter's name
    return "pointer" if typ in _HANDLES else _SCALARS[typ]


def _ctypes_kind(typ: object) -> object:
    if typ in (ctypes.c_void_p, ctypes.c_char_p) or (isinstance(typ, type) and issubclass(typ, ctypes._Pointer)):
        return "pointer"
    assert isinstance(typ, type) and issubclass(typ, ctypes._SimpleCData)
    signed = typ(-1).value == -1  # type: ignore[call-arg]
    return ("i" if signed else "u", ctypes.sizeof(typ))


def test_driver_signatures_match_cuda_h(cuda_toolkit: Toolkit) -> None:
    """Every driver call's ctypes argument types against its prototype in the toolkit's cuda.h (the versioned
    symbol's prototype is written under the plain name there)."""
    from q35c.codegen.cuda.libcuda import _SIGNATURES

    header = _cuda_header(cuda_toolkit)
    if header is None:
        pytest.skip("no cuda.h beside nvcc")
    text = header.read_text(errors="replace")
    for name, argtypes in _SIGNATURES.items():
        plain = re.sub(r"_v\d$", "", name)
        found = re.search(rf"^CUresult CUDAAPI {plain}\(([^)]*)\);", text, re.MULTILINE)
        assert found is not None, name
        params = [p for p in " ".join(found.group(1).split()).split(", ") if p and p != "void"]
        assert [_c_kind(p) for p in params] == [_ctypes_kind(t) for t in argtypes], name
    from q35c.codegen.cuda import libcuda

    enums = {
        "CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT": libcuda.ATTR_MULTIPROCESSOR_COUNT,
        "CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR": libcuda.ATTR_COMPUTE_CAPABILITY_MAJOR,
        "CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR": libcuda.ATTR_COMPUTE_CAPABILITY_MINOR,
        "CU_DEVICE_ATTRIBUTE_COOPERATIVE_LAUNCH": libcuda.ATTR_COOPERATIVE_LAUNCH,
        "CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN": libcuda.ATTR_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN,
        "CU_FUNC_ATTRIBUTE_NUM_REGS": libcuda.FUNC_NUM_REGS,
        "CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES": libcuda.FUNC_MAX_DYNAMIC_SHARED_SIZE_BYTES,
    }
    for enum, value in enums.items():
        found = re.search(rf"^\s*{enum}\s*=\s*(\d+)", text, re.MULTILINE)
        assert found is not None and int(found.group(1)) == value, enum


def test_a_run_queued_after_its_hold_is_repeated_with_twice_the_hold(monkeypatch: pytest.MonkeyPatch) -> None:
    """A timed run the host did not finish queueing before the hold ended may include the GPU waiting for a
    launch: it is not kept, and the next run holds twice as long."""
    import types

    from q35c.codegen.cuda import device

    holds: list[int] = []

    class Driver:
        def event(self) -> object:
            return object()

        def launch(self, function: object, name: str, *args: object) -> None:
            holds.append(int(args[3][0]))  # type: ignore[index]

        def record(self, event: object) -> None: ...

        def synchronize(self, what: str) -> None: ...

        def elapsed_ms(self, start: object, end: object) -> float:
            return 1.0

        def destroy(self, event: object) -> None: ...

    clock = iter([0.0, 1.0, 2.0, 2.0001, 3.0, 3.0001])  # run 1 queued in 1 s (late), runs 2 and 3 at once
    monkeypatch.setattr(device.time, "perf_counter", lambda: next(clock))
    monkeypatch.setattr(device, "_execute", lambda *args: None)
    steps = [object(), object()]
    totals, per_step, held = device._timed(Driver(), types.SimpleNamespace(hold=None), steps, 2, 0.001)  # type: ignore[arg-type]
    assert holds == [8_000_000, 16_000_000, 16_000_000]
    assert held == 2 and len(totals) == 2 and all(len(times) == 2 for times in per_step)
