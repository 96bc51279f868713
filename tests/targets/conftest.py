"""Fixtures for the target tests: a private spec directory, and loading it after one edit."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from q35c.targets.spec import SPEC_DIR, load_spec


@pytest.fixture
def spec_dir(tmp_path: Path) -> Path:
    """A private spec directory holding a copy of h100-sxm and the shared energy table."""
    directory = tmp_path / "specs"
    directory.mkdir()
    for name in ("h100-sxm.toml", "_horowitz-45nm.toml"):
        shutil.copy(SPEC_DIR / name, directory / name)
    return directory


@pytest.fixture
def load_error(spec_dir: Path) -> Callable[[str, str], str]:
    """`load_error(old, new)`: the loader's error for h100-sxm with `old` replaced by `new` (which must fail,
    naming the file first)."""

    def load(old: str, new: str) -> str:
        path = spec_dir / "h100-sxm.toml"
        text = path.read_text()
        assert old in text
        path.write_text(text.replace(old, new, 1))
        with pytest.raises(ValueError) as err:
            load_spec("h100-sxm", spec_dir=spec_dir)
        assert str(err.value).startswith(f"{path}: ")
        return str(err.value)

    return load
