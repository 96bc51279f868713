"""User-facing errors: bad input that the command line reports in one line with exit status 2.

`Q35Error` is the one type for bad input; any other exception reaching the command line is a q35c bug (exit
status 70). It subclasses ValueError, so library callers that catch ValueError for bad arguments keep working.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Location:
    """A place in an input file; `line` and `col` are 1-based."""

    file: str
    line: int | None = None
    col: int | None = None

    def __str__(self) -> str:
        parts = [self.file]
        if self.line is not None:
            parts.append(str(self.line))
            if self.col is not None:
                parts.append(str(self.col))
        return ":".join(parts)


class Q35Error(ValueError):
    """Bad input: a malformed file, an unknown name, shapes that do not divide, a model that does not fit.

    `context` is an optional source line to show under the message with a caret at `location.col`.
    """

    def __init__(self, message: str, location: Location | None = None, context: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.location = location
        self.context = context

    def render(self) -> str:
        """The text the command line prints: `q35c: error: file:line:col: message` plus a caret line."""
        where = f"{self.location}: " if self.location is not None else ""
        text = f"q35c: error: {where}{self.message}"
        if self.context is not None and self.location is not None and self.location.col is not None:
            line, col = _window(self.context.rstrip("\n"), self.location.col)
            text += f"\n{line}\n{' ' * (col - 1)}^"
        return text


def _window(line: str, col: int, width: int = 120) -> tuple[str, int]:
    """At most about `width` characters of a long source line around column `col`, and col within them."""
    if len(line) <= width:
        return line, col
    start = max(0, min(col - 1 - width // 2, len(line) - width))
    head = "..." if start > 0 else ""
    tail = "..." if start + width < len(line) else ""
    return head + line[start : start + width] + tail, col - start + len(head)
