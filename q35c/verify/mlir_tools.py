"""Real MLIR tools: find `mlir-opt` and `mlir-runner` (with their runtime libraries) and run them on text.

Tools are looked up on PATH first, then in Debian's `/usr/lib/llvm-22/bin` (package `mlir-22-tools`). A missing
tool is bad setup, not a bug: `find_tools` raises `Q35Error` (the command line reports it with exit status 2).
A tool that rejects our IR is an internal failure: `MlirToolError`, carrying the tool's own diagnostics.

`HOST_LOWERING` is the mlir-opt pipeline that takes upstream tensor-level IR (func, linalg, tensor, arith, math,
bufferization, memref) to the LLVM dialect with MLIR 22, ready for `mlir-runner`:

    mlir-opt in.mlir --one-shot-bufferize="bufferize-function-boundaries function-boundary-type-conversion=..."
        --convert-linalg-to-loops --lower-affine --convert-scf-to-cf --expand-strided-metadata --lower-affine
        --finalize-memref-to-llvm --convert-math-to-llvm --convert-arith-to-llvm --convert-index-to-llvm
        --convert-func-to-llvm --convert-cf-to-llvm --reconcile-unrealized-casts
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from q35c.util.errors import Q35Error

LLVM_BIN = Path("/usr/lib/llvm-22/bin")
RUNTIME_LIBRARIES = ("libmlir_runner_utils", "libmlir_c_runner_utils")

HOST_LOWERING: tuple[str, ...] = (
    "--one-shot-bufferize=bufferize-function-boundaries function-boundary-type-conversion=identity-layout-map",
    # Loops over memrefs; indexing maps with floordiv/mod become affine.apply, which lower-affine expands.
    "--convert-linalg-to-loops",
    "--lower-affine",
    "--convert-scf-to-cf",
    "--expand-strided-metadata",
    # Subviews at dynamic offsets (tiles) expand to affine.apply on the strided metadata.
    "--lower-affine",
    "--finalize-memref-to-llvm",
    # math.exp/sqrt/rsqrt/cos/sin -> LLVM intrinsics (rsqrt as 1/sqrt); the JIT resolves them to libm.
    "--convert-math-to-llvm",
    "--convert-arith-to-llvm",
    "--convert-index-to-llvm",
    "--convert-func-to-llvm",
    "--convert-cf-to-llvm",
    "--reconcile-unrealized-casts",
)


class MlirToolError(RuntimeError):
    """An MLIR tool failed on input q35c produced: an internal error, with the tool's stderr."""


@dataclass(frozen=True)
class MlirTools:
    """Paths of the MLIR tools and the runtime libraries `mlir-runner` loads (printMemref*)."""

    mlir_opt: Path
    mlir_runner: Path
    runtime_libraries: tuple[Path, ...]

    def opt(self, text: str, args: tuple[str, ...] = HOST_LOWERING) -> str:
        """Run mlir-opt on MLIR text; return its output text."""
        return _run([str(self.mlir_opt), *args], text, "mlir-opt")

    def run(self, llvm_text: str, entry: str = "main") -> str:
        """JIT-run an LLVM-dialect module's `entry` (a void function) and return what it printed."""
        libs = ",".join(str(p) for p in self.runtime_libraries)
        args = [str(self.mlir_runner), "-e", entry, "-entry-point-result=void", f"-shared-libs={libs}"]
        return _run(args, llvm_text, "mlir-runner")


def _run(args: list[str], text: str, what: str) -> str:
    proc = subprocess.run(args, input=text, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise MlirToolError(f"{what} failed (exit {proc.returncode}):\n{proc.stderr.strip()}")
    return proc.stdout


def find_tool(name: str) -> Path | None:
    """A tool on PATH, else in /usr/lib/llvm-22/bin; None if neither has it."""
    found = shutil.which(name) or shutil.which(name, path=str(LLVM_BIN))
    return Path(found) if found else None


def _runtime_library(name: str, tool: Path) -> Path | None:
    """`name`.so (or a versioned `name`.so.N) next to the tool's lib directory, or in llvm-22's."""
    for libdir in (tool.resolve().parent.parent / "lib", LLVM_BIN.parent / "lib"):
        candidates = sorted(libdir.glob(f"{name}.so*")) if libdir.is_dir() else []
        if candidates:
            return candidates[0]
    return None


def find_tools() -> MlirTools:
    """The MLIR tools for host verification; Q35Error naming what is missing and where it was looked for."""
    opt, runner = find_tool("mlir-opt"), find_tool("mlir-runner")
    missing = [name for name, path in (("mlir-opt", opt), ("mlir-runner", runner)) if path is None]
    where = f"PATH or {LLVM_BIN}"
    if missing:
        raise Q35Error(f"{' and '.join(missing)} not found on {where}; install Debian's mlir-22-tools")
    assert opt is not None and runner is not None
    libs = [_runtime_library(name, runner) for name in RUNTIME_LIBRARIES]
    if any(lib is None for lib in libs):
        absent = [n for n, lib in zip(RUNTIME_LIBRARIES, libs, strict=True) if lib is None]
        raise Q35Error(f"{', '.join(absent)}.so not found next to {runner}; install Debian's libmlir-22-dev")
    return MlirTools(opt, runner, tuple(lib for lib in libs if lib is not None))
