"""The `q35c ...` commands that README.md and docs/*.md show, found as a reader finds them.

A command is a line of a fenced or indented code block that starts with `q35c ` (or `$ q35c `), or an inline
`q35c ...` in backticks. A trailing `# comment` is not part of it. When the block shows the command failing (the
next line starts with `q35c: error:`), that line is what the command must print. `tests/test_docs_commands.py`
runs them.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))
_INLINE = re.compile(r"`(q35c [^`]+)`")
_FENCE = re.compile(r"^\s*(```|~~~)")


@dataclass(frozen=True)
class DocCommand:
    """One command as a document shows it: where, the words to run, and the error it shows, if any."""

    doc: str  # relative to the repository root
    line: int
    text: str  # as written, without a prompt or a trailing comment
    inline: bool
    error: str | None = None

    @property
    def argv(self) -> list[str]:
        return shlex.split(self.text)


def _command(line: str) -> str | None:
    text = line.strip()
    text = text.removeprefix("$ ")
    if not text.startswith("q35c "):
        return None
    words = shlex.split(text, comments=True)
    return shlex.join(words) if words else None


def doc_commands(path: Path) -> list[DocCommand]:
    """Every command `path` shows, in order."""
    doc = str(path.relative_to(ROOT))
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[DocCommand] = []
    fenced = False
    for i, line in enumerate(lines):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        in_block = fenced or (line.startswith("    ") and (i == 0 or not lines[i - 1].strip() or found))
        command = _command(line) if in_block else None
        if command is not None:
            after = lines[i + 1].strip() if i + 1 < len(lines) else ""
            error = after if after.startswith("q35c: error:") else None
            found.append(DocCommand(doc, i + 1, command, inline=False, error=error))
            continue
        if not fenced:
            for match in _INLINE.finditer(line):
                found.append(DocCommand(doc, i + 1, match.group(1).strip(), inline=True))
    return found


def all_commands() -> list[DocCommand]:
    return [c for path in DOCS for c in doc_commands(path)]
