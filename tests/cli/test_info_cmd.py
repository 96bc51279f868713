"""`q35c info`: parameter counts, weight bytes from the IR, bits per weight and KV-cache size."""

from __future__ import annotations

import json

import pytest

from q35c.cli.main import main
from q35c.frontend import load_model
from q35c.frontend.examples import EXAMPLES_DIR
from q35c.frontend.summary import summarize
from q35c.ir.schemes import parse_scheme

# Published parameter counts.
PARAMS = {
    "llama-2-7b": 6_738_415_616,
    "llama-2-13b": 13_015_864_320,
    "llama-2-70b": 68_976_648_192,
    "llama-3-8b": 8_030_261_248,
    "llama-3-70b": 70_553_706_496,
    "llama-3.1-405b": 405_853_388_800,
}
# 2 (k and v) * layers * kv_heads * head_dim * 2 bytes (f16)
KV_PER_TOKEN = {
    "llama-2-7b": 2 * 32 * 32 * 128 * 2,
    "llama-2-13b": 2 * 40 * 40 * 128 * 2,
    "llama-2-70b": 2 * 80 * 8 * 128 * 2,
    "llama-3-8b": 2 * 32 * 8 * 128 * 2,
    "llama-3-70b": 2 * 80 * 8 * 128 * 2,
    "llama-3.1-405b": 2 * 126 * 8 * 128 * 2,
}


@pytest.mark.parametrize("name", PARAMS)
@pytest.mark.parametrize("form", ["q35", "config.json"])
def test_parameter_counts_match_the_published_ones(name: str, form: str) -> None:
    model = name if form == "q35" else str(EXAMPLES_DIR / "hf" / f"{name}.json")
    summary = summarize(load_model(model))
    assert summary.params == PARAMS[name]
    assert summary.kv_bytes_per_token == KV_PER_TOKEN[name]


def test_70b_at_q3p5_dense_g128_weight_bytes_follow_the_schemes() -> None:
    summary = summarize(load_model("llama-2-70b", quant="q3p5"))
    q3p5, fp16 = parse_scheme("q3p5:g=128:container=dense"), parse_scheme("fp16")
    for kind in summary.kinds:
        scheme = fp16 if len(kind.shape) == 1 else q3p5
        assert kind.scheme == str(scheme)
        rows, k = (1, kind.shape[0]) if len(kind.shape) == 1 else kind.shape
        assert kind.bytes == kind.count * scheme.storage_bytes(rows, k)
        if scheme is q3p5:
            assert kind.bytes * 8 / kind.params == 3.75  # 3.5 bits of codes + 32/128 of fp16 scale and offset
    matrices = PARAMS["llama-2-70b"] - 161 * 8192  # all but the 161 norm vectors
    assert summary.weight_bytes == matrices * 3.75 / 8 + 161 * 8192 * 2
    assert summary.bits_per_weight == pytest.approx(3.75, abs=1e-3)


def test_info_json_has_the_headline_numbers(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "llama-3-8b", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["params"] == PARAMS["llama-3-8b"]
    assert data["kv_bytes_per_token"] == KV_PER_TOKEN["llama-3-8b"]
    assert data["weight_bytes"] == sum(k["bytes"] for k in data["kinds"])
    assert data["bits_per_weight"] == pytest.approx(data["weight_bytes"] * 8 / data["params"])
    per_layer = (218_112_000 - 2 * 4096) * 3.75 / 8 + 2 * 4096 * 2  # q3p5 matrices, fp16 norm gains
    assert data["layers"][1] == {"layer": "decoder.0-31", "count": 32, "params": 218_112_000, "bytes": per_layer}


def test_info_text_tables(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "tiny"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("tiny (") and out.splitlines()[0].endswith("tiny.q35)")
    assert "  parameters          106,816\n" in out
    assert "  bits per weight     6.874\n" in out
    assert "  KV cache per token  256 bytes (256 B)\n" in out
    assert "  lm_head                   256x64  int8                           1   16,384  16,896   8.250\n" in out
    assert "  decoder.0-1       2  36,992  20,992   4.540\n" in out


def test_info_quant_changes_the_default_scheme(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "llama-2-7b", "--quant", "int8", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {k["scheme"] for k in data["kinds"]} == {"int8", "fp16"}


def test_unknown_model_lists_the_examples(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "gpt-j"]) == 2
    assert capsys.readouterr().err == (
        "q35c: error: unknown model 'gpt-j' (a file path, one of the bundled examples: llama-2-13b, "
        "llama-2-70b, llama-2-7b, llama-3-70b, llama-3-8b, llama-3.1-405b, tiny, or a packaged model: "
        "smollm2-135m)\n"
    )


def test_unknown_model_suggests_a_close_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "lama-2-7b"]) == 2
    assert capsys.readouterr().err.startswith("q35c: error: unknown model 'lama-2-7b'; did you mean 'llama-2-7b'?")


def test_missing_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "nowhere/model.q35"]) == 2
    assert capsys.readouterr().err == "q35c: error: nowhere/model.q35: no such model file: nowhere/model.q35\n"
