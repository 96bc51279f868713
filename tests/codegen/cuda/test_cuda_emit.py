"""The CUDA emitter without a toolkit: which kernels, their launch geometry, where their code comes from, the CLI."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from xdsl.dialects import func
from xdsl.dialects.builtin import DenseArrayBase, ModuleOp, TensorType

from q35c.analysis.workload import extract, is_kernel_function
from q35c.codegen.cuda.emit import PhaseSources, module_kernels
from q35c.codegen.cuda.kernel import Kernel

CODEGEN = Path(__file__).resolve().parents[3] / "q35c" / "codegen" / "cuda"


def q35c(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "q35c.cli.main", *args], capture_output=True, text=True, check=False)


def linear_functions(module: ModuleOp) -> dict[str, func.FuncOp]:
    return {op.sym_name.data: op for op in module.ops if isinstance(op, func.FuncOp) and is_kernel_function(op)}


def test_one_kernel_per_kernel_of_the_cost_model(
    tiny_modules: dict[str, ModuleOp], tiny_cuda: dict[str, PhaseSources]
) -> None:
    for phase, module in tiny_modules.items():
        work = extract(module)
        emitted = tiny_cuda[phase].kernels
        assert len(emitted) == len(work.kernels), phase
        assert sorted(k.kind.split(".")[0] for k in emitted) == sorted(k.name for k in work.kernels)
        assert len({k.name for k in emitted}) == len(emitted)


def test_linear_grid_is_the_tile_schedule(
    tiny_modules: dict[str, ModuleOp], tiny_cuda: dict[str, PhaseSources]
) -> None:
    for phase, module in tiny_modules.items():
        kernels = {k.function: k for k in tiny_cuda[phase].kernels}
        for name, fn in linear_functions(module).items():
            tile = fn.attributes["q35.tile"]
            assert isinstance(tile, DenseArrayBase)
            tile_t, tile_n, _ = (int(v) for v in tile.get_values())
            result = fn.function_type.outputs.data[0]
            assert isinstance(result, TensorType)
            t, n = (int(d) for d in result.get_shape())
            kernel = kernels[name]
            assert kernel.work == -(-t // tile_t) * -(-n // tile_n)
            assert f"tile {tile_t}x{tile_n}x" in kernel.source
            assert kernel.threads % 32 == 0 and 128 <= kernel.threads <= 1024
            assert f"__launch_bounds__({kernel.threads}, 1)" in kernel.source


def test_decode_takes_the_gemv_path_and_prefill_the_tensor_cores(tiny_cuda: dict[str, PhaseSources]) -> None:
    decode = [k for k in tiny_cuda["decode"].kernels if k.kind.startswith("linear.")]
    prefill = [k for k in tiny_cuda["prefill"].kernels if k.kind.startswith("linear.")]
    assert decode and all(k.kind.startswith("linear.gemv.") for k in decode)
    assert all("q35_warp_sum" in k.source and "wmma" not in k.source for k in decode)
    assert prefill and all(k.kind.startswith("linear.mma.") for k in prefill)
    assert all("wmma::mma_sync" in k.source for k in prefill)


def test_streamed_tiles_are_double_buffered_with_cp_async(tiny_cuda: dict[str, PhaseSources]) -> None:
    """A weight streamed tile by tile (the int8 head at prefill: 16-row tiles) goes through a two-slot ring."""
    head = next(k for k in tiny_cuda["prefill"].kernels if k.function.startswith("linear.384x256x64.int8"))
    assert "issue(s + 1, slot ^ 1); q35_commit(); q35_wait<1>();" in head.source
    assert re.search(r"q35_stage<1>\(S\d+ \+ slot \* 1024, arg1, 256, 64, n0", head.source)
    assert "cp.async.cg.shared.global" in _header() and "cp.async.wait_group" in _header()


def test_unpacking_comes_from_the_ir_not_from_the_emitter(tiny_cuda: dict[str, PhaseSources]) -> None:
    """The emitter knows no scheme: the q3p5 kernels' bit extraction (7-bit pairs in 32-bit words) is printed
    from unpack-bits' generics, and no scheme name appears in the emitter's code."""
    q3p5 = next(k for k in tiny_cuda["decode"].kernels if k.kind == "linear.gemv.q3p5")
    assert "* ((uint32_t)((int32_t)7LL))" in q3p5.source  # pair index * 7 bits
    assert ">> (((int32_t)28LL))" in q3p5.source  # sign extension of the 4-bit slot
    for path in CODEGEN.glob("*.py"):
        if path.name == "resources.py":  # the reference builds name their schemes
            continue
        for text in _code_strings(path):
            for scheme in ("q3p5", "int4", "q4_0", "q8_0", "int8"):
                assert scheme not in text, f"{path.name} branches on {scheme}"


def _code_strings(path: Path) -> list[str]:
    """String constants and names of a module's code (docstrings left out)."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.FunctionDef | ast.ClassDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            found.append(node.value)
        elif isinstance(node, ast.Name):
            found.append(node.id)
    return found


