"""Weights stored with rows interleaved by blocks of 8 (`integer-matvec`'s `interleave-rows`, the host library's
default): the library says which arguments are stored so, its runtime interleaves the arrays it is given, and
the kernels (one token over 8 outputs per step, N tiles and K tiles merged into one kernel over the whole weight;
several rows reading row n mod 8 of block n / 8) compute what the plain-row kernels compute."""

from __future__ import annotations

import mmap
from pathlib import Path

import numpy as np
import pytest

from q35c.codegen.host.abi import c_identifier
from q35c.codegen.host.library import LibraryRequest, build_library, emit_library
from q35c.codegen.host.measure import step_arguments
from q35c.codegen.host.runtime import HUGE_PAGE, HostLibrary, deinterleave_rows, interleave_rows, weight_buffer
from q35c.codegen.host.toolchain import Toolchain
from q35c.driver.pipeline import Runner
from q35c.predict.predictor import Scenario
from q35c.targets.target import get_target
from q35c.util.errors import Q35Error
from q35c.verify.linear import LinearCase, linear_data, linear_module
from tests.codegen.test_host_library import assert_within_bound, check_step, forks_per_function

# (scheme, tokens, N, K, pipeline options): whole rows; N tiles of 64 and a peeled tile of 48; K tiles of 256
# merged; several rows (a block of 4 and a tail of 3 and 8 x 1 + 3 rows), tiles of 8 token rows.
CASES = [
    ("q3p5", 1, 96, 1024, {}),
    ("q3p5", 1, 240, 1024, {"tile-n": "64"}),
    ("int4", 1, 48, 768, {"tile-k": "256", "tile-n": "16"}),
    ("q3p5:container=byte", 3, 40, 256, {}),
    ("q3p5", 11, 48, 512, {"tile-t": "8"}),
]


def _module(case: LinearCase, options: dict[str, str]):  # type: ignore[no-untyped-def]
    module = linear_module(case.tokens, case.n, case.k, case.spec, codes=False)
    stages = get_target("host").pipeline({"keep-int-codes": "false", **options})
    Runner(verify=True, target="host").run(module, stages)
    return module


@pytest.fixture(scope="module")
def libraries(host_toolchain: Toolchain, tmp_path_factory: pytest.TempPathFactory) -> dict[int, HostLibrary]:
    """The cases' kernels in a library with interleaved rows (8) and one with plain rows (1)."""
    built: dict[int, HostLibrary] = {}
    for rows in (8, 1):
        modules = {c_identifier(f"c{i}"): _module(LinearCase(t, n, k, s, seed=i), o) for i, (s, t, n, k, o) in
                   enumerate(CASES)}  # fmt: skip
        out = tmp_path_factory.mktemp(f"rows{rows}") / "lib"
        emit_library(modules, {"model": "linear", "options": {"interleave-rows": rows}}, out, "so", host_toolchain)
        built[rows] = HostLibrary.load(out)
    return built


@pytest.mark.parametrize("index", range(len(CASES)))
def test_interleaved_kernels_compute_the_plain_result(libraries: dict[int, HostLibrary], index: int) -> None:
    spec, tokens, n, k, _ = CASES[index]
    case = LinearCase(tokens, n, k, spec, seed=index)
    x, qt = linear_data(case)
    outputs = {}
    for rows, lib in libraries.items():
        entry = lib.entries[f"q35_c{index}_linear"]
        storage = [a for a in entry.args if a.role is not None]
        groups = qt.scale.shape[1]
        assert all(a.interleave == ((8, groups) if rows == 8 else None) for a in storage), entry.args
        lib.set_threads(1)
        (y,) = lib.call(entry.symbol, step_arguments(entry, {"linear.weight": qt}, [x]))
        lib.set_threads(2)
        (y2,) = lib.call(entry.symbol, step_arguments(entry, {"linear.weight": qt}, [x]))
        assert np.array_equal(y, y2)  # the threads split the output blocks only
        assert_within_bound(y, x, qt, spec, k)
        outputs[rows] = y.astype(np.float64)
    # The same integer sums, scaled in another order: within a float16 rounding of the largest output (rows or
    # groups read from the wrong place would differ by about the outputs themselves).
    scale = np.abs(outputs[1]).max()
    assert np.abs(outputs[8] - outputs[1]).max() <= 2e-3 * scale


