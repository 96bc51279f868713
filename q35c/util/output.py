"""Writing results: every output file or directory goes through a temporary sibling and a rename, so a failure
never leaves a half-written file or directory behind.

    write_atomically("out.mlir", text)
    with AtomicDirectory(Path("report")) as out:     # files go into out.tmp, `.report.<pid>.tmp`
        (out.tmp / "report.json").write_text("{}")
    # here `report` is the new directory; after an exception it is as it was, and the temporary is gone

Whether an existing path may be replaced at all is the caller's rule (a report directory, for one, replaces
only an earlier report: `q35c.report.directory.check_destination`).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from q35c.util.errors import Location, Q35Error


def write_atomically(path: str | Path, text: str) -> None:
    """Write `text` to `path` via a temporary sibling and `os.replace`; Q35Error if it cannot be written."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, target)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise Q35Error(f"cannot write {path}: {err.strerror}", Location(str(path))) from None


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
    sibling `.NAME.<pid>.tmp` (created fresh on entry, with any missing parents).

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
        self._created = _missing_parents(self.path)
        shutil.rmtree(self.tmp, ignore_errors=True)
        try:
            self.tmp.mkdir(parents=True)
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
            os.replace(self.tmp, self.path)
        except OSError as err:
            if moved and not self.path.exists():
                os.replace(old, self.path)
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
