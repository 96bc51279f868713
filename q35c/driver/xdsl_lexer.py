"""A linear-time string-literal pattern for xDSL's MLIR lexer (xDSL 0.74), installed by `install()`.

xDSL matches a string literal with `"(?:[^"\\\n\v\f]+|\\(?:...))*"`: a `+` inside a `*`, which backtracks
exponentially when the closing quote is missing (`"` and 40 letters keep the lexer busy for hours). The pattern
below accepts exactly the same literals, but its repetitions are possessive (`*+`, `++`, Python 3.11): once a run
of characters is taken it is never split again, so a failed match costs time linear in the line. Upstream xDSL
can take the same pattern; until a release has it, q35c sets it on the lexer class before parsing user IR.
"""

from __future__ import annotations

import re

from xdsl.utils.mlir_lexer import MLIRLexer

STRING_LITERAL = re.compile(r'"(?:[^"\\\n\v\f]++|\\(?:["nt\\]|[0-9A-Fa-f]{2}))*+"')


def install() -> None:
    """Make xDSL's MLIR lexer match string literals with `STRING_LITERAL` (idempotent)."""
    MLIRLexer._unescaped_characters_regex = STRING_LITERAL  # pyright: ignore[reportPrivateUsage]
