"""Outputs never replace what is not theirs to replace: a file where a directory goes, a device or pipe."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from q35c.util.errors import Q35Error
from q35c.util.output import AtomicDirectory, write_atomically


def test_a_directory_output_over_a_file_is_refused_and_the_file_kept(tmp_path: Path) -> None:
    existing = tmp_path / "out"
    existing.write_text("keep me")
    with pytest.raises(Q35Error, match="exists and is not a directory"), AtomicDirectory(existing):
        pass
    assert existing.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_pipe_is_written_into_not_replaced(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[str] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text()))
    reader.start()
    write_atomically(fifo, "text")
    reader.join(timeout=10)
    assert received == ["text"]
    assert fifo.is_fifo()
