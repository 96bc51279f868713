"""Reading MLIR text into a verified module: the one way every command takes IR a user hands it (`q35c opt`,
`q35c cost`, `q35c verify FILE.mlir`).

Errors are user errors (`Q35Error`): a file that cannot be read, a syntax error (with its file:line:col and a
caret line), or IR that parses but does not verify (its first line).

    module = read_module("out/ir/h100-sxm/decode/05-schedule.mlir")
"""

from __future__ import annotations

import sys
from pathlib import Path

from xdsl.dialects.builtin import ModuleOp
from xdsl.parser import Parser
from xdsl.utils.exceptions import DiagnosticException, ParseError

from q35c.driver.pipeline import make_context
from q35c.util.errors import Location, Q35Error


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def read_text(path: str) -> tuple[str, str]:
    """(text, name) of a file, or of standard input for `-` (named `<stdin>`)."""
    if path == "-":
        return sys.stdin.read(), "<stdin>"
    try:
        return Path(path).read_text(encoding="utf-8"), path
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) else "not UTF-8 text"
        raise Q35Error(f"cannot read {path}: {reason}", Location(path)) from None


def parse_module(text: str, name: str) -> ModuleOp:
    """Parse and verify MLIR text; Q35Error with the location (and a caret line) if it is not valid."""
    try:
        module = Parser(make_context(), text, name).parse_module()
    except ParseError as err:
        loc = err.span.get_location()
        line = text.splitlines()[loc.line - 1] if 0 < loc.line <= len(text.splitlines()) else None
        raise Q35Error(err.msg, Location(name, loc.line, int(loc.col)), line) from None
    except DiagnosticException as err:  # a verifier that runs while parsing (a type's own checks)
        raise Q35Error(f"invalid IR: {_first_line(err)}", Location(name)) from None
    try:
        module.verify()
    except DiagnosticException as err:
        raise Q35Error(f"invalid IR: {_first_line(err)}", Location(name)) from None
    return module


def read_module(path: str | Path) -> ModuleOp:
    """The verified module in the file at `path` (`-`: standard input)."""
    text, name = read_text(str(path))
    return parse_module(text, name)
