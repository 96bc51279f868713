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

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from xdsl.dialects.builtin import ModuleOp

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
    """`serial-small-loops`, then `parallel-tiles`, on mlir-opt's loops (generic form). The module is parsed and
    printed, not verified: xDSL's verifiers refuse some vector operands (`arith.fptosi` of a vector) that MLIR
    accepts; the next mlir-opt call verifies it.

    Parsing the generic form is most of the time (a SmolLM2 library's 4.5 MB took 16 s of a 33 s build), and
    both passes rewrite each function on its own, so the module's top-level operations are parsed, rewritten
    and printed in groups of about equal text (`split_module`), on the machine's cores (forked processes), each
    printed alone whatever the grouping (the same text on any machine)."""
    from q35c.driver.tree import map_forked

    split = split_module(text)
    if split is None:
        return _rewrite_module(text)
    aliases, ops = split
    groups = _balanced(ops, max(1, min(len(ops), os.cpu_count() or 1)))
    printed = map_forked(lambda i: _rewrite_ops(aliases, [ops[j] for j in groups[i]]), len(groups))
    texts = {j: op for group, done in zip(groups, printed, strict=True) for j, op in zip(group, done, strict=True)}
    body = "\n".join(texts[j] for j in range(len(ops)))
    return f"{aliases}builtin.module {{\n{body}\n}}\n"


MODULE_OPEN = '"builtin.module"() ({'
MODULE_CLOSE = "}) : () -> ()"


def split_module(text: str) -> tuple[str, list[str]] | None:
    """mlir-opt's generic text of a module without attributes as (its alias definitions, the text of each
    top-level operation), found by indentation (mlir-opt indents a region's operations two spaces deeper and
    escapes newlines in strings); None for any other text."""
    lines = text.split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    try:
        start = lines.index(MODULE_OPEN)
    except ValueError:
        return None
    if not lines or lines[-1] != MODULE_CLOSE or any(not line.startswith("#") for line in lines[:start]):
        return None
    body = lines[start + 1 : -1]
    firsts = [i for i, line in enumerate(body) if line.startswith('  "')]
    if not firsts or firsts[0] != 0 or any(line[:2] != "  " for line in body):
        return None
    ends = [*firsts[1:], len(body)]
    aliases = "".join(f"{line}\n" for line in lines[:start])
    return aliases, ["\n".join(body[a:b]) for a, b in zip(firsts, ends, strict=True)]


def _balanced(items: list[str], count: int) -> list[list[int]]:
    """The indices of `items` in `count` groups of about equal total length: the longest first, each to the
    group with the least so far; each group in order."""
    groups: list[list[int]] = [[] for _ in range(count)]
    loads = [0] * count
    for index in sorted(range(len(items)), key=lambda i: (-len(items[i]), i)):
        least = loads.index(min(loads))
        groups[least].append(index)
        loads[least] += len(items[index])
    return [sorted(group) for group in groups if group]


def _rewrite_ops(aliases: str, ops: list[str]) -> list[str]:
    """Parse top-level operations (generic text), run both passes, and print each operation alone."""
    module = _rewritten(f"{aliases}{MODULE_OPEN}\n" + "\n".join(ops) + f"\n{MODULE_CLOSE}\n")
    from q35c.driver.pipeline import module_text

    return [module_text(op) for op in module.ops]


def _rewrite_module(text: str) -> str:
    from q35c.driver.pipeline import module_text

    return module_text(_rewritten(text))


def _rewritten(text: str) -> ModuleOp:
    from xdsl.parser import Parser

    from q35c.driver.pipeline import make_context
    from q35c.passes.parallel_tiles import ParallelTilesPass
    from q35c.passes.prefetch_streams import PrefetchStreamsPass
    from q35c.passes.serial_small_loops import SerialSmallLoopsPass

    ctx = make_context()
    module = Parser(ctx, text).parse_module()
    SerialSmallLoopsPass().apply(ctx, module)
    ParallelTilesPass().apply(ctx, module)
    PrefetchStreamsPass().apply(ctx, module)
    return module


def lower(text: str, tools: Toolchain) -> str:
    """Merged tensor IR to the LLVM dialect (`native_lowering`); with OpenMP, only the loop nests that
    `serial-small-loops` leaves parallel become parallel regions."""
    if tools.openmp is None:
        return tools.opt(text, native_lowering(openmp=False))
    loops = tools.opt(text, (*BUFFERS, *LOOPS, "--mlir-print-op-generic"))
    return tools.opt(serial_small_loops(loops), (*OPENMP, *TO_LLVM, *OPENMP_TO_LLVM, *FINISH))


CLANG_FLAGS: tuple[str, ...] = ("-O3", "-march=native", "-fPIC")
