"""Atomic outputs: a directory is written whole through a temporary sibling, or not at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from q35c.util.output import AtomicDirectory, write_atomically


def names(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir())


def test_a_directory_is_written_through_a_temporary_sibling(tmp_path: Path) -> None:
    out = tmp_path / "dumps"
    with AtomicDirectory(out) as directory:
        assert directory.tmp.parent == tmp_path and directory.tmp.name.startswith(".dumps.")
        (directory.tmp / "a.mlir").write_text("a")
        assert not out.exists()
    assert names(tmp_path) == ["dumps"] and names(out) == ["a.mlir"]


def test_an_existing_directory_is_replaced_whole(tmp_path: Path) -> None:
    out = tmp_path / "dumps"
    out.mkdir()
    (out / "stale.mlir").write_text("old")
    with AtomicDirectory(out) as directory:
        (directory.tmp / "new.mlir").write_text("new")
    assert names(out) == ["new.mlir"] and names(tmp_path) == ["dumps"]


def test_a_failure_leaves_the_old_directory_and_no_temporary(tmp_path: Path) -> None:
    out = tmp_path / "dumps"
    out.mkdir()
    (out / "kept.mlir").write_text("old")
    with pytest.raises(RuntimeError), AtomicDirectory(out) as directory:
        (directory.tmp / "half.mlir").write_text("new")
        raise RuntimeError("stage failed")
    assert names(out) == ["kept.mlir"] and names(tmp_path) == ["dumps"]


def test_a_failure_removes_the_parents_it_created(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), AtomicDirectory(tmp_path / "a" / "b" / "dumps"):
        raise RuntimeError("stage failed")
    assert names(tmp_path) == []


def test_a_file_is_replaced_atomically(tmp_path: Path) -> None:
    path = tmp_path / "out.mlir"
    write_atomically(path, "one")
    write_atomically(path, "two")
    assert path.read_text() == "two" and names(tmp_path) == ["out.mlir"]