def test_one_token_kernel_over_tiles_forks_once(host_toolchain: Toolchain, tmp_path: Path) -> None:
    """N tiles (three of 64 rows and one of 48) and K tiles: one kernel over the whole weight, one OpenMP region,
    with the interleaved codes prefetched ahead (prefetch-streams)."""
    if host_toolchain.openmp is None:
        pytest.skip("libomp is not installed")
    module = _module(LinearCase(1, 240, 1024, "q3p5", seed=1), {"tile-n": "64", "tile-k": "256"})
    emit_library({"t": module}, {"model": "linear"}, tmp_path / "ll", "llvm", host_toolchain)
    text = (tmp_path / "ll" / "libq35.ll").read_text()
    forks = forks_per_function(text)
    kernels = {name: n for name, n in forks.items() if "_linear_1x" in name and not name.endswith("omp_par")}
    assert list(kernels.values()) == [1], forks
    assert "@llvm.prefetch" in text


def test_runtime_interleaves_and_restores_rows() -> None:
    rng = np.random.default_rng(0)
    plain = rng.integers(0, 1 << 30, (16, 12), dtype=np.int32)
    stored = interleave_rows(plain, 8, 3)
    # Block 1, group 2: rows 8 .. 15's columns 8 .. 11, one after the other.
    assert np.array_equal(stored[8:].reshape(3, 8, 4)[2], plain[8:16, 8:12])
    assert np.array_equal(deinterleave_rows(stored, 8, 3), plain)
    with pytest.raises(Q35Error, match="cannot be interleaved by 8 rows"):
        interleave_rows(plain[:12], 8, 3)


def test_large_weight_buffers_are_mappings_of_their_own() -> None:
    """From 2 MiB on a weight buffer is an anonymous mapping (whole huge pages, advised for them); below, an
    ordinary array."""
    big = weight_buffer((HUGE_PAGE // 4 + 1,), np.dtype(np.float32))
    small = weight_buffer((16,), np.dtype(np.float32))
    view = big.base
    while isinstance(view, np.ndarray):
        view = view.base
    assert isinstance(view, memoryview) and isinstance(view.obj, mmap.mmap) and len(view.obj) == 2 * HUGE_PAGE
    assert big.ctypes.data % 4096 == 0 and big.flags.c_contiguous and big.flags.writeable
    assert small.flags.owndata and small.shape == (16,)


def test_header_names_the_layout(libraries: dict[int, HostLibrary]) -> None:
    header = (libraries[8].path.parent / "libq35.h").read_text()
    assert "96x112 i32 (linear.weight codes; rows interleaved by 8 in 8 column groups)" in header
    assert "rows interleaved" not in (libraries[1].path.parent / "libq35.h").read_text()


def test_weights_are_interleaved_once_per_array(libraries: dict[int, HostLibrary]) -> None:
    """Entries bound to the same weight arrays (a decode step and a prefill) share one interleaved copy."""
    lib = libraries[8]
    entry = lib.entries["q35_c0_linear"]
    x, qt = linear_data(LinearCase(1, 96, 1024, "q3p5", seed=0))
    first = lib.prepare(entry.symbol, step_arguments(entry, {"linear.weight": qt}, [x]))
    args = step_arguments(entry, {"linear.weight": qt}, [x])  # new views of the same arrays
    second = lib.prepare(entry.symbol, args)
    assert all(a is b for a, b in zip(first.inputs[1:], second.inputs[1:], strict=True))
    assert not np.shares_memory(first.inputs[1], qt.packed)
    lib.release()
    assert lib.prepare(entry.symbol, args).inputs[1] is not first.inputs[1]


def test_tiny_steps_with_interleaved_weights(host_toolchain: Toolchain, tmp_path: Path) -> None:
    """tiny in q3p5 with groups of 64 (integer kernels): the decoder's linears, passed from each step through the
    decoder into the decode and prefill kernels, are stored interleaved in both steps; the embedding table (read
    by a gather) and the int8 head (a float kernel) are not; both steps match the numpy reference."""
    quant = "q3p5:g=64"
    build_library(LibraryRequest("tiny", quant, Scenario(batch=1, prompt=3, gen=4)), tmp_path / "lib", "so")
    library = HostLibrary.load(tmp_path / "lib")
    for phase in ("decode", "prefill"):
        entry = library.entries[f"q35_{phase}_step"]
        layouts = {(t.param, t.role): t.interleave for t in entry.args if t.role is not None}
        assert layouts[("decoder.0.q_proj", "codes")] == (8, 1)
        assert layouts[("decoder.1.down_proj", "offset")] == (8, 2)
        assert layouts[("embed_tokens", "codes")] is None and layouts[("lm_head", "codes")] is None
        check_step(library, phase, quant=quant)
