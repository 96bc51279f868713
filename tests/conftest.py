"""Shared test helpers.

A test that needs an external tool (mlir-opt, mlir-runner, filecheck, lit, nvcc) calls `need_tool(name)`: the
test skips with its reason when the tool is missing, unless Q35C_REQUIRE_TOOLS=1 (as in CI), where it fails.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from q35c.verify.mlir_tools import MlirTools

LLVM_BIN = "/usr/lib/llvm-22/bin"


def find_tool(name: str) -> str | None:
    """The path of an external tool: next to this Python, on PATH, or in Debian's llvm-22 directory."""
    for path in (os.path.dirname(sys.executable), os.environ.get("PATH", ""), LLVM_BIN):
        found = shutil.which(name, path=path)
        if found:
            return found
    return None


def need_tool(name: str) -> str:
    """Return the tool's path, or skip (fail when Q35C_REQUIRE_TOOLS=1) when it is missing."""
    found = find_tool(name)
    if found is None:
        reason = f"{name} not found (install mlir-22-tools / the test extra)"
        if os.environ.get("Q35C_REQUIRE_TOOLS") == "1":
            pytest.fail(f"Q35C_REQUIRE_TOOLS=1 but {reason}")
        pytest.skip(reason)
    return found


@pytest.fixture
def require_tools() -> None:
    """For lit tests: the IR tools they call must exist."""
    for tool in ("filecheck", "lit", "mlir-opt"):
        need_tool(tool)


@pytest.fixture(scope="session")
def mlir_tools() -> MlirTools:
    """mlir-opt, mlir-runner and their runtime libraries, found as `q35c verify` finds them; skip when any is
    missing (fail when Q35C_REQUIRE_TOOLS=1)."""
    from q35c.util.errors import Q35Error
    from q35c.verify.mlir_tools import find_tools

    try:
        return find_tools()
    except Q35Error as err:
        if os.environ.get("Q35C_REQUIRE_TOOLS") == "1":
            pytest.fail(f"Q35C_REQUIRE_TOOLS=1 but {err.message}")
        pytest.skip(err.message)


def import_script(path: Path, name: str) -> ModuleType:
    """A script outside the package (a benchmark, a test helper) imported as module `name`."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def load_script() -> Callable[[Path, str], ModuleType]:
    """`import_script` as a fixture (test modules here are not a package)."""
    return import_script
