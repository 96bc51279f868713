"""Did-you-mean hints for mistyped target and scheme names, in the library and on the command line."""

from __future__ import annotations

import doctest

import pytest

from q35c.cli.main import main
from q35c.util import suggest
from q35c.util.suggest import close_names, did_you_mean

TARGETS = ["a100-sxm", "groq-lpu", "h100-pcie", "h100-sxm", "host", "m3-max", "mi300x"]


def test_the_docstring_examples_hold() -> None:
    assert doctest.testmod(suggest).failed == 0


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("h100", ["h100-pcie", "h100-sxm"]),
        ("H100-SXM5", ["h100-sxm"]),
        ("groq", ["groq-lpu"]),
        ("mi300", ["mi300x"]),
        ("tpu-v5", []),
        ("", []),
    ],
)
def test_close_names_of_targets(word: str, expected: list[str]) -> None:
    assert close_names(word, TARGETS) == expected


def test_at_most_three_suggestions_and_no_duplicates() -> None:
    names = ["q4_0", "q4_1", "q4_k", "q5_0", "q4_0"]
    found = close_names("q4", names)
    assert len(found) <= suggest.MAX_SUGGESTIONS and len(set(found)) == len(found)
    assert did_you_mean("zzz", names) == ""


@pytest.mark.parametrize(
    ("argv", "hint"),
    [
        (["build", "tiny", "--target", "h100"], "did you mean 'h100-pcie' or 'h100-sxm'?"),
        (["build", "tiny", "--target", "all,groq"], "did you mean 'groq-lpu'?"),
        (["targets", "m3"], "did you mean 'm3-max'?"),
        (["build", "tiny", "--quant", "q3.5", "--target", "h100-sxm"], "did you mean 'q3p5'?"),
    ],
)
def test_the_command_line_suggests(argv: list[str], hint: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("q35c: error: ") and hint in err and err.count("\n") == 1
