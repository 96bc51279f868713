"""A missing external tool is a setup error: exit status 2, naming the Debian package that installs it."""

from __future__ import annotations

from pathlib import Path

import pytest

from q35c.cli.main import EXIT_USAGE, main
from q35c.verify import mlir_tools


def test_verify_without_mlir_names_the_package(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(mlir_tools, "LLVM_BIN", tmp_path / "llvm-22" / "bin")
    code = main(["verify", "--linear", "1x8x64", "--quant", "int8"])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE
    assert err.startswith("q35c: error: mlir-opt and mlir-runner not found") and "install Debian's mlir-22-tools" in err
    assert len(err.splitlines()) == 1
