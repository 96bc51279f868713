"""MLIR text a user hands q35c: every failure is a located Q35Error, and lexing takes linear time."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from xdsl.utils.mlir_lexer import MLIRLexer

from q35c.driver.mlir_input import parse_module
from q35c.driver.xdsl_lexer import STRING_LITERAL, install
from q35c.frontend import load_model
from q35c.util.errors import Q35Error

# xDSL 0.74's pattern, exponential on a missing closing quote: compared with ours on short texts only.
UPSTREAM = re.compile(r'"(?:[^"\\\n\v\f]+|\\(?:["nt\\]|[0-9A-Fa-f]{2}))*"')


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet='"\\abn\n\t0F ', max_size=12))
def test_the_string_pattern_accepts_what_upstream_accepts(text: str) -> None:
    ours, theirs = STRING_LITERAL.match(text), UPSTREAM.match(text)
    assert (ours and ours.group()) == (theirs and theirs.group())


def test_an_unclosed_string_fails_in_one_pass() -> None:
    # Upstream's pattern would backtrack 2^n ways over these n letters; ours gives up after one scan.
    assert STRING_LITERAL.match('"' + "a" * 100_000) is None
    install()
    assert MLIRLexer._unescaped_characters_regex is STRING_LITERAL  # pyright: ignore[reportPrivateUsage]


@pytest.mark.parametrize("tail", ["", "\n", " b\n\n"])
def test_an_unclosed_string_is_a_located_error(tail: str) -> None:
    with pytest.raises(Q35Error) as caught:
        parse_module('"' + "a" * 40 + tail, "q.mlir")
    assert str(caught.value.location) == "q.mlir:1:1"
    assert "closing string literal" in caught.value.message


def test_a_type_that_fails_its_checks_while_parsing_is_located() -> None:
    text = str(load_model("tiny").module).replace("!q35.packed<64x64", "!q35.packed<0x64", 1)
    number = next(i for i, line in enumerate(text.splitlines(), start=1) if "packed<0x64" in line)
    with pytest.raises(Q35Error) as caught:
        parse_module(text, "bad.mlir")
    error = caught.value
    assert error.message == "invalid IR: !q35.packed dimensions must be positive, got [0, 64]"
    assert error.location is not None and error.location.line == number
    assert error.context is not None and "packed<0x64" in error.context


@pytest.mark.parametrize("depth", [60, 100_000])
def test_deep_nesting_is_refused_before_the_recursive_parser_sees_it(depth: int) -> None:
    text = "builtin.module attributes {a = " + "[{b = " * depth + "1" + "}]" * depth + "} {}\n"
    with pytest.raises(Q35Error) as caught:
        parse_module(text, "deep.mlir")
    assert "nest more than 50 deep" in caught.value.message
    assert caught.value.location is not None and caught.value.location.line == 1


def test_nesting_within_the_limit_parses() -> None:
    depth = 24  # 48 brackets, about four times what q35c's own IR uses
    text = "builtin.module attributes {a = " + "[{b = " * depth + "1" + "}]" * depth + "} {}\n"
    module = parse_module(text, "ok.mlir")
    assert "a" in module.attributes


GENERIC = """func.func @f(%a: tensor<2xf32>) -> tensor<2xf32> {
  %0 = linalg.generic {indexing_maps = [affine_map<(d0) -> (d0)>, affine_map<(d0) -> (d0)>],
                       iterator_types = [ITER]} ins(%a : tensor<2xf32>) outs(%a : tensor<2xf32>) {
  ^bb0(%x: f32, %y: f32):
    linalg.yield %x : f32
  } -> tensor<2xf32>
  func.return %0 : tensor<2xf32>
}
"""


def test_a_value_the_parser_rejects_without_a_diagnostic_is_located() -> None:
    assert parse_module(GENERIC.replace("ITER", '"parallel"'), "ok.mlir") is not None
    with pytest.raises(Q35Error) as caught:
        parse_module(GENERIC.replace("ITER", '"paralel"'), "bad.mlir")
    assert caught.value.message == "invalid IR: 'paralel' is not a valid IteratorType"
    assert caught.value.location is not None and caught.value.location.line == 3
