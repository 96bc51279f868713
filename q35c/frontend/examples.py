"""Finding model files: a path, or the name of a bundled example in the repository's examples/ directory.

`llama-2-7b` names examples/llama-2-7b.q35; its config.json form is examples/hf/llama-2-7b.json (give the
path to use it).

>>> Path(resolve_model("tiny")).name
'tiny.q35'
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

from q35c.util.errors import Location, Q35Error

# The examples live next to the package in the repository (editable installs and running from a checkout).
EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"
SUFFIXES = (".q35", ".json", ".gguf")


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
    example = EXAMPLES_DIR / f"{model}.q35"
    if "/" not in model and example.is_file():
        relative = os.path.relpath(example)
        return str(example) if relative.startswith("..") else relative
    if path.suffix in SUFFIXES or "/" in model:
        raise Q35Error(f"no such model file: {model}", Location(model))
    names = example_names()
    close = difflib.get_close_matches(model, names, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    raise Q35Error(f"unknown model '{model}'{hint} (a file path, or one of the bundled examples: {', '.join(names)})")
