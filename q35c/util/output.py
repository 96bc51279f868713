"""Writing results: every output file or directory goes through a temporary sibling and a rename, so a failure
never leaves a half-written file or directory behind.

    write_atomically("out.mlir", text)
    with AtomicDirectory(Path("report")) as out:     # files go into out.tmp, `.report.<pid>.tmp`
        (out.tmp / "report.json").write_text("{}")
    # here `report` is the new directory; after an exception it is as it was, and the temporary is gone

Whether an existing path may be replaced at all is the caller's rule (a report directory, for one, replaces
only an earlier report: `q35c.report.directory.check_destination`).

A process killed while writing (kill -9, a power cut) cannot remove its temporary directory, so the next
`AtomicDirectory` in the same parent does: it removes the `.NAME.<pid>.tmp` and `.NAME.<pid>.old` directories
that carry q35c's marker file (`.q35c-partial`: the writer's pid and start time) and whose writer no longer runs.
Anything else, including the temporaries of a build still running, is left alone.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from q35c.util.errors import Location, Q35Error


def write_atomically(path: str | Path, text: str) -> None:
    """Write `text` to `path` via a temporary sibling and `os.replace`; Q35Error if it cannot be written. A path
    that exists and is not a regular file (a device such as /dev/null, a pipe) is written directly: renaming over
    it would replace the device."""
    target = Path(path)
    if target.exists() and not target.is_file():
        if target.is_dir():
            raise Q35Error("is a directory: give a file name", Location(str(path)))
        try:
            with target.open("w", encoding="utf-8") as out:
                out.write(text)
        except OSError as err:
            raise Q35Error(f"cannot write {path}: {err.strerror}", Location(str(path))) from None
        return
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, target)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise Q35Error(f"cannot write {path}: {err.strerror}", Location(str(path))) from None


MARKER = ".q35c-partial"  # in a temporary directory while it is written: "<pid> <process start time>"
_LEFTOVER = re.compile(r"\..+\.(\d+)\.(tmp|old)")


def _start_time(pid: int) -> str | None:
    """When process `pid` started (clock ticks after boot, from /proc), "" where /proc cannot tell but the
    process exists, or None if it is gone (a zombie counts as gone: it runs no more)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except FileNotFoundError:
        return None
    except OSError:
        stat = ""
    fields = stat.rpartition(")")[2].split()
    if len(fields) > 19:
        return None if fields[0] in ("Z", "X") else fields[19]
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except OSError:
        pass
    return ""


def _mark(directory: Path) -> None:
    """Label `directory` as this process's temporary (see remove_leftovers): pid, start time, machine."""
    pid = os.getpid()
    (directory / MARKER).write_text(f"{pid} {_start_time(pid) or '-'} {platform.node()}", encoding="utf-8")


def _writer_is_gone(directory: Path) -> bool:
    """Whether `directory` is a marked temporary whose writer, on this machine, no longer runs (its pid is free
    or reused); a writer on another machine (a shared file system) cannot be checked, so it counts as running."""
    try:
        pid_text, start, machine = [*(directory / MARKER).read_text(encoding="utf-8").split(" ", 2), "", ""][:3]
        pid = int(pid_text)
    except (OSError, ValueError, UnicodeDecodeError):
        return False  # not marked: not ours to remove
    start = "" if start == "-" else start
    if pid == os.getpid() or machine.strip() != platform.node():
        return False
    now = _start_time(pid)
    return now is None or (start != "" and now != "" and now != start)


def remove_leftovers(parent: Path) -> list[Path]:
    """Remove from `parent` the temporary directories (`.NAME.<pid>.tmp`, `.NAME.<pid>.old`) that q35c processes
    no longer running left behind, as a kill -9 does; the ones removed."""
    try:
        entries = list(parent.iterdir())
    except OSError:
        return []
    removed: list[Path] = []
    for entry in entries:
        match = _LEFTOVER.fullmatch(entry.name)
        if match is None or entry.is_symlink() or not entry.is_dir() or not _writer_is_gone(entry):
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    return removed


def _missing_parents(path: Path) -> list[Path]:
    """The ancestors of `path` that do not exist yet, innermost first."""
    missing: list[Path] = []
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        missing.append(parent)
        parent = parent.parent
    return missing


@dataclass
class AtomicDirectory:
    """A directory written whole or not at all: a context manager whose body writes into `tmp`, the temporary
    sibling `.NAME.<pid>.tmp` (created fresh on entry, with any missing parents, after removing what dead
    writers left in the parent: `remove_leftovers`).

    On a normal exit `tmp` is renamed to `path`: an existing `path` is first set aside as `.NAME.<pid>.old`
    (put back if the rename fails) and removed once the new one is in place. On an exception `tmp` and the
    parents that entering created are removed, and `path` is left as it was.
    """

    path: Path
    tmp: Path = field(init=False)
    _created: list[Path] = field(init=False, default_factory=list[Path])

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        self.tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")

    def __enter__(self) -> AtomicDirectory:
        if self.path.is_symlink() or (self.path.exists() and not self.path.is_dir()):
            raise Q35Error("exists and is not a directory: give a new path or a directory", Location(str(self.path)))
        self._created = _missing_parents(self.path)
        remove_leftovers(self.path.parent)
        shutil.rmtree(self.tmp, ignore_errors=True)
        try:
            self.tmp.mkdir(parents=True)
            _mark(self.tmp)
        except OSError as err:
            self._discard()
            raise Q35Error(f"cannot create {self.path}: {err.strerror}", Location(str(self.path))) from None
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if error is not None:
            self._discard()
            return
        try:
            self._replace()
        except BaseException:
            self._discard()
            raise

    def _replace(self) -> None:
        """Move `tmp` into place as `path`, setting an existing `path` aside first and removing it after."""
        old = self.path.with_name(f".{self.path.name}.{os.getpid()}.old")
        moved = False
        try:
            if self.path.exists():
                os.replace(self.path, old)
                moved = True
                if old.is_dir():
                    _mark(old)
            (self.tmp / MARKER).unlink(missing_ok=True)
            os.replace(self.tmp, self.path)
        except OSError as err:
            if moved and not self.path.exists():
                os.replace(old, self.path)
                if self.path.is_dir():
                    (self.path / MARKER).unlink(missing_ok=True)
            raise Q35Error(f"cannot write {self.path}: {err.strerror}", Location(str(self.path))) from None
        if moved:
            shutil.rmtree(old, ignore_errors=True)

    def _discard(self) -> None:
        """Remove `tmp` and the parents that entering created (those still empty)."""
        shutil.rmtree(self.tmp, ignore_errors=True)
        for parent in self._created:
            try:
                parent.rmdir()
            except OSError:
                break
