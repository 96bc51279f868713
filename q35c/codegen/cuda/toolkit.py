"""The CUDA toolkit: compile emitted kernels with nvcc and read what ptxas made of them.

    toolkit = find_toolkit()                                   # Q35Error (exit 2) where none is installed
    for r in toolkit.resources([Path("out/decode/linear_....cu")], "sm_90"):
        print(r.kernel, r.registers, r.smem_bytes, r.spill_bytes)

`resources` compiles the files as one translation unit (a generated file that includes each of them; kernel
names and their constants are unique across a phase) to a cubin, with `--resource-usage` (ptxas -v): one
nvcc run per architecture covers a whole phase. A file nvcc or ptxas rejects is a bug of the emitter: a
RuntimeError (an internal error, exit 70) carrying the compiler's message.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from q35c.util.errors import Q35Error

SEARCH = ("/usr/local/cuda/bin", "/usr/local/bin", "/usr/bin")
ARCHS = ("sm_80", "sm_90")
TIMEOUT_S = 600

_ENTRY = re.compile(r"Compiling entry function '([^']+)' for '(sm_\d+)'")
_SPILL = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_USED = re.compile(r"Used (\d+) registers")
_SMEM = re.compile(r"(\d+) bytes smem")


@dataclass(frozen=True)
class KernelResources:
    """What ptxas reports for one kernel on one architecture."""

    kernel: str
    arch: str
    registers: int
    smem_bytes: int
    spill_bytes: int
    stack_bytes: int


@dataclass(frozen=True)
class Toolkit:
    nvcc: str

    def version(self) -> str:
        out = self._run([self.nvcc, "--version"], None)
        lines = [line for line in out.splitlines() if "release" in line]
        return lines[-1].strip() if lines else out.strip().splitlines()[-1]

    def _run(self, command: list[str], cwd: Path | None) -> str:
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
        if done.returncode != 0:
            message = (done.stderr or done.stdout).strip()
            raise RuntimeError(f"{Path(command[0]).name} rejected the emitted CUDA:\n{message}")
        return done.stdout + done.stderr

    def _unity(self, files: Sequence[Path], folder: Path) -> Path:
        unity = folder / "q35c_unity.cu"
        unity.write_text("".join(f'#include "{Path(f).resolve()}"\n' for f in files), encoding="utf-8")
        return unity

    def resources(self, files: Sequence[Path], arch: str) -> list[KernelResources]:
        """Compile `files` for `arch` to a cubin; the resources of every kernel in them."""
        check_arch(arch)
        with tempfile.TemporaryDirectory(prefix="q35c-nvcc-") as tmp:
            folder = Path(tmp)
            unity = self._unity(files, folder)
            include = {str(Path(f).resolve().parent) for f in files}
            command = [self.nvcc, f"-arch={arch}", "-cubin", "-std=c++17", "--resource-usage", "-o"]
            command += [str(folder / "out.cubin"), *[f"-I{d}" for d in sorted(include)], str(unity)]
            return parse_resources(self._run(command, folder))

    def cubin(self, files: Sequence[Path], arch: str, extra: str = "") -> bytes:
        """Compile `files` (and `extra` source text) as one translation unit to a cubin for `arch`, the
        architecture of a device (`sm_90`, `sm_86`, ...; sm_80 or later: the kernels use cp.async)."""
        check_device_arch(arch)
        with tempfile.TemporaryDirectory(prefix="q35c-nvcc-") as tmp:
            folder = Path(tmp)
            unity = self._unity(files, folder)
            if extra:
                unity.write_text(unity.read_text(encoding="utf-8") + extra, encoding="utf-8")
            include = {str(Path(f).resolve().parent) for f in files}
            out = folder / "out.cubin"
            command = [self.nvcc, f"-arch={arch}", "-cubin", "-std=c++17", "-lineinfo", "-o", str(out)]
            self._run([*command, *[f"-I{d}" for d in sorted(include)], str(unity)], folder)
            return out.read_bytes()

    def ptx(self, file: Path, arch: str) -> str:
        """The PTX of one emitted file."""
        check_arch(arch)
        with tempfile.TemporaryDirectory(prefix="q35c-nvcc-") as tmp:
            out = Path(tmp) / "out.ptx"
            self._run([self.nvcc, f"-arch={arch}", "-ptx", "-std=c++17", "-o", str(out), str(file)], Path(tmp))
            return out.read_text(encoding="utf-8")

    def compile_host(self, file: Path, archs: Sequence[str] = ARCHS) -> None:
        """Compile a file with host code (a launcher) to an object for `archs`."""
        for arch in archs:
            check_arch(arch)
        gencode = [f"-gencode=arch=compute_{a[3:]},code={a}" for a in archs]
        with tempfile.TemporaryDirectory(prefix="q35c-nvcc-") as tmp:
            command = [self.nvcc, *gencode, "-c", "-std=c++17", "-o", str(Path(tmp) / "out.o"), str(file)]
            self._run(command, Path(tmp))


def check_arch(arch: str) -> None:
    if arch not in ARCHS:
        raise Q35Error(f"unsupported CUDA architecture {arch!r} (q35c's kernels need cp.async: {', '.join(ARCHS)})")


def check_device_arch(arch: str) -> None:
    """A device architecture the kernels can run on: sm_XY with X >= 8 (cp.async, sm_80 and later)."""
    match = re.fullmatch(r"sm_(\d+)(\d)a?", arch)
    if match is None or int(match.group(1)) < 8:
        raise Q35Error(f"unsupported CUDA architecture {arch!r}: q35c's kernels need sm_80 or later (cp.async)")


def parse_resources(text: str) -> list[KernelResources]:
    """The per-kernel lines of `nvcc --resource-usage` (ptxas -v)."""
    found: list[KernelResources] = []
    current: dict[str, object] | None = None

    def close() -> None:
        if current is not None and "registers" in current:
            found.append(
                KernelResources(
                    str(current["kernel"]),
                    str(current["arch"]),
                    int(str(current["registers"])),
                    int(str(current.get("smem", 0))),
                    int(str(current.get("spill", 0))),
                    int(str(current.get("stack", 0))),
                )
            )

    for line in text.splitlines():
        if entry := _ENTRY.search(line):
            close()
            current = {"kernel": entry.group(1), "arch": entry.group(2)}
            continue
        if current is None:
            continue
        if spill := _SPILL.search(line):
            current["stack"] = int(spill.group(1))
            current["spill"] = int(spill.group(2)) + int(spill.group(3))
        if used := _USED.search(line):
            current["registers"] = int(used.group(1))
            if smem := _SMEM.search(line):
                current["smem"] = int(smem.group(1))
    close()
    return found


def find_toolkit() -> Toolkit:
    """nvcc on PATH or in the usual CUDA folders; Q35Error (a setup error) when there is none."""
    path = os.environ.get("PATH", "")
    found = shutil.which("nvcc", path=os.pathsep.join([path, *SEARCH]))
    if found is None:
        raise Q35Error("nvcc not found: compiling CUDA kernels needs the CUDA toolkit (nvcc, ptxas) on PATH")
    return Toolkit(found)
