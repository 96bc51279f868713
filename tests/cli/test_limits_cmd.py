"""Input beyond q35c's limits (`q35c.util.limits`) is refused before any work: one located line, exit status 2.

Each case would otherwise recurse, overflow, allocate gigabytes or run for minutes; here it must end at once
with `q35c: error:` naming the file and position, the key, or the spec, and the limit it broke.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from q35c.cli.main import EXIT_USAGE, main
from q35c.util.limits import MAX_LAYERS, MAX_NESTING

BASE = "dim d = 64\ninput x: [T, d]\nparam w: [d, d]\n"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def refused(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """The first line of the error `q35c ARGV` ends with, asserting it is a user error without a traceback."""
    code, _, err = run(capsys, *argv)
    assert code == EXIT_USAGE, err
    assert err.startswith("q35c: error: ") and "Traceback" not in err
    return err.splitlines()[0]


def model(tmp_path: Path, text: str) -> str:
    path = tmp_path / "m.q35"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    ("text", "where", "words"),
    [
        ("dim layers = 2147483648\n" + BASE + "output y = linear(x, w)\n", ":1:14:", "limit of 2147483647"),
        ("dim d = 100000000000000000000\n", ":1:9:", "beyond the range of i64"),
        ("dim d = " + "9" * 4301 + "\n", ":1:9:", "beyond the range of i64"),
        ("const big = 4611686018427387904 * 4\n", ":1:13:", "beyond the range of i64"),
        ("const huge = 1e308 * 10\n", ":1:14:", "must be finite"),
        (BASE + "param g: [d]\noutput y = rmsnorm(x, g, eps = 1e39)\n", ":5:12:", "outside the range of f32"),
        (BASE + "param g: [d]\noutput y = rmsnorm(x, g, eps = 1e-50)\n", ":5:12:", "too small for f32"),
        ("dim d = 33554432\ninput x: [T, d]\nparam w: [d, d]\n", ":3:7:", "2^48"),
        (
            BASE + f"block b x {MAX_LAYERS + 1} {{\n  param u: [d, d]\n  x = x + linear(x, u)\n}}\noutput y = x\n",
            ":4:11:",
            f"limit of {MAX_LAYERS}",
        ),
        ("dim a = " + "(" * (MAX_NESTING + 1) + "1" + ")" * (MAX_NESTING + 1) + "\n", f":1:{9 + MAX_NESTING}:", "nest"),
    ],
)
def test_model_language_beyond_the_limits(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str, where: str, words: str
) -> None:
    line = refused(capsys, "info", model(tmp_path, text))
    assert where in line and words in line


def test_long_and_deep_expressions_work_without_recursion(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    terms = "+".join(["1"] * 5000)
    silu = "silu(" * 190 + "x" + ")" * 190
    text = (
        f"dim d = {terms}\ninput x: [T, d]\nparam w: [d, d]\noutput y = linear({silu} + {'+'.join(['x'] * 500)}, w)\n"
    )
    code, out, err = run(capsys, "info", model(tmp_path, text), "--json")
    assert code == 0, err
    assert json.loads(out)["params"] == 5000 * 5000


def test_a_model_file_over_the_size_limit(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    line = refused(capsys, "info", model(tmp_path, "# padding\n" * 200_000))
    assert "larger than 1,048,576 bytes" in line


def config(tmp_path: Path, **changes: object) -> str:
    data = json.loads(Path("examples/hf/tiny.json").read_text())
    data.update(changes)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data))
    return str(path)


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"num_hidden_layers": 2**63 - 1}, "'num_hidden_layers' = 9223372036854775807 is more than the limit of 512"),
        ({"hidden_size": 2**64}, "'hidden_size' = 18446744073709551616 is beyond the range of i64"),
        ({"rms_norm_eps": 1e300}, "'rms_norm_eps' = 1e+300 is outside the range of f32"),
        ({"rope_theta": float("inf")}, "'rope_theta' must be a finite number"),
        ({"rms_norm_eps": float("nan")}, "'rms_norm_eps' must be a positive number, got nan"),
    ],
)
def test_config_json_beyond_the_limits(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, changes: dict[str, object], words: str
) -> None:
    path = config(tmp_path, **changes)
    line = refused(capsys, "info", path)
    column = Path(path).read_text().index(f'"{next(iter(changes))}"') + 1
    assert words in line and f"config.json:1:{column}: " in line


def test_deeply_nested_json_and_huge_numbers(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    assert f"deep.json:1:{MAX_NESTING + 1}: arrays and objects nest more than" in refused(capsys, "info", str(deep))
    digits = tmp_path / "digits.json"
    digits.write_text('{"architectures": ["LlamaForCausalLM"], "hidden_size": ' + "9" * 5000 + "}")
    assert "'hidden_size' = 9999" in refused(capsys, "info", str(digits))


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("int4:g=9223372036854775808", "group size g = 9223372036854775808 in scheme 'int4:g=9223372036854775808'"),
        ("q3p5:g=2147483648", "is more than the limit of 65536"),
        ("int4:g=100000032", "is more than the limit of 65536"),
        ("int4:g=" + "9" * 5000, "beyond the range of i64"),
    ],
)
def test_quant_specs_beyond_the_limits(capsys: pytest.CaptureFixture[str], spec: str, words: str) -> None:
    assert words in refused(capsys, "formats", "--explain", spec)
    assert words.split(" in scheme")[0] in refused(capsys, "info", "tiny", "--quant", spec)


@pytest.mark.parametrize(
    "argv",
    [
        ("build", "tiny", "--target", "host", "--batch", "99999999999999999999999"),
        ("build", "tiny", "--target", "host", "--devices", "100000"),
        ("build", "tiny", "--target", "host", "--gen", "16777217"),
        ("formats", "--k", "2147483648"),
    ],
)
def test_command_line_values_beyond_the_limits(capsys: pytest.CaptureFixture[str], argv: tuple[str, ...]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    _, err = capsys.readouterr()
    assert exit_info.value.code == EXIT_USAGE
    assert "must be at most" in err and "(the limit)" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (("verify", "--linear", "9" * 4301 + "x1x1", "--quant", "int8"), "positive integers up to 2147483647"),
        (("verify", "--linear", "2x32x128", "--quant", "int8", "--flip-bit", "9" * 4301 + ",0,0"), "at most 19 digits"),
        (("verify", "--linear", "64x4096x4096", "--quant", "int8"), "more than the limit of 4,194,304"),
        (("build", "tiny", "--target", "host", "--option", "tile-n=" + "9" * 4301), "beyond the range of i64"),
    ],
)
def test_numbers_inside_option_values(capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], words: str) -> None:
    assert words in refused(capsys, *argv)


def test_compare_refuses_deep_or_huge_json(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    assert f"deep.json:1:{MAX_NESTING + 1}: arrays and objects nest" in refused(capsys, "compare", str(deep), str(deep))
    huge = tmp_path / "huge.json"
    huge.write_text('{"model": "m", "targets": [{"target": "h", "decode_tok_s": ' + "9" * 5000 + "}]}")
    assert "huge.json" in refused(capsys, "compare", str(huge), str(huge))
