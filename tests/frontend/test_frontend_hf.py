"""Hugging Face config.json import, and its agreement with the model-language examples."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from q35c.cli.main import main
from q35c.driver.pipeline import module_text
from q35c.frontend import example_names, load_model
from q35c.frontend.examples import EXAMPLES_DIR
from q35c.frontend.hf_config import load_config
from q35c.util.errors import Q35Error

LARGE = ["llama-2-7b", "llama-2-13b", "llama-2-70b", "llama-3-8b", "llama-3-70b", "llama-3.1-405b"]

# Qwen2-0.5B's published config.json: tied embeddings, explicit GQA, q/k/v biases.
QWEN2_05B: dict[str, Any] = {
    "architectures": ["Qwen2ForCausalLM"],
    "hidden_size": 896,
    "intermediate_size": 4864,
    "max_position_embeddings": 32768,
    "model_type": "qwen2",
    "num_attention_heads": 14,
    "num_hidden_layers": 24,
    "num_key_value_heads": 2,
    "rms_norm_eps": 1e-06,
    "rope_theta": 1000000.0,
    "tie_word_embeddings": True,
    "torch_dtype": "bfloat16",
    "use_sliding_window": False,
    "vocab_size": 151936,
}

# Mistral-7B-v0.1's published config.json.
MISTRAL_7B: dict[str, Any] = {
    "architectures": ["MistralForCausalLM"],
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "max_position_embeddings": 32768,
    "model_type": "mistral",
    "num_attention_heads": 32,
    "num_hidden_layers": 32,
    "num_key_value_heads": 8,
    "rms_norm_eps": 1e-05,
    "rope_theta": 10000.0,
    "sliding_window": 4096,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "vocab_size": 32000,
}


def write(tmp_path: Path, config: dict[str, Any], name: str = "config.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(config, indent=2))
    return str(path)


def hf(name: str) -> str:
    return str(EXAMPLES_DIR / "hf" / f"{name}.json")


def test_every_example_has_both_forms() -> None:
    assert example_names() == sorted([*LARGE, "tiny"])
    assert all(Path(hf(name)).is_file() for name in example_names())


@pytest.mark.parametrize("name", LARGE)
def test_config_json_gives_the_same_ir_as_the_model_language(name: str) -> None:
    # The .q35 examples state q3p5 as their default; the same --quant makes both forms identical.
    for quant in ("fp16", "q3p5"):
        from_language = load_model(name, quant=quant)
        from_config = load_model(hf(name), quant=quant)
        assert module_text(from_language.module) == module_text(from_config.module)


def test_tiny_config_json_has_the_same_weights_as_tiny_q35() -> None:
    # tiny.q35 overrides embed_tokens and lm_head, so compare names and shapes.
    a, b = load_model("tiny").graph.weights, load_model(hf("tiny")).graph.weights
    assert [(w.name, w.shape) for w in a] == [(w.name, w.shape) for w in b]


def test_config_json_weights_are_fp16_without_quant() -> None:
    graph = load_config(hf("llama-3-8b"))
    assert {str(w.scheme) for w in graph.weights} == {"fp16"}


def test_llama_3_1_notes_rope_scaling() -> None:
    assert load_config(hf("llama-3.1-405b")).notes == ("rope_scaling is not represented: rope uses rope_theta alone",)


def test_qwen2_tied_embeddings_and_biases(tmp_path: Path) -> None:
    graph = load_config(write(tmp_path, QWEN2_05B))
    names = [w.name for w in graph.weights]
    assert "lm_head" not in names
    assert names[:6] == [
        "embed_tokens",
        "decoder.0.input_layernorm",
        "decoder.0.q_proj",
        "decoder.0.q_bias",
        "decoder.0.k_proj",
        "decoder.0.k_bias",
    ]
    shapes = {w.name: w.shape for w in graph.weights}
    assert shapes["decoder.0.k_proj"] == (128, 896)  # 2 kv heads x head_dim 64
    assert shapes["decoder.0.v_bias"] == (128,)
    # Qwen2-0.5B's published parameter count (biases included, tied embeddings counted once).
    assert sum(w.params for w in graph.weights) == 494_032_768


def test_qwen2_ir_uses_the_embedding_table_as_lm_head(tmp_path: Path) -> None:
    text = module_text(load_model(write(tmp_path, QWEN2_05B)).module)
    assert 'q35.weight "lm_head"' not in text
    assert "%logits = q35.linear %0, %embed_tokens" in text


def test_mistral(tmp_path: Path) -> None:
    graph = load_config(write(tmp_path, MISTRAL_7B))
    assert sum(w.params for w in graph.weights) == 7_241_732_096  # Mistral-7B-v0.1
    assert graph.notes == ("sliding-window attention is not represented: attention sees the whole cache",)


def test_explicit_head_dim(tmp_path: Path) -> None:
    config = {**MISTRAL_7B, "head_dim": 64, "num_attention_heads": 48}
    shapes = {w.name: w.shape for w in load_config(write(tmp_path, config)).weights}
    assert shapes["decoder.0.q_proj"] == (48 * 64, 4096)
    assert shapes["decoder.0.o_proj"] == (4096, 48 * 64)
    assert shapes["decoder.0.k_proj"] == (8 * 64, 4096)


def test_null_head_dim_means_hidden_over_heads(tmp_path: Path) -> None:
    shapes = {w.name: w.shape for w in load_config(write(tmp_path, {**MISTRAL_7B, "head_dim": None})).weights}
    assert shapes["decoder.0.q_proj"] == (4096, 4096)


def test_attention_and_mlp_bias_flags_of_llama(tmp_path: Path) -> None:
    config = json.loads(Path(hf("tiny")).read_text()) | {"attention_bias": True, "mlp_bias": True}
    kinds = {w.kind for w in load_config(write(tmp_path, config)).weights}
    assert {"q_bias", "k_bias", "v_bias", "o_bias", "gate_bias", "up_bias", "down_bias"} <= kinds


def error(tmp_path: Path, text: str) -> str:
    path = tmp_path / "config.json"
    path.write_text(text)
    with pytest.raises(Q35Error) as info:
        load_config(str(path))
    return info.value.render().replace(str(path), "config.json")


def test_unsupported_architecture_names_the_supported_ones(tmp_path: Path) -> None:
    text = '{\n  "architectures": ["GPT2LMHeadModel"],\n  "n_embd": 768\n}\n'
    assert error(tmp_path, text) == (
        "q35c: error: config.json:2:3: unsupported architecture 'GPT2LMHeadModel' "
        "(supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM)\n"
        '  "architectures": ["GPT2LMHeadModel"],\n'
        "  ^"
    )


def test_invalid_json_is_located(tmp_path: Path) -> None:
    assert error(tmp_path, '{\n  "hidden_size": 64,,\n}') == (
        "q35c: error: config.json:2:21: invalid JSON: Expecting property name enclosed in double quotes\n"
        '  "hidden_size": 64,,\n'
        "                    ^"
    )


def test_missing_key(tmp_path: Path) -> None:
    config = {k: v for k, v in MISTRAL_7B.items() if k != "intermediate_size"}
    assert error(tmp_path, json.dumps(config)) == (
        "q35c: error: config.json: config.json has no 'intermediate_size' (needed for a LLaMA-family decoder)"
    )


def test_bad_value_points_at_its_key(tmp_path: Path) -> None:
    text = json.dumps({**MISTRAL_7B, "num_key_value_heads": 5}, indent=2)
    assert error(tmp_path, text) == (
        "q35c: error: config.json:11:3: num_attention_heads 32 is not a multiple of num_key_value_heads 5\n"
        '  "num_key_value_heads": 5,\n'
        "  ^"
    )


def test_quant_that_does_not_divide_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, QWEN2_05B)
    with pytest.raises(Q35Error, match=r"weight embed_tokens \[151936, 896\] cannot be stored as int4:g=256"):
        load_config(path, quant="int4:g=256")


def test_cli_unsupported_architecture_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, {"architectures": ["BertModel"]})
    assert main(["info", path]) == 2
    err = capsys.readouterr().err
    assert "unsupported architecture 'BertModel' (supported: LlamaForCausalLM" in err
    assert "Traceback" not in err
