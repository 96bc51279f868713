"""A killed writer's temporary directory is removed by the next AtomicDirectory in the same parent; nothing else
is: not a directory without q35c's marker, not the temporary of a writer still running."""

from __future__ import annotations

import platform
import signal
import subprocess
import sys
from pathlib import Path

from q35c.util.output import MARKER, AtomicDirectory

# Enters an AtomicDirectory, writes into it, says where, and waits to be killed (reading a stdin never closed).
WRITER = """
import sys
from pathlib import Path
from q35c.util.output import AtomicDirectory
with AtomicDirectory(Path(sys.argv[1])) as out:
    (out.tmp / "half.json").write_text("{")
    print(out.tmp, flush=True)
    sys.stdin.read()
"""


def start_writer(out: Path) -> tuple[subprocess.Popen[str], Path]:
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(out)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    return proc, Path(proc.stdout.readline().strip())


def test_a_killed_writers_temporary_is_removed_by_the_next_one(tmp_path: Path) -> None:
    proc, tmp = start_writer(tmp_path / "report")
    assert tmp.is_dir() and (tmp / MARKER).is_file() and tmp.name.endswith(f".{proc.pid}.tmp")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert tmp.is_dir()  # a kill -9 leaves it
    with AtomicDirectory(tmp_path / "other") as out:
        (out.tmp / "a.txt").write_text("a")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other"]
    assert sorted(p.name for p in (tmp_path / "other").iterdir()) == ["a.txt"]  # the marker does not stay


def test_a_running_writers_temporary_and_unmarked_directories_stay(tmp_path: Path) -> None:
    foreign = tmp_path / ".data.1.tmp"  # the pattern, but not q35c's: no marker
    foreign.mkdir()
    proc, tmp = start_writer(tmp_path / "report")
    try:
        with AtomicDirectory(tmp_path / "other"):
            pass
        assert tmp.is_dir() and foreign.is_dir()
    finally:
        proc.kill()
        proc.wait()


def test_a_temporary_of_another_machine_stays(tmp_path: Path) -> None:
    proc, tmp = start_writer(tmp_path / "report")
    proc.kill()
    proc.wait()
    (tmp / MARKER).write_text(f"{proc.pid} 0 another-machine")  # the same folder on a shared file system
    with AtomicDirectory(tmp_path / "other"):
        pass
    assert tmp.is_dir()


def test_a_replaced_directory_set_aside_by_a_killed_writer_is_removed(tmp_path: Path) -> None:
    proc, _ = start_writer(tmp_path / "report")
    proc.kill()
    proc.wait()
    old = tmp_path / f".report.{proc.pid}.old"  # as if killed between setting the old report aside and removing it
    old.mkdir()
    (old / MARKER).write_text(f"{proc.pid} 0 {platform.node()}")
    with AtomicDirectory(tmp_path / "report"):
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]
