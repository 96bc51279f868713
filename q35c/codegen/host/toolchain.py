"""The native toolchain of the host: `mlir-opt`, `mlir-translate` (Debian's `mlir-22-tools`) and `clang-22`
(Debian's `clang-22`, with `libomp-22-dev` for OpenMP), found on PATH or in `/usr/lib/llvm-22/bin`, and MLIR's C
runner utilities (`libmlir-22`), which shared libraries link.

A missing tool is bad setup, not a q35c bug: `find_toolchain` raises `Q35Error` naming the Debian package
(`q35c` exits with status 2). A tool that rejects what q35c generated is an internal failure: `ToolError`,
carrying the tool's own diagnostics.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from q35c.util.errors import Q35Error

LLVM_BIN = Path("/usr/lib/llvm-22/bin")
LLVM_LIB = LLVM_BIN.parent / "lib"

# tool name -> the Debian package that installs it
PACKAGES = {"mlir-opt": "mlir-22-tools", "mlir-translate": "mlir-22-tools", "clang-22": "clang-22"}


class ToolError(RuntimeError):
    """A tool failed on input q35c generated: an internal error, with the tool's stderr."""


def find_tool(name: str) -> Path | None:
    """`name` on PATH, else in /usr/lib/llvm-22/bin (where clang-22 is plain `clang`); None if absent."""
    found = shutil.which(name) or shutil.which(name, path=str(LLVM_BIN))
    if found is None and name == "clang-22":
        found = shutil.which("clang", path=str(LLVM_BIN))
    return Path(found) if found else None


def find_runtime() -> Path | None:
    """MLIR's C runner utilities (`memrefCopy`, which lowered copies between strided buffers call), from
    Debian's `libmlir-22` (a dependency of `mlir-22-tools`)."""
    found = sorted(LLVM_LIB.glob("libmlir_c_runner_utils.so*")) if LLVM_LIB.is_dir() else []
    return found[0] if found else None


def find_openmp() -> Path | None:
    """The directory holding LLVM's OpenMP runtime (`libomp.so`, from `libomp-22-dev`), if installed."""
    return LLVM_LIB if (LLVM_LIB / "libomp.so").exists() else None


@dataclass(frozen=True)
class Toolchain:
    """Paths of the tools that turn final host IR into a shared library."""

    mlir_opt: Path
    mlir_translate: Path
    clang: Path
    openmp: Path | None  # libomp's directory; None: the library runs on one thread
    runtime: Path | None = None  # MLIR's C runner utilities, linked into shared libraries

    def opt(self, text: str, passes: Sequence[str]) -> str:
        return run_tool([str(self.mlir_opt), *passes], text, "mlir-opt")

    def translate(self, text: str) -> str:
        return run_tool([str(self.mlir_translate), "--mlir-to-llvmir"], text, "mlir-translate")

    def compile(self, llvm_ir: Path, output: Path, flags: Sequence[str], libraries: Sequence[str] = ()) -> None:
        """clang `flags` on an LLVM IR file, linking `libraries` after it, writing `output`."""
        args = [str(self.clang), *flags, "-Wno-override-module", str(llvm_ir), *libraries, "-o", str(output)]
        run_tool(args, "", "clang")


def run_tool(args: list[str], text: str, what: str) -> str:
    proc = subprocess.run(args, input=text, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ToolError(f"{what} failed (exit {proc.returncode}):\n{proc.stderr.strip()[:4000]}")
    return proc.stdout


def find_toolchain(*, need_openmp: bool = False) -> Toolchain:
    """The host toolchain; Q35Error naming the Debian package of each missing tool (and of libomp when
    `need_openmp`)."""
    found = {name: find_tool(name) for name in PACKAGES}
    missing = [name for name, path in found.items() if path is None]
    openmp = find_openmp()
    if missing:
        packages = sorted({PACKAGES[name] for name in missing})
        raise Q35Error(
            f"{', '.join(missing)} not found on PATH or in {LLVM_BIN}; install Debian's {' and '.join(packages)}"
        )
    if need_openmp and openmp is None:
        raise Q35Error(f"libomp.so not found in {LLVM_LIB}; install Debian's libomp-22-dev")
    runtime = find_runtime()
    if runtime is None:
        raise Q35Error(f"libmlir_c_runner_utils.so not found in {LLVM_LIB}; install Debian's libmlir-22")
    opt, translate, clang = (found[name] for name in PACKAGES)
    assert opt is not None and translate is not None and clang is not None
    return Toolchain(opt, translate, clang, openmp, runtime)