def test_group_kernels_are_phases_of_one_launch(tiny_cuda: dict[str, PhaseSources]) -> None:
    attention = next(k for k in tiny_cuda["decode"].kernels if k.kind == "attention")
    assert attention.cooperative and attention.source.count("q35_grid_sync();") >= 4
    assert "cudaLaunchCooperativeKernel((const void*)" + attention.name in tiny_cuda["decode"].launch
    silu = next(k for k in tiny_cuda["decode"].kernels if k.kind == "silu")
    assert not silu.cooperative and "q35_grid_sync" not in silu.source


def test_launcher_runs_every_kernel_in_program_order(tiny_cuda: dict[str, PhaseSources]) -> None:
    sources = tiny_cuda["decode"]
    launch = sources.launch
    for kernel in sources.kernels:
        assert f"(const void*){kernel.name}, grid" in launch
        assert f"void {kernel.name}(" in sources.header
    body = launch[launch.index("cudaError_t q35_decoder(") :]
    order = [body.index(f"(const void*){name}, grid") for name in ("decoder_00_rmsnorm", "decoder_03_attention")]
    assert order == sorted(order)
    assert "q35_decoder(" in launch[launch.index("cudaError_t q35_main(") :]
    assert re.search(r"#define Q35_WORKSPACE_main \d+LL", sources.header)


def _header() -> str:
    from q35c.codegen.cuda.header import HEADER

    return HEADER


def test_kernel_filenames_are_their_names() -> None:
    kernel = Kernel("decoder_00_rmsnorm", "rmsnorm", "decoder", "", (), 64, 0, False)
    assert kernel.filename == "decoder_00_rmsnorm.cu"
    assert kernel.grid_rule() == "1"


def test_build_emit_cuda_writes_a_directory(tmp_path: Path) -> None:
    out = tmp_path / "cuda"
    done = q35c("build", "tiny", "--target", "h100-sxm", "--emit", "cuda", "-o", str(out), "--prompt", "64")
    assert done.returncode == 0, done.stderr
    for phase in ("decode", "prefill"):
        files = {p.name for p in (out / phase).iterdir()}
        assert {"launch.cu", "q35c_kernels.h", "q35_cuda.h"} <= files
        assert len([f for f in files if f.endswith(".cu")]) == 17  # 16 kernels and the launcher
    assert (out / "q35_cuda.h").is_file()
    again = tmp_path / "again"
    q35c("build", "tiny", "--target", "h100-sxm", "--emit", "cuda", "-o", str(again), "--prompt", "64")
    for path in out.rglob("*"):
        if path.is_file():
            assert path.read_bytes() == (again / path.relative_to(out)).read_bytes(), path.name


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target", "mi300x", "-o", "X"], "needs an NVIDIA GPU target; mi300x is AMD"),
        (["--target", "host", "-o", "X"], "needs an NVIDIA GPU target"),
        (["--target", "h100-sxm"], "needs one NVIDIA --target"),
        (["--target", "h100-sxm,a100-sxm", "-o", "X"], "needs one NVIDIA --target"),
        (["--target", "h100-sxm", "--quant", "q3p5", "-o", "X"], "is not divisible by the group size"),
        (["--target", "h100-sxm", "-o", "X", "--dump-ir", "Y"], "writes kernels, not IR"),
    ],
)
def test_bad_requests_exit_2_and_write_nothing(tmp_path: Path, args: list[str], message: str) -> None:
    args = [str(tmp_path / a) if a in ("X", "Y") else a for a in args]
    done = q35c("build", "tiny", "--emit", "cuda", *args)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_model_that_needs_several_devices_is_refused(tmp_path: Path) -> None:
    done = q35c(
        "build", "llama-2-70b", "--quant", "fp16", "--target", "h100-sxm", "--emit", "cuda", "-o", str(tmp_path / "X")
    )
    assert done.returncode == 2 and "takes 2 devices" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_quantized_embedding_unpacks_only_the_rows_it_gathers(
    compile_model: Callable[..., dict[str, ModuleOp]],
) -> None:
    """The pipeline's unpack stage (fuse-gather) computes each gathered element from the table's storage where
    the gather reads it, as the cost model counts it: one kernel reading the storage, no unpacked table."""
    module = compile_model("examples/hf/tiny.json", "q3p5:g=32")["decode"]
    embed = next(k for k in module_kernels(module).kernels if k.kind == "embed")
    assert not embed.cooperative
    assert [p.elements for p in embed.params if p.written] == [64]  # the one row of x, nothing else stored
    assert {p.name for p in embed.params if not p.written} >= {"b_embed_tokens_codes", "b_embed_tokens_scale"}


