"""`q35c formats`: the table of schemes and the --explain bit layouts, through the real command line."""

from __future__ import annotations

import re

import numpy as np
import pytest

from q35c import formats
from q35c.cli.main import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["formats", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def table_rows(out: str) -> dict[str, list[str]]:
    return {line.split()[0]: line.split() for line in out.splitlines() if re.match(r"^(fp16|int|q)", line)}


def test_table_lists_every_scheme_with_its_bits(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys)
    assert code == 0 and err == ""
    rows = table_rows(out)
    assert "K = 4096" in out
    expected = {
        "fp16": "16.0000",
        "int8": "8.0039",
        "int4:g=128": "4.2500",
        "q3p5:g=128:container=dense": "3.7500",
        "q3p5:g=64:container=dense": "4.0000",
        "q3p5:g=128:container=byte": "4.2500",
        "q4_0": "4.5000",
        "q8_0": "8.5000",
    }
    for spec, bits in expected.items():
        assert rows[spec][1] == bits, rows[spec]
    assert rows["q3p5:g=128:container=dense"][2] == "uint32"
    assert rows["q3p5:g=128:container=byte"][2] == "uint8"
    assert "fp16 scale + offset per 128 weights" in out
    assert "fp16 scale inside each block of 32" in out


def test_table_for_another_k(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--k", "96")
    assert code == 0
    rows = table_rows(out)
    assert rows["int8"][1] == "8.1667"  # 8 + 16/96
    assert " ".join(rows["q3p5:g=32:container=dense"][1:7]) == "n/a (K % 64 != 0)"
    assert " ".join(rows["int4:g=128"][1:7]) == "n/a (K % 128 != 0)"
    assert rows["int4:g=32"][1] == "5.0000"


@pytest.mark.parametrize(
    ("k", "message"),
    [
        ("0", "must be at least 1, got 0"),
        ("-5", "must be at least 1, got -5"),
        ("abc", "expected an integer, got 'abc'"),
    ],
)
def test_bad_k_is_an_argument_error(capsys: pytest.CaptureFixture[str], k: str, message: str) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["formats", "--k", k])
    assert exc.value.code == 2
    assert f"argument --k: {message}" in capsys.readouterr().err


def test_explain_q3p5_dense(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--explain", "q3p5")
    assert code == 0
    assert out.startswith("q3p5:g=128:container=dense: 3.75 bits per weight")
    assert "c = ((n1 & 0xF) << 3) | (n2 & 0x7)" in out
    # the 7-word chunk, with the straddling pairs marked
    assert "word 0: p0 @0-6 | p1 @7-13 | p2 @14-20 | p3 @21-27 | p4[0:4]* @28-31" in out
    assert "word 1: p4[4:7]* @0-2 |" in out
    assert "word 6: p27[3:7]* @0-3 | p28 @4-10 | p29 @11-17 | p30 @18-24 | p31 @25-31" in out
    assert sorted(set(re.findall(r"p(\d+)\[", out)), key=int) == ["4", "9", "13", "18", "22", "27"]
    # the worked example's packed words are what the library produces for the same numbers
    words = re.search(r"packed words 0..6 \(pairs 0..31\): ((?:0x[0-9A-F]{8} ?){7})", out)
    assert words is not None
    scale = re.search(r"scale = (\S+), offset = (\S+) \(float16\)", out)
    assert scale is not None
    rows = re.findall(r"^\s+(\d+)\s+(-?\d\.\d+)\s+(-?\d+)\s+(-?\d\.\d+)\s", out, flags=re.M)
    assert len(rows) == 16
    codes = [int(r[2]) for r in rows]
    assert all(-8 <= c <= 7 for c in codes[0::2]) and all(-4 <= c <= 3 for c in codes[1::2])
    pairs = [((codes[2 * p] & 0xF) << 3) | (codes[2 * p + 1] & 7) for p in range(4)]
    word0 = int(words.group(1).split()[0], 16)
    assert word0 & ((1 << 28) - 1) == pairs[0] | pairs[1] << 7 | pairs[2] << 14 | pairs[3] << 21
    s, o = float(scale.group(1)), float(scale.group(2))
    for k, (_, _, c, dec) in enumerate(rows):
        step = s if k % 2 == 0 else 2 * s
        assert float(dec) == pytest.approx(o + step * int(c), abs=2e-6)


def test_explain_q3p5_byte(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--explain", "q3p5:container=byte")
    assert code == 0
    assert "one pair code per uint8 (bit 7 zero)" in out
    assert "word 0:" not in out
    assert "packed bytes 0..7:" in out


@pytest.mark.parametrize(
    ("spec", "needles"),
    [
        ("int4", ["int4:g=128: 4.25 bits", "code j of a word in bits [4j, 4j+4)", "word 0 = 0x"]),
        ("int4:g=64", ["group of g = 64 weights"]),
        ("int8", ["q in [-127, 127]", "per row (output channel)"]),
        ("q4_0", ["18 bytes", "byte 2+i = (q[i] + 8) | (q[i+16] + 8) << 4", "block bytes:"]),
        ("q8_0", ["34 bytes", "halves away from zero", "block bytes:"]),
        ("fp16", ["IEEE 754 binary16", "0x"]),
    ],
)
def test_explain_other_schemes(capsys: pytest.CaptureFixture[str], spec: str, needles: list[str]) -> None:
    code, out, err = run(capsys, "--explain", spec)
    assert code == 0 and err == ""
    for needle in needles:
        assert needle in out


def test_explain_q4_0_block_bytes_come_from_the_library(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys, "--explain", "q4_0")
    line = next(x for x in out.splitlines() if x.startswith("block bytes:"))
    data = bytes(int(b, 16) for b in line.split(":")[1].split())
    assert len(data) == 18
    d = np.frombuffer(data[:2], dtype="<f2")[0]
    assert f"d = {float(d):.6g} (float16)" in out
    codes = formats.get("q4_0").unpack(np.frombuffer(data, dtype=np.uint8)[None, :].copy())
    rows = re.findall(r"^\s+(\d+)\s+(-?\d\.\d+)\s+(-?\d+)\s", out, flags=re.M)
    assert [int(r[2]) for r in rows] == codes[0, :8].tolist()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            "q5",
            "q35c: error: unknown quantization scheme 'q5' (valid: fp16, f32, int8, int4, q3p5, q4_0, q8_0, q4_1, "
            "q5_0, q5_1, q2_k, q3_k, q4_k, q5_k, q6_k, iq4_nl, iq4_xs; for sizes only, the other ggml types: iq2_xxs, "
            "tq1_0, bf16, ...); did you mean 'q5_0', 'q5_1' or 'q5_k'?",
        ),
        ("q3p5:g=7", "q35c: error: q3p5 group size g must be even (weights pair up along K), got 7"),
        ("int8:container=byte", "q35c: error: unknown key 'container' for scheme int8 (valid keys: g)"),
    ],
)
def test_explain_unknown_scheme_exits_2(capsys: pytest.CaptureFixture[str], spec: str, message: str) -> None:
    code, out, err = run(capsys, "--explain", spec)
    assert code == 2
    assert out == ""
    assert err.strip() == message
    assert "Traceback" not in err


def test_help_has_examples(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["formats", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and "q35c formats --explain q3p5" in out
