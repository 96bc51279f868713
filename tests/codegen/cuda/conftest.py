"""Fixtures for the CUDA emitter tests: the tiny model's kernels for h100-sxm, and the CUDA toolkit."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from xdsl.dialects.builtin import ModuleOp

from q35c.codegen.cuda.emit import PhaseSources, module_kernels
from q35c.codegen.cuda.toolkit import Toolkit, find_toolkit
from q35c.util.errors import Q35Error

SCENARIO = (1, 384, 128)  # batch, prompt, gen: the tiny model's default-sized run, shorter


def compiled(model: str, quant: str | None, target: str = "h100-sxm") -> dict[str, ModuleOp]:
    """The final module of each phase (decode, prefill) of `model` for `target`."""
    from q35c.driver.compile import compile_phases
    from q35c.predict.predictor import Predictor, Scenario

    keys = Predictor(model, quant, Scenario(*SCENARIO), ()).phase_keys()
    return {phase: result.module for phase, result in compile_phases(keys, target, {}).items()}


@pytest.fixture(scope="session")
def compile_model() -> Callable[..., dict[str, ModuleOp]]:
    """`compiled` as a fixture (test modules here are not a package)."""
    return compiled


@pytest.fixture(scope="session")
def tiny_modules() -> dict[str, ModuleOp]:
    return compiled("tiny", None)


@pytest.fixture(scope="session")
def tiny_cuda(tiny_modules: dict[str, ModuleOp]) -> dict[str, PhaseSources]:
    """The tiny model's kernels (q3p5 linears, an int8 head, fp16 embedding) for h100-sxm."""
    from q35c.targets.gpu_occupancy import sm_limits
    from q35c.targets.registry import get_target

    limits = sm_limits(get_target("h100-sxm").spec)
    return {phase: module_kernels(module, limits) for phase, module in tiny_modules.items()}


@pytest.fixture(scope="session")
def cuda_toolkit() -> Toolkit:
    """nvcc; skip when it is missing (fail when Q35C_REQUIRE_TOOLS=1, as in CI)."""
    try:
        return find_toolkit()
    except Q35Error as err:
        if os.environ.get("Q35C_REQUIRE_TOOLS") == "1":
            pytest.fail(f"Q35C_REQUIRE_TOOLS=1 but {err.message}")
        pytest.skip(err.message)
