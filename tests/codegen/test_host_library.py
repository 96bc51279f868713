"""Native host code: the tiny model's decode step and prefill compiled to a shared library by mlir-opt,
mlir-translate and clang-22, called through ctypes and compared with the numpy reference; single linear kernels
of every scheme family compared with the dequantized weights, their unpacked codes bit for bit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from q35c import formats
from q35c.codegen.host.abi import c_identifier
from q35c.codegen.host.library import LibraryRequest, build_library, emit_library
from q35c.codegen.host.measure import step_arguments
from q35c.codegen.host.runtime import HostLibrary
from q35c.codegen.host.toolchain import Toolchain
from q35c.driver.pipeline import Runner
from q35c.frontend import load_model
from q35c.passes._build.code_layout import MIN_LEVELS
from q35c.predict.predictor import Scenario
from q35c.targets.target import get_target
from q35c.util.errors import Q35Error
from q35c.verify.linear import LinearCase, linear_data, linear_module, lower_for_host, output_tolerance
from q35c.verify.model import F16_ULP_RELATIVE, model_inputs, model_params
from q35c.verify.reference import evaluate, rounding_depth

QUANT = "q3p5:g=32"
SCENARIO = Scenario(batch=1, prompt=3, gen=4)  # prefill: 3 tokens; decode: 1 token after 5 cached


@pytest.fixture(scope="module")
def tiny_library(host_toolchain: Toolchain, tmp_path_factory: pytest.TempPathFactory) -> HostLibrary:
    out = tmp_path_factory.mktemp("tiny") / "lib"
    build_library(LibraryRequest("tiny", QUANT, SCENARIO), out, "so")
    return HostLibrary.load(out)


def test_library_directory_has_header_manifest_and_entries(tiny_library: HostLibrary) -> None:
    directory = tiny_library.path.parent
    assert sorted(p.name for p in directory.iterdir()) == ["libq35.h", "libq35.json", "libq35.so"]
    entries = tiny_library.entries
    assert {"q35_decode_step", "q35_prefill_step"} <= set(entries)
    kernels = [e for e in entries.values() if e.kind == "linear"]
    assert kernels and all(e.symbol.startswith(("q35_decode_linear_", "q35_prefill_linear_")) for e in kernels)
    header = (directory / "libq35.h").read_text()
    for entry in entries.values():
        assert f"void {entry.c_name}(" in header
    assert tiny_library.manifest["phases"] == {
        "decode": {"seq": 1, "context": 5, "batch": 1},
        "prefill": {"seq": 3, "context": 0, "batch": 1},
    }


def check_step(library: HostLibrary, phase: str, threads: tuple[int, ...] = (1, 2), quant: str = QUANT) -> None:
    """The phase's step on random weights and inputs equals the numpy reference within q35c verify's tolerance,
    and the same (bit for bit) with every thread count in `threads`."""
    shape = library.manifest["phases"][phase]
    graph = load_model("tiny", quant=quant, seq=shape["seq"], context=shape["context"], batch=shape["batch"]).module
    rng = np.random.default_rng(7)
    params, inputs = model_params(graph, rng), model_inputs(graph, rng)
    y_ref = evaluate(graph, inputs, params, "main")[0].astype(np.float64)
    entry = library.entries[f"q35_{phase}_step"]
    outputs: list[NDArray[np.float16]] = []
    for count in threads:
        library.set_threads(count)
        (y,) = library.call(entry.symbol, step_arguments(entry, params, inputs))
        outputs.append(y)
    # The threads split parallel loops only: each output is summed in the same order.
    assert all(np.array_equal(outputs[0], other) for other in outputs[1:])
    y = outputs[0].astype(np.float64)
    tolerance = rounding_depth(graph, "main") * F16_ULP_RELATIVE * np.abs(y_ref).max()
    assert y.shape == y_ref.shape
    assert np.abs(y - y_ref).max() <= tolerance
    assert np.array_equal(y.argmax(-1), y_ref.argmax(-1))


@pytest.mark.parametrize("phase", ["decode", "prefill"])
def test_step_matches_reference(tiny_library: HostLibrary, phase: str) -> None:
    check_step(tiny_library, phase)


def test_batch_of_two_matches_reference(host_toolchain: Toolchain, tmp_path: Path) -> None:
    """Two sequences per step: strided copies of the batch's rows (MLIR's runtime `memrefCopy`) included."""
    build_library(LibraryRequest("tiny", QUANT, Scenario(batch=2, prompt=2, gen=2)), tmp_path / "lib", "so")
    library = HostLibrary.load(tmp_path / "lib")
    for phase in ("decode", "prefill"):
        check_step(library, phase, threads=(1,))


def test_wrong_argument_is_refused_before_the_call(tiny_library: HostLibrary) -> None:
    entry = tiny_library.entries["q35_decode_step"]
    args = [np.zeros(t.shape, np.float32) for t in entry.args]
    with pytest.raises(Q35Error, match="argument ids is \\[1\\] i32, got \\[1\\] float32"):
        tiny_library.call(entry.symbol, args)


SCHEMES = ["q3p5:g=32", "q3p5:g=64:container=byte", "int4:g=32", "q4_0", "q4_1", "q8_0", "int8", "fp16"]


def test_linear_kernels_of_every_family(host_toolchain: Toolchain, tmp_path: Path) -> None:
    """One token (matrix-vector: fuse-unpack and reduce-in-registers apply) and two (unpacked once per tile)."""
    cases = {
        c_identifier(f"{s}_t{t}"): LinearCase(tokens=t, n=48, k=128, spec=s, seed=3) for s in SCHEMES for t in (1, 2)
    }
    modules = {name: lower_for_host(linear_module(c.tokens, c.n, c.k, c.spec)) for name, c in cases.items()}
    emit_library(modules, {"model": "linear"}, tmp_path / "lib", "so", host_toolchain)
    lib = HostLibrary.load(tmp_path / "lib")
    for name, case in cases.items():
        x, qt = linear_data(case)
        entry = lib.entries[f"q35_{name}_linear"]
        params = {"linear.weight": qt}
        outputs = lib.call(entry.symbol, step_arguments(entry, params, [x]))
        fmt = formats.get(case.spec)
        w_ref = fmt.dequantize(qt)
        offset = np.zeros_like(w_ref, dtype=np.float64)
        groups = fmt.scheme.n_groups(case.k) if fmt.scheme.is_quantized else 1
        if qt.offset is not None:
            offset = np.repeat(qt.offset.astype(np.float64), case.k // groups, axis=1)
        y_ref = x.astype(np.float64) @ w_ref.astype(np.float64).T
        # `integer-matvec` may quantize the activations (to at least MIN_LEVELS per sign and group).
        levels = MIN_LEVELS if fmt.scheme.is_quantized else None
        tolerance = output_tolerance(x, w_ref, offset, groups, half=True, levels=levels)
        assert np.all(np.abs(outputs[0].astype(np.float64) - y_ref) <= tolerance), case.spec
        if fmt.scheme.is_quantized:
            assert np.array_equal(outputs[1], fmt.unpack(qt.packed)), f"{case.spec}: codes differ"


def assert_within_bound(y: NDArray[Any], x: NDArray[Any], qt: Any, spec: str, k: int) -> None:
    """y = x W^T of the kernel within the verify bound for quantized activations (`output_tolerance`)."""
    fmt = formats.get(spec)
    w_ref = fmt.dequantize(qt)
    groups = fmt.scheme.n_groups(k)
    offset = np.zeros_like(w_ref, dtype=np.float64)
    if qt.offset is not None:
        offset = np.repeat(qt.offset.astype(np.float64), k // groups, axis=1)
    y_ref = x.astype(np.float64) @ w_ref.astype(np.float64).T
    tolerance = output_tolerance(x, w_ref, offset, groups, half=True, levels=MIN_LEVELS)
    assert np.all(np.abs(y.astype(np.float64) - y_ref) <= tolerance), spec


def check_linear(lib: HostLibrary, name: str, case: LinearCase, codes: bool = True) -> NDArray[np.float16]:
    """The library's kernel `name` on `case`'s data: y within the bound with quantized activations, and (with
    `codes`) its unpacked codes bit for bit; y."""
    x, qt = linear_data(case)
    entry = lib.entries[f"q35_{name}_linear"]
    outputs = lib.call(entry.symbol, step_arguments(entry, {"linear.weight": qt}, [x]))
    fmt = formats.get(case.spec)
    assert_within_bound(outputs[0], x, qt, case.spec, case.k)
    if codes:
        assert np.array_equal(outputs[1], fmt.unpack(qt.packed)), f"{case.spec}: codes differ"
    return outputs[0]


MULTI_ROW = ["q3p5", "q3p5:container=byte", "int4", "q4_0", "q4_1", "q8_0"]


def test_multi_row_integer_kernels(host_toolchain: Toolchain, tmp_path: Path) -> None:
    """Several token rows (blocks of rows and a tail, and fewer rows than a block): integer-matvec's kernels
    unpack each part of codes once for a block of rows; every row within its bound, the same with two threads."""
    cases = {
        c_identifier(f"{s}_t{t}"): LinearCase(tokens=t, n=40, k=256, spec=s, seed=11)
        for s in MULTI_ROW
        for t in ((3, 11) if s in ("q3p5", "q4_1") else (11,))
    }
    modules = {name: lower_for_host(linear_module(c.tokens, c.n, c.k, c.spec)) for name, c in cases.items()}
    emit_library(modules, {"model": "linear"}, tmp_path / "lib", "so", host_toolchain)
    lib = HostLibrary.load(tmp_path / "lib")
    for name, case in cases.items():
        lib.set_threads(1)
        y = check_linear(lib, name, case)
        lib.set_threads(2)
        assert np.array_equal(check_linear(lib, name, case, codes=False), y)


def test_float_activations_on_request(host_toolchain: Toolchain, tmp_path: Path) -> None:
    """`integer-activations=false`: one-token kernels keep float activations, within the float bound (which the
    integer kernels of this case exceed)."""
    case = LinearCase(tokens=1, n=48, k=256, spec="q3p5:g=64", seed=3)
    x, qt = linear_data(case)
    fmt = formats.get(case.spec)
    w_ref = fmt.dequantize(qt)
    offset = np.repeat(np.asarray(qt.offset, dtype=np.float64), 64, axis=1)
    y_ref = x.astype(np.float64) @ w_ref.astype(np.float64).T
    tolerance = output_tolerance(x, w_ref, offset, 4, half=True)
    errors = {}
    for integer in (True, False):
        module = lower_for_host(linear_module(1, case.n, case.k, case.spec))
        manifest = {"model": "linear", "options": {"integer-activations": str(integer).lower()}}
        emit_library({"q": module}, manifest, tmp_path / f"lib{integer}", "so", host_toolchain)
        lib = HostLibrary.load(tmp_path / f"lib{integer}")
        entry = lib.entries["q35_q_linear"]
        (y, *_) = lib.call(entry.symbol, step_arguments(entry, {"linear.weight": qt}, [x]))
        errors[integer] = np.abs(y.astype(np.float64) - y_ref) - tolerance
    assert np.all(errors[False] <= 0)
    assert np.any(errors[True] > 0)


K_TILED = [
    ("q3p5", 0, 1, 768), ("q3p5", 16, 1, 768), ("q4_0", 0, 1, 768), ("q3p5", 16, 11, 768), ("q4_1", 0, 11, 768),
    ("q8_0", 16, 11, 768), ("q4_0", 0, 11, 800), ("q8_0", 0, 3, 800),
]  # fmt: skip


@pytest.mark.parametrize(("spec", "tile_n", "tokens", "k"), K_TILED)
def test_k_tiled_linear_kernels(
    host_toolchain: Toolchain, tmp_path: Path, spec: str, tile_n: int, tokens: int, k: int
) -> None:
    """K split in tiles (the pipeline option tile-k; N too with tile_n; several tokens in tiles of 8 rows):
    integer-matvec's kernels over whole rows (the scales of q4_0, q4_1 and q8_0, stored in each block, decoded
    for whole rows; K = 800: a remainder tile after the peeled last one) give y within the bound."""
    case = LinearCase(tokens=tokens, n=48, k=k, spec=spec, seed=5)
    module = linear_module(case.tokens, case.n, case.k, case.spec)
    options = {"keep-int-codes": "false", "tile-k": "256", "tile-n": str(tile_n), "tile-t": "8" if tokens > 1 else "0"}
    stages = get_target("host").pipeline(options)
    Runner(verify=True, target="host").run(module, stages)
    emit_library({"kt": module}, {"model": "linear"}, tmp_path / "lib", "so", host_toolchain)
    lib = HostLibrary.load(tmp_path / "lib")
    x, qt = linear_data(case)
    entry = lib.entries["q35_kt_linear"]
    y, codes = lib.call(entry.symbol, step_arguments(entry, {"linear.weight": qt}, [x]))
    fmt = formats.get(spec)
    assert_within_bound(y, x, qt, spec, case.k)
    assert np.array_equal(codes, fmt.unpack(qt.packed))


def forks_per_function(llvm_ir: str) -> dict[str, int]:
    """The OpenMP regions each function of an LLVM IR module forks (calls of `__kmpc_fork_call`)."""
    counts: dict[str, int] = {}
    for chunk in llvm_ir.split("\ndefine ")[1:]:
        name = chunk.split("@", 1)[1].split("(", 1)[0]
        counts[name] = chunk.split("\n}\n", 1)[0].count("@__kmpc_fork_call(")
    counts = {name: n for name, n in counts.items() if not name.startswith("_mlir_ciface_")}
    return counts


def test_one_token_kernels_fork_once(host_toolchain: Toolchain, tmp_path: Path) -> None:
    """`parallel-tiles`: a one-token kernel tiled in N (three tiles of 64 rows and a last one of 48) and a q4_1
    kernel whose scales and offsets are unpacked by loops of their own each fork one OpenMP region (they forked
    4 and 3); on two threads both stay within the bound."""
    if host_toolchain.openmp is None:
        pytest.skip("libomp is not installed")
    cases = {"tiled": LinearCase(1, 240, 2048, "q3p5", seed=7), "scales": LinearCase(1, 256, 1024, "q4_1", seed=7)}
    modules = {}
    for name, case in cases.items():
        module = linear_module(case.tokens, case.n, case.k, case.spec)
        options = {"tile-n": "64" if name == "tiled" else "0"}
        Runner(verify=True, target="host").run(module, get_target("host").pipeline(options))
        modules[name] = module
    emit_library(modules, {"model": "linear"}, tmp_path / "ll", "llvm", host_toolchain)
    forks = forks_per_function((tmp_path / "ll" / "libq35.ll").read_text())
    kernels = {name: n for name, n in forks.items() if "_linear_1x" in name and not name.endswith("omp_par")}
    assert len(kernels) == 2 and set(kernels.values()) == {1}, forks
    emit_library(modules, {"model": "linear"}, tmp_path / "lib", "so", host_toolchain)
    lib = HostLibrary.load(tmp_path / "lib")
    lib.set_threads(2)
    for name, case in cases.items():
        check_linear(lib, name, case)


def test_loop_rewrites_by_groups_of_functions_equal_the_whole_module_rewrite(host_toolchain: Toolchain) -> None:
    """`serial_small_loops` parses, rewrites and prints the top-level operations in groups (in parallel
    processes); after mlir-opt's lowering the LLVM dialect is the same as rewriting the module at once."""
    from q35c.codegen.host.library import compile_phase_modules, merge_phases, native_stage
    from q35c.codegen.host.lowering import BUFFERS, FINISH, LOOPS, OPENMP, TO_LLVM, serial_small_loops, split_module
    from q35c.codegen.host.lowering import _rewrite_module as whole  # pyright: ignore[reportPrivateUsage]
    from q35c.driver.pipeline import module_text

    modules, _ = compile_phase_modules(LibraryRequest("tiny", QUANT, SCENARIO))
    merged, _ = merge_phases(modules)
    Runner(verify=True).apply(native_stage(True), merged)
    loops = host_toolchain.opt(module_text(merged), (*BUFFERS, *LOOPS, "--mlir-print-op-generic"))
    split = split_module(loops)
    assert split is not None and len(split[1]) > 2  # the kernels and the steps: several groups
    rest = (*OPENMP, *TO_LLVM, *FINISH)
    assert host_toolchain.opt(serial_small_loops(loops), rest) == host_toolchain.opt(whole(loops), rest)
    assert split_module(loops.replace('"builtin.module"() ({', '"builtin.module"() ({\n"bad"', 1)) is None
