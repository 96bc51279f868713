"""From the merged host module (`q35c.codegen.host.abi`) to native code: mlir-opt, mlir-translate, clang.

`native_lowering()` is the mlir-opt pipeline, in four parts:

1. fusion on tensors: `linalg-fuse-elementwise-ops` folds what `fuse-unpack` left (the dequantization of
   kernels with several token rows, element-wise ops around the kernels) into its consumers;
2. bufferization: one-shot, results become trailing output buffers (the C ABI of `abi`), every buffer freed;
3. loops: linalg to `scf.parallel` over its parallel dimensions, which `convert-scf-to-openmp` runs on the
   host's cores (OpenMP; the thread count is the runtime's, `omp_set_num_threads`);
4. LLVM: the same conversions as `q35c verify`'s JIT path, plus OpenMP's.

`lower()` runs it in two mlir-opt calls: between the loops and OpenMP, `serial-small-loops`
(`passes/serial_small_loops.py`) makes the parallel loop nests too small to pay for a fork and join sequential,
so that only the big loops (a matrix-vector product's output rows) become OpenMP regions, and `parallel-tiles`
(`passes/parallel_tiles.py`) makes each kernel's loops one region: a tile loop and its parallel rows one nest,
the loops producing a row's scales inside that row's iteration, the peeled last tiles one loop with the others.

Then `mlir-translate --mlir-to-llvmir` and `clang-22 -O3 -march=native`, whose loop vectorizer turns the inner
loops into the host's vector instructions (the reductions may be reassociated: `reassociate-reductions` marks
them; `reduce-in-registers` gave them their sums in registers).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from q35c.codegen.host.toolchain import Toolchain

BUFFERS: tuple[str, ...] = (
    "--linalg-fuse-elementwise-ops",
    "--canonicalize",
    "--one-shot-bufferize=bufferize-function-boundaries function-boundary-type-conversion=identity-layout-map",
    "--buffer-results-to-out-params=hoist-static-allocs=true modify-public-functions=true",
    "--buffer-deallocation-pipeline",
)
LOOPS = ("--convert-linalg-to-parallel-loops",)
OPENMP = ("--convert-scf-to-openmp",)
TO_LLVM: tuple[str, ...] = (
    "--lower-affine",
    "--expand-strided-metadata",
    "--lower-affine",
    # vector ops (integer-matvec's kernels): transfers to plain loads, then LLVM's vector instructions
    "--convert-vector-to-llvm",
    # memref before scf: scf-to-openmp wraps each parallel body in a memref.alloca_scope, which must hold one
    # block when it is lowered, that is before the loops inside it become branches.
    "--finalize-memref-to-llvm",
    "--convert-scf-to-cf",
    "--convert-math-to-llvm",
    "--convert-arith-to-llvm",
    "--convert-index-to-llvm",
)
OPENMP_TO_LLVM = ("--convert-openmp-to-llvm",)
FINISH: tuple[str, ...] = ("--convert-func-to-llvm", "--convert-cf-to-llvm", "--reconcile-unrealized-casts")


def native_lowering(openmp: bool = True) -> tuple[str, ...]:
    """The mlir-opt arguments from merged tensor IR to the LLVM dialect; `openmp` runs parallel loops on
    OpenMP threads (without it they run in sequence)."""
    if openmp:
        return (*BUFFERS, *LOOPS, *OPENMP, *TO_LLVM, *OPENMP_TO_LLVM, *FINISH)
    return (*BUFFERS, *LOOPS, *TO_LLVM, *FINISH)


def serial_small_loops(text: str) -> str:
    """`serial-small-loops`, then `parallel-tiles`, on mlir-opt's loops. The module is parsed and printed, not
    verified: xDSL's verifiers refuse some vector operands (`arith.fptosi` of a vector) that MLIR accepts; the next
    mlir-opt call verifies it."""
    from xdsl.parser import Parser

    from q35c.driver.pipeline import make_context, module_text
    from q35c.passes.parallel_tiles import ParallelTilesPass
    from q35c.passes.serial_small_loops import SerialSmallLoopsPass

    ctx = make_context()
    module = Parser(ctx, text).parse_module()
    SerialSmallLoopsPass().apply(ctx, module)
    ParallelTilesPass().apply(ctx, module)
    return module_text(module)


def lower(text: str, tools: Toolchain) -> str:
    """Merged tensor IR to the LLVM dialect (`native_lowering`); with OpenMP, only the loop nests that
    `serial-small-loops` leaves parallel become parallel regions."""
    if tools.openmp is None:
        return tools.opt(text, native_lowering(openmp=False))
    loops = tools.opt(text, (*BUFFERS, *LOOPS, "--mlir-print-op-generic"))
    return tools.opt(serial_small_loops(loops), (*OPENMP, *TO_LLVM, *OPENMP_TO_LLVM, *FINISH))


CLANG_FLAGS: tuple[str, ...] = ("-O3", "-march=native", "-fPIC")
