"""Writing results: every output file goes through a temporary sibling and a rename, so a failure never leaves
a half-written file behind."""

from __future__ import annotations

import os
from pathlib import Path

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
