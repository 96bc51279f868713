"""Fixtures for the native host code tests: the toolchain (mlir-opt, mlir-translate, clang-22, libomp)."""

from __future__ import annotations

import os

import pytest

from q35c.codegen.host.toolchain import Toolchain, find_toolchain
from q35c.util.errors import Q35Error


@pytest.fixture(scope="session")
def host_toolchain() -> Toolchain:
    """The host toolchain with OpenMP; skip when a part is missing (fail when Q35C_REQUIRE_TOOLS=1, as in CI)."""
    try:
        return find_toolchain(need_openmp=True)
    except Q35Error as err:
        if os.environ.get("Q35C_REQUIRE_TOOLS") == "1":
            pytest.fail(f"Q35C_REQUIRE_TOOLS=1 but {err.message}")
        pytest.skip(err.message)
