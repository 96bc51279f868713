"""Parse model-language text (grammar: model.lark) into a lark tree; syntax errors become located Q35Errors.

>>> parse("dim hidden = 64\\n", "m.q35").children[0].data
Token('RULE', 'dim')
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from lark import Lark, Tree, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from q35c.util.errors import Location, Q35Error
from q35c.util.limits import MAX_NESTING, MAX_SOURCE_BYTES, line_col, too_deep

# Readable names for the grammar's terminals in "expected ..." messages.
_TERMINALS = {
    "NAME": "a name",
    "NUMBER": "a number",
    "STRING": 'a "string"',
    "SCHEME": "a scheme (e.g. q3p5:g=64)",
    "DTYPE": "f16, f32 or i32",
    "_NL": "end of line",
    "$END": "end of file",
}


@cache
def _parser() -> Lark:
    grammar = files("q35c.frontend").joinpath("model.lark").read_text(encoding="utf-8")
    return Lark(grammar, parser="lalr", propagate_positions=True, maybe_placeholders=True)


def _describe(terminal: str) -> str:
    if terminal in _TERMINALS:
        return _TERMINALS[terminal]
    pattern = _parser().get_terminal(terminal).pattern
    return f"'{pattern.value}'" if pattern.type == "str" else terminal


def _expected(names: set[str]) -> str:
    described = sorted({_describe(n) for n in names})
    if len(described) > 8:
        return ""
    return " (expected " + ", ".join(described[:-1]) + (" or " if len(described) > 1 else "") + described[-1] + ")"


def _message(err: UnexpectedInput) -> str:
    if isinstance(err, UnexpectedCharacters):
        return f"unexpected character {err.char!r}"
    if isinstance(err, UnexpectedToken):
        token = err.token
        if token.type == "$END":
            found = "end of file"
        elif token.type == "_NL":
            found = "end of line"
        else:
            found = f"'{token.value}'"
        return f"unexpected {found}{_expected(set(err.expected))}"
    if isinstance(err, UnexpectedEOF):
        return f"unexpected end of file{_expected(set(err.expected))}"
    return "syntax error"


def parse(text: str, path: str) -> Tree[object]:
    """Parse a whole model file; `path` is used in error locations."""
    if len(text) > MAX_SOURCE_BYTES:
        raise Q35Error(f"the model file is larger than {MAX_SOURCE_BYTES:,} bytes, the limit", Location(path))
    deep = too_deep(text, comment="#")
    if deep is not None:
        line, col, context = line_col(text, deep)
        message = f"brackets nest more than {MAX_NESTING} deep (the limit)"
        raise Q35Error(message, Location(path, line, col), context)
    if not text.endswith("\n"):
        text += "\n"
    try:
        return _parser().parse(text)
    except UnexpectedInput as err:
        lines = text.splitlines()
        line = max(1, min(err.line, len(lines))) if err.line and err.line > 0 else len(lines)
        col = err.column if err.column and err.column > 0 else len(lines[line - 1]) + 1
        raise Q35Error(f"syntax error: {_message(err)}", Location(path, line, col), lines[line - 1]) from None
