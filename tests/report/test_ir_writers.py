"""The report's IR files: a module's text written by a forked process (the module as it was when asked, while
this process changes it) or in this process, and a writer that fails is reported."""

from __future__ import annotations

from pathlib import Path

import pytest
from xdsl.dialects.builtin import StringAttr

from q35c.driver.pipeline import module_text
from q35c.frontend import load_model
from q35c.report.ir import _Writers  # pyright: ignore[reportPrivateUsage]


@pytest.mark.parametrize("cores", [1, 2])
def test_every_file_holds_the_module_as_it_was_when_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cores: int
) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: cores)
    module = load_model("tiny").module
    before = module_text(module) + "\n"
    writers = _Writers()
    paths = [tmp_path / "a.mlir", tmp_path / "b.mlir"]
    writers.write(module, paths)
    module.attributes["q35.changed"] = StringAttr("after")  # the next stage, meanwhile
    writers.wait()
    assert [p.read_text(encoding="utf-8") for p in paths] == [before, before]
    assert "q35.changed" not in before


@pytest.mark.parametrize("cores", [1, 2])
def test_a_file_that_cannot_be_written_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cores: int) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: cores)
    missing = tmp_path / "no-such-folder" / "a.mlir"
    writers = _Writers()
    with pytest.raises(OSError):
        writers.write(load_model("tiny").module, [missing])
        writers.wait()
