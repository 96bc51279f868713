"""Runs every lit + filecheck test under tests/filecheck, one pytest item per .mlir file."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent / "filecheck"
FILES = sorted(p for p in ROOT.rglob("*.mlir"))


def _lit() -> list[str]:
    lit = shutil.which("lit", path=os.path.dirname(sys.executable)) or shutil.which("lit")
    return [lit] if lit else [sys.executable, "-m", "lit"]


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(ROOT)) for p in FILES])
def test_lit(path: Path, require_tools: None) -> None:
    proc = subprocess.run([*_lit(), "-v", str(path)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Passed: 1 " in proc.stdout, proc.stdout  # the file was run (not unsupported or skipped)