@pytest.fixture(scope="module")
def llama_cuda(compile_model: Callable[..., dict[str, ModuleOp]]) -> dict[str, PhaseSources]:
    """Llama-2-7B q3p5's kernels for h100-sxm (a decode step after 448 cached tokens, a 384-token prefill)."""
    from q35c.targets.gpu_occupancy import sm_limits
    from q35c.targets.registry import get_target

    limits = sm_limits(get_target("h100-sxm").spec)
    return {p: module_kernels(m, limits) for p, m in compile_model("llama-2-7b", "q3p5").items()}


def test_reductions_are_split_by_their_shape(llama_cuda: dict[str, PhaseSources]) -> None:
    """Llama-2-7B's reductions: a norm's sum of squares and softmax over the context take a block per output,
    the scores a warp per output (at prefill because its keys are read contiguously by a warp), the weighted
    values at prefill a thread per output (neighbouring threads read neighbouring values); every kernel's
    index arithmetic is 32-bit."""
    phases = llama_cuda

    def source(phase: str, kind: str) -> str:
        return next(k.source for k in phases[phase].kernels if k.kind == kind)

    def mode(text: str, result: str) -> str:
        found = re.search(rf"// linalg\.generic -> {result}( \(a (warp|block) per output\))?\n", text)
        assert found, result
        return found.group(2) or "thread"

    for phase in ("decode", "prefill"):
        assert mode(source(phase, "rmsnorm"), "ss") == "block" and "q35_block_sum" in source(phase, "rmsnorm")
        assert mode(source(phase, "attention"), "dots") == "warp"
        assert mode(source(phase, "attention"), "max") == "block"
        assert mode(source(phase, "attention"), "sum") == "block"
    assert mode(source("decode", "attention"), "o") == "block"
    assert mode(source("prefill", "attention"), "o") == "thread"
    assert mode(source("decode", "add"), "[a-z_0-9]+") == "thread"
    assert all("using q35_i = int;" in k.source for p in phases.values() for k in p.kernels)


def test_decode_gemv_reads_a_pair_of_columns_with_no_index_division_left(llama_cuda: dict[str, PhaseSources]) -> None:
    """The 4096x4096 decode GEMV: 16-row tiles; its lanes read weights as pairs of columns (k = 2 kk + u), and
    the reshapes between the staged words and the weight leave no division or remainder by a row length (the
    ranges of n < 16 and kk < 2048 remove them): the q3p5 group of 128 is kk / 64, the slot in it 2 (kk % 64) + u."""
    gemv = next(k for k in llama_cuda["decode"].kernels if k.function.startswith("linear.1x4096x4096."))
    assert "tile 1x16x4096, gemv path" in gemv.source
    assert "auto W0 = [&](q35_i n, q35_i kk) -> float { return g1(n, (kk / 64), ((kk % 64) * 2)); };" in gemv.source
    assert "auto W1 = [&](q35_i n, q35_i kk) -> float { return g1(n, (kk / 64), ((kk % 64) * 2 + 1)); };" in gemv.source
    assert "4096)" not in gemv.source.split("auto W0")[0].split("auto g0")[1]  # no "/ 4096)" or "% 4096)" in g0/g1
    prefill = next(k for k in llama_cuda["prefill"].kernels if k.function.startswith("linear.384x4096x4096."))
    assert "mma path" in prefill.source and "kc += 64" in prefill.source


def test_index_arithmetic_is_64_bit_for_a_tensor_of_a_billion_elements() -> None:
    from xdsl.dialects import tensor
    from xdsl.dialects.builtin import Float16Type, TensorType

    from q35c.codegen.cuda.cexpr import NARROW_LIMIT, needs_wide

    large = tensor.EmptyOp([], TensorType(Float16Type(), [NARROW_LIMIT // 4096, 4096]))
    small = tensor.EmptyOp([], TensorType(Float16Type(), [NARROW_LIMIT // 4096 - 1, 4096]))
    assert needs_wide(iter([large])) and not needs_wide(iter([small]))


def test_gpu_tiles_have_a_row_per_warp_of_a_linear_kernel() -> None:
    """The GPU tile policy's preferred N tile (`targets.gpu.GEMV_ROWS`) is the warps of a linear kernel's block:
    the GEMV gives each warp a row, so the two numbers move together."""
    from q35c.codegen.cuda.linear import THREADS
    from q35c.targets.registry import get_target

    for target in ("a100-sxm", "h100-sxm", "h200"):
        assert get_target(target).tile_policy().prefer_n == THREADS // 32
