"""`q35c accuracy` and `q35c quantize` on a tiny GGUF; the packaged model's name; the group-size hint."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from q35c import formats
from q35c.accuracy.export import load_npz, quantize_file
from q35c.accuracy.study import run_study
from q35c.cli.main import main
from q35c.frontend import examples
from q35c.frontend.gguf_dense import dense_gguf
from q35c.frontend.gguf_reader import read_gguf
from q35c.frontend.gguf_tensors import gguf_weights
from q35c.util.errors import Q35Error


def test_a_study_orders_the_schemes_by_error(tiny_gguf: str) -> None:
    study = run_study(tiny_gguf, ["q4_1", "int8", "int3:g=64"], chunk=32, max_tokens=96, slots=True)
    rows = {row.label: row for row in study.rows}
    assert len(study.reference.score.chunks) == 3 and study.tokens == 96
    exact = rows["q4_1"]
    assert exact.exact and exact.score.kl == 0 and exact.score.perplexity == study.reference.score.perplexity
    assert rows["int8"].score.kl < rows["int3:g=64"].score.kl
    assert rows["int8"].score.top1 >= rows["int3:g=64"].score.top1
    assert not any(row.slots for row in study.rows)  # no q3p5 scheme: nothing to permute


def test_cli_accuracy_writes_the_report(tiny_gguf: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "acc"
    argv = ["accuracy", tiny_gguf, "--quant", "q3p5:g=64,int4:g=64", "--chunk", "32", "--tokens", "64"]
    assert main([*argv, "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "q3p5:g=64:container=dense +slots" in text and "err q_proj" in text
    data = json.loads((out / "accuracy.json").read_text())
    assert [s["scheme"] for s in data["schemes"]][-1].endswith("+slots")
    assert (out / "accuracy.png").read_bytes()[:4] == b"\x89PNG"
    assert "| scheme |" in (out / "accuracy.md").read_text()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["accuracy", "tiny", "--quant", "int8"], "needs a model with weights"),
        (["accuracy", "{gguf}", "--quant", "int5"], "invalid quantization scheme 'int5'"),
        (["quantize", "{gguf}", "--quant", "q3p5:g=64", "-o", "{tmp}/x.gguf"], "no ggml tensor type"),
        (["quantize", "{gguf}", "--quant", "int3", "-o", "{tmp}/x.npz"], "simulated"),
        (["quantize", "{gguf}", "--quant", "int8", "-o", "{tmp}/x.bin"], "unknown output container"),
        (["quantize", "{gguf}", "--quant", "q3p5:g=96", "-o", "{tmp}/x.npz"], "group sizes that fit K=128"),
        (["accuracy", "{gguf}", "--quant", "int8,int4:g=96"], "weight decoder.0.q_proj [128, 128]"),
    ],
)
def test_bad_input_is_one_line(
    argv: list[str], message: str, tiny_gguf: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([a.format(gguf=tiny_gguf, tmp=tmp_path) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("q35c: error: ") and message in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_quantize_to_gguf_is_read_back_bit_exactly(tiny_gguf: str, tmp_path: Path) -> None:
    out = tmp_path / "q4_0.gguf"
    summary = quantize_file(tiny_gguf, "q4_0", str(out))
    assert summary.container == ".gguf" and 0 < summary.requantized < summary.weights
    source = {n: qt for n, qt in gguf_weights(read_gguf(tiny_gguf))}
    fmt = formats.get("q4_0")
    for name, qt in gguf_weights(read_gguf(str(out))):
        if name.endswith("_proj"):
            assert str(qt.scheme) == "q4_0"
            w = formats.get(source[name].scheme).dequantize(source[name])
            assert np.array_equal(fmt.dequantize(qt), fmt.dequantize(fmt.quantize(w)))
        else:
            assert str(qt.scheme) == str(source[name].scheme)
    assert read_gguf(str(out)).fields["tokenizer.ggml.pre"].value == "smollm"


def test_quantize_to_npz_round_trips(tiny_gguf: str, tmp_path: Path) -> None:
    out = tmp_path / "q3p5.npz"
    assert main(["quantize", tiny_gguf, "--quant", "q3p5:g=64", "-o", str(out)]) == 0
    weights, meta = load_npz(str(out))
    assert meta["rope_rows"] == "halves" and meta["config"]["heads"] == 4
    dense = dense_gguf(tiny_gguf)
    fmt = formats.get("q3p5:g=64")
    q = weights["decoder.1.q_proj"]
    assert str(q.scheme) == "q3p5:g=64:container=dense"
    np.testing.assert_array_equal(fmt.dequantize(q), fmt.dequantize(fmt.quantize(dense.params["decoder.1.q_proj"])))


def test_the_packaged_model_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(examples.PACKAGED, "smollm2-135m", ("q35c_no_such_package", "model.gguf"))
    with pytest.raises(Q35Error, match=r"bash scripts/setup --models"):
        examples.resolve_model("smollm2-135m")


def test_the_packaged_model_resolves(smollm2: str) -> None:
    assert examples.resolve_model("smollm2-135m") == smollm2


def test_the_group_size_error_names_the_sizes_that_fit() -> None:
    with pytest.raises(Q35Error, match=r"K=576 .* group sizes that fit K=576: 16, 32, 64 \(e.g. q3p5:g=64"):
        formats.get("q3p5").quantize(np.zeros((2, 576), np.float32))


def test_build_report_with_accuracy(tiny_gguf: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report"
    argv = ["build", tiny_gguf, "--quant", "q3p5:g=64", "--target", "m2-max", "-o", str(out), "--accuracy"]
    assert main(argv) == 0
    assert "accuracy.md/json/png" in capsys.readouterr().out
    data = json.loads((out / "accuracy.json").read_text())
    assert [s["scheme"] for s in data["schemes"]] == ["q3p5:g=64:container=dense", "q3p5:g=64:container=dense +slots"]
    assert data["schemes"][0]["kl"] > 0
    markdown = (out / "report.md").read_text()
    assert "## Accuracy:" in markdown and "![error vs bits per weight](accuracy.png)" in markdown
    assert (out / "accuracy.png").read_bytes()[:4] == b"\x89PNG" and (out / "report.json").is_file()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["build", "tiny", "--quant", "int8", "--target", "m2-max", "-o", "{tmp}/r", "--accuracy"], "with weights"),
        (["build", "{gguf}", "--target", "m2-max", "-o", "{tmp}/r", "--accuracy"], "add --quant S"),
        (["build", "{gguf}", "--quant", "int8", "--target", "m2-max", "--accuracy"], "add -o DIR"),
        (["build", "{gguf}", "--quant", "int8", "--accuracy"], "need --target"),
        (["build", "{gguf}", "--quant", "int5", "--target", "m2-max", "-o", "{tmp}/r", "--accuracy"], "int5"),
    ],
)
def test_build_accuracy_bad_input(
    argv: list[str], message: str, tiny_gguf: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([a.format(gguf=tiny_gguf, tmp=tmp_path) for a in argv]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
