"""The bounds every input is checked against before any work starts.

A model, a scheme or a command-line value outside these bounds is refused at once with a `Q35Error` that names
the limit, so no input can make q35c allocate, loop or recurse without bound. The numbers follow from what the
IR can hold (dimensions and sizes are i64 in MLIR; attributes such as `eps` are f32) and from keeping every
command fast on one machine; docs/model-language.md lists them under "Limits".

The checks return the message of what is wrong (None when the value is fine), so that each front end raises it
at its own place: `file:line:col` in a model file, the key of a config.json, the spec string of a scheme.

>>> integer_error(2147483648, "dim layers", MAX_LAYERS)
'dim layers = 2147483648 is more than the limit of 512 (the most layers q35c builds)'
>>> float_error(1e39, "eps")
'eps = 1e+39 is outside the range of f32 (|x| <= 3.4028235e+38)'
"""

from __future__ import annotations

import math
import os
import re
import stat
from collections.abc import Sequence

from q35c.util.errors import Location, Q35Error

I64_MAX = 2**63 - 1
# A single tensor dimension (rows, features, vocabulary). MLIR allows i64; 2^31 - 1 keeps every product of a
# dimension with another dimension or a byte count far inside i64.
MAX_DIM = 2**31 - 1
# Elements of one tensor (a weight matrix, an activation, a KV cache): 2^48, 256 Ti elements.
MAX_ELEMENTS = 2**48
# Repetitions of all blocks together: the deepest published decoders have about 128 layers; every layer is one
# call and one set of weights in the IR, so this bounds a build's time.
MAX_LAYERS = 512
# A quantization group (weights sharing one scale) along K: real schemes use 32 to 256.
MAX_GROUP = 65536
# Token rows: batch x (prompt, generated or cached tokens); larger than any model's context length.
MAX_TOKENS = 2**24
# Devices one build may spread a model over.
MAX_DEVICES = 4096
# Nesting of parentheses and brackets in a model file, and of arrays and objects in a config.json.
MAX_NESTING = 200
# Bytes of a model-language file or a config.json (real ones are a few kilobytes).
MAX_SOURCE_BYTES = 2**20
# Elements `q35c verify` generates (weights, inputs and caches), each of which goes through mlir-runner as text.
MAX_VERIFY_ELEMENTS = 2**22
# Nesting of brackets in MLIR text ((), [], {} and the <> of types): xDSL's parser recurses about ten frames per
# level; the IR q35c writes nests about 11 deep.
MAX_IR_NESTING = 50
# Bytes of an MLIR file handed to `q35c opt`, `cost` or `verify` (a dumped module of the largest model is a few MB).
MAX_IR_BYTES = 64 * 2**20
# Digits of an integer literal: 19 is enough for any i64.
MAX_INT_DIGITS = 19
# The finite range of f32, the type of float attributes (eps, theta) in the IR.
F32_MAX = 3.4028234663852886e38
F32_MIN_NORMAL = 1.1754943508222875e-38

_WHY = {
    MAX_DIM: "the largest dimension q35c accepts, 2^31 - 1",
    MAX_LAYERS: "the most layers q35c builds",
    MAX_GROUP: "the largest quantization group q35c accepts",
    MAX_TOKENS: "the most token rows q35c builds, 2^24",
    MAX_DEVICES: "the most devices q35c spreads a model over",
    I64_MAX: "the largest i64, 2^63 - 1",
}


def integer_error(value: int, what: str, maximum: int = MAX_DIM, minimum: int = 1) -> str | None:
    """Why integer `value` (named `what` in the message) is out of [minimum, maximum]; None if it is in."""
    if value > maximum:
        why = _WHY.get(maximum, "the limit")
        return f"{what} = {_digits(value)} is more than the limit of {maximum} ({why})"
    if value < minimum:
        return f"{what} must be at least {minimum}, got {_digits(value)}"
    return None


def float_error(value: float, what: str) -> str | None:
    """Why `value` cannot be an f32 attribute: not finite, beyond f32's range, or so small it would become 0."""
    if not math.isfinite(value):
        return f"{what} must be a finite number, got {value}"
    if abs(value) > F32_MAX:
        return f"{what} = {value:g} is outside the range of f32 (|x| <= {F32_MAX:.8g})"
    if value != 0 and abs(value) < F32_MIN_NORMAL:
        return f"{what} = {value:g} is too small for f32 (|x| >= {F32_MIN_NORMAL:.8g}, or 0)"
    return None


