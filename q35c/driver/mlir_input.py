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
from q35c.driver.xdsl_lexer import install as install_lexer_fix
from q35c.util.errors import Location, Q35Error
from q35c.util.limits import MAX_IR_BYTES, MAX_IR_NESTING, line_col, read_source, too_deep


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _last_token_end(text: str, pos: int) -> int:
    """Where the text before `pos` (the parser's next token) ends: the end of what was parsed last, whose checks
    failed, rather than the start of the next line."""
    end = min(pos, len(text))
    while end > 0 and text[end - 1].isspace():
        end -= 1
    return max(0, end - 1)


def read_text(path: str) -> tuple[str, str]:
    """(text, name) of a file, or of standard input for `-` (named `<stdin>`)."""
    if path == "-":
        text = sys.stdin.read(MAX_IR_BYTES + 1)
        if len(text) > MAX_IR_BYTES:
            raise Q35Error(f"standard input is longer than {MAX_IR_BYTES:,} characters, the limit for MLIR text")
        return text, "<stdin>"
    return read_source(path, MAX_IR_BYTES, "an MLIR file"), path


def parse_module(text: str, name: str) -> ModuleOp:
    """Parse and verify MLIR text; Q35Error with the location (and a caret line) if it is not valid."""
    install_lexer_fix()
    deep = too_deep(text, escapes=True, angles=True, limit=MAX_IR_NESTING)
    if deep is not None:
        line, col, context = line_col(text, deep)
        message = f"brackets nest more than {MAX_IR_NESTING} deep (the limit for MLIR text)"
        raise Q35Error(message, Location(name, line, col), context)
    parser: Parser | None = None
    try:
        parser = Parser(make_context(), text, name)
        module = parser.parse_module()
    except ParseError as err:
        loc = err.span.get_location()
        line = text.splitlines()[loc.line - 1] if 0 < loc.line <= len(text.splitlines()) else None
        raise Q35Error(err.msg, Location(name, loc.line, int(loc.col)), line) from None
    except (DiagnosticException, ValueError) as err:
        # A verifier that runs while parsing (a type's own checks), or a value the parser converts without a
        # diagnostic of its own (xDSL's linalg.generic turns an unknown iterator type into ValueError): either
        # way the text is at fault, at the place the parser reached.
        line, col, context = line_col(text, _last_token_end(text, parser.pos if parser is not None else 0))
        raise Q35Error(f"invalid IR: {_first_line(err)}", Location(name, line, col), context) from None
    try:
        module.verify()
    except DiagnosticException as err:
        raise Q35Error(f"invalid IR: {_first_line(err)}", Location(name)) from None
    return module


def read_module(path: str | Path) -> ModuleOp:
    """The verified module in the file at `path` (`-`: standard input)."""
    text, name = read_text(str(path))
    return parse_module(text, name)
