"""Exit status of the command line: bad input is a one-line `q35c: error: ...` with status 2 (a Q35Error); any
other exception is a q35c bug, `q35c: internal error: ...` with status 70, its traceback only on request."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from q35c.cli import formats as formats_cmd
from q35c.cli.main import EXIT_INTERNAL, EXIT_USAGE, main
from q35c.util.errors import Q35Error


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_q35error_is_a_valueerror() -> None:
    # Library callers that catch ValueError for bad arguments keep working.
    assert issubclass(Q35Error, ValueError)
    with pytest.raises(ValueError, match="unknown quantization scheme 'bogus'"):
        from q35c.ir.schemes import parse_scheme

        parse_scheme("bogus")


@pytest.mark.parametrize("error", [ValueError("boom\nsecond line"), RuntimeError("boom"), KeyError("boom")])
def test_internal_error_exits_70_without_traceback(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    def broken(args: argparse.Namespace) -> int:
        raise error

    monkeypatch.delenv("Q35C_TRACEBACK", raising=False)
    monkeypatch.setattr(formats_cmd, "run", broken)
    code, out, err = run(capsys, "formats")
    assert code == EXIT_INTERNAL == 70
    assert out == ""
    assert err.startswith(f"q35c: internal error: {type(error).__name__}: ")
    assert "boom" in err and "second line" not in err
    assert len(err.splitlines()) == 1
    assert "Traceback" not in err and "q35c: error:" not in err


@pytest.mark.parametrize("how", ["env", "--debug"])
def test_internal_error_traceback_on_request(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    def broken(args: argparse.Namespace) -> int:
        raise ValueError("boom")

    monkeypatch.setattr(formats_cmd, "run", broken)
    if how == "env":
        monkeypatch.setenv("Q35C_TRACEBACK", "1")
        code, _, err = run(capsys, "formats")
    else:
        monkeypatch.delenv("Q35C_TRACEBACK", raising=False)
        code, _, err = run(capsys, "--debug", "formats")
    assert code == 70
    assert "Traceback (most recent call last)" in err
    assert "in broken" in err
    assert err.rstrip().splitlines()[-1] == "q35c: internal error: ValueError: boom"


def test_bad_input_from_a_command_is_still_exit_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def rejects(args: argparse.Namespace) -> int:
        raise Q35Error("no such thing")

    monkeypatch.delenv("Q35C_TRACEBACK", raising=False)
    monkeypatch.setattr(formats_cmd, "run", rejects)
    code, _, err = run(capsys, "formats")
    assert (code, err) == (EXIT_USAGE, "q35c: error: no such thing\n")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("info", "tiny", "--quant", "bogus"), "unknown quantization scheme 'bogus'"),
        (("formats", "--explain", "q3p5:g=7"), "q3p5 group size g must be even"),
        (("formats", "--explain", "int4:g=0"), "group size g must be positive, got 0"),
        (("formats", "--explain", "bogus"), "unknown quantization scheme 'bogus'"),
        (("targets", "nope"), "unknown target 'nope'"),
        (("build", "tiny", "--target", "nope"), "unknown target 'nope'"),
        (("build", "tiny", "--target", "host", "--option", "tile-t=-1"), "pipeline option 'tile-t' must be at least 0"),
        (("verify", "--linear", "2x3", "--quant", "int4"), "--linear expects TxNxK"),
    ],
)
def test_bad_input_exits_2_in_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, argv: tuple[str, ...], message: str
) -> None:
    monkeypatch.delenv("Q35C_TRACEBACK", raising=False)
    code, out, err = run(capsys, *argv)
    assert code == 2, err
    assert out == ""
    assert err.startswith("q35c: error: ") and message in err
    assert len(err.splitlines()) == 1
    assert "Traceback" not in err and "internal error" not in err


def test_malformed_model_file_exits_2_with_location(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("Q35C_TRACEBACK", raising=False)
    bad = tmp_path / "bad.q35"
    bad.write_text("model bad\nthis is not valid\n", encoding="utf-8")
    code, out, err = run(capsys, "info", str(bad))
    assert code == 2 and out == ""
    first = err.splitlines()[0]
    assert first.startswith(f"q35c: error: {bad}:1:") and "syntax error" in first
    assert "Traceback" not in err and "internal error" not in err


def test_bad_spec_toml_is_a_q35error(tmp_path: Path) -> None:
    from q35c.targets.spec import load_spec

    (tmp_path / "broken.toml").write_text("this is = = not toml\n", encoding="utf-8")
    with pytest.raises(Q35Error, match="invalid TOML"):
        load_spec("broken", tmp_path)