def elements_error(shape: Sequence[int], what: str) -> str | None:
    """Why a tensor of `shape` is too large: a dimension beyond MAX_DIM or more than MAX_ELEMENTS elements."""
    for dim in shape:
        problem = integer_error(dim, f"a dimension of {what}", MAX_DIM, 0)
        if problem is not None:
            return problem
    if math.prod(shape) > MAX_ELEMENTS:
        dims = "x".join(str(d) for d in shape)
        return f"{what} has {dims} = {math.prod(shape):,} elements, more than the limit of 2^48 per tensor"
    return None


def parse_int(text: str, what: str) -> int | str:
    """The integer spelled by `text` (decimal digits, optionally signed), or the message of why it is not one
    (not an integer, or more digits than any i64 has: checked before converting, so a 5000-digit number
    costs nothing)."""
    digits = text.strip().lstrip("+-")
    if not digits.isdecimal() or not digits.isascii():
        return f"{what} must be an integer, got '{clip(text)}'"
    if len(digits.lstrip("0")) > MAX_INT_DIGITS:
        return f"{what} {clip(text)} is beyond the range of i64 (at most {I64_MAX}, 2^63 - 1)"
    return int(text)


_NESTING_CHARS = re.compile(r'[\[\](){}<>"\\#\n]')


def too_deep(
    text: str, *, comment: str | None = None, escapes: bool = False, angles: bool = False, limit: int = MAX_NESTING
) -> int | None:
    """The offset in `text` where brackets ((), [] and {}; with `angles` also the <> of MLIR types, `->`, `<=`
    and `>=` aside) first nest deeper than `limit`, outside "strings" (with backslash escapes if `escapes`) and
    comments (from `comment` to the end of the line); None if they never do. A linear scan, so a parser that
    recurses on nesting can be handed only what it can take."""
    depth = 0
    in_string = in_comment = False
    skip_to = -1
    for match in _NESTING_CHARS.finditer(text):
        char, at = match.group(), match.start()
        if at < skip_to:
            continue
        if char == "\n":
            in_string = in_comment = False
        elif in_comment:
            continue
        elif in_string:
            if char == '"':
                in_string = False
            elif char == "\\" and escapes:
                skip_to = at + 2
        elif char == '"':
            in_string = True
        elif char == comment:
            in_comment = True
        elif char in "<>" and (not angles or text[at + 1 : at + 2] == "=" or text[at - 1 : at] == "-"):
            continue
        elif char in "([{<":
            depth += 1
            if depth > limit:
                return at
        elif char in ")]}>":
            depth -= 1
    return None


def line_col(text: str, offset: int) -> tuple[int, int, str]:
    """The 1-based line and column of `offset` in `text`, and that line."""
    start = text.rfind("\n", 0, offset) + 1
    end = text.find("\n", offset)
    return text.count("\n", 0, offset) + 1, offset - start + 1, text[start : end if end >= 0 else len(text)]


def _digits(value: int) -> str:
    """`value` as text, or its digit count when it is too long to print whole."""
    if value.bit_length() > 200:
        return f"a number of about {int(value.bit_length() * math.log10(2)) + 1} digits"
    return str(value)


def clip(text: str, width: int = 40) -> str:
    return text if len(text) <= width else f"{text[:width]}... ({len(text)} characters)"


def read_source(path: str, limit: int = MAX_SOURCE_BYTES, what: str = "a model file") -> str:
    """The text of a model file or config.json (`what`); Q35Error if it is not a readable file of UTF-8
    text of at most `limit` bytes. No more than the limit is read, so a huge file (or /dev/zero) costs nothing;
    a pipe is read like a file."""
    try:
        if stat.S_ISDIR(os.stat(path).st_mode):
            raise Q35Error(f"cannot read {path}: it is a directory", Location(path))
        with open(path, "rb") as file:
            data = file.read(limit + 1)
    except OSError as err:
        raise Q35Error(f"cannot read {path}: {err.strerror}", Location(path)) from None
    if len(data) > limit:
        raise Q35Error(f"larger than {limit:,} bytes, the limit for {what}", Location(path))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise Q35Error(f"cannot read {path}: not UTF-8 text (byte {err.start})", Location(path)) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")
