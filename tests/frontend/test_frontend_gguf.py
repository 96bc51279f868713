"""GGUF import: metadata, tensor shapes and ggml types, from small files written with gguf.GGUFWriter."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import gguf
import numpy as np
import pytest
from gguf import GGMLQuantizationType as GGML

from q35c.cli.main import main
from q35c.driver.pipeline import module_text
from q35c.frontend import load_model
from q35c.frontend.gguf_file import load_gguf
from q35c.util.errors import Q35Error

LAYER = {
    "attn_norm": (64,),
    "attn_q": (64, 64),
    "attn_k": (32, 64),
    "attn_v": (32, 64),
    "attn_output": (64, 64),
    "ffn_norm": (64,),
    "ffn_gate": (128, 64),
    "ffn_up": (128, 64),
    "ffn_down": (64, 128),
}


def tiny_shapes(layers: int = 2, tied: bool = False) -> dict[str, tuple[int, ...]]:
    """The tensors of the tiny example in GGUF naming, as numpy shapes [N, K]."""
    shapes: dict[str, tuple[int, ...]] = {"token_embd.weight": (256, 64)}
    for i in range(layers):
        shapes.update({f"blk.{i}.{name}.weight": shape for name, shape in LAYER.items()})
    shapes["output_norm.weight"] = (64,)
    if not tied:
        shapes["output.weight"] = (256, 64)
    return shapes


def write_gguf(
    path: Path,
    *,
    types: Mapping[str, GGML] | None = None,
    shapes: Mapping[str, tuple[int, ...]] | None = None,
    arch: str = "llama",
    metadata: bool = True,
) -> str:
    """A tiny llama GGUF: norms F32, matrices Q4_0 unless `types` says otherwise; weight data is zeros."""
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_name("tiny-gguf")
    if metadata:
        writer.add_block_count(2)
        writer.add_context_length(512)
        writer.add_embedding_length(64)
        writer.add_feed_forward_length(128)
        writer.add_head_count(4)
        writer.add_head_count_kv(2)
        writer.add_layer_norm_rms_eps(1e-5)
        writer.add_rope_freq_base(10000.0)
    for name, shape in (shapes or tiny_shapes()).items():
        ggml = (types or {}).get(name, GGML.F32 if len(shape) == 1 else GGML.Q4_0)
        if ggml == GGML.F32:
            writer.add_tensor(name, np.zeros(shape, np.float32))
        elif ggml == GGML.F16:
            writer.add_tensor(name, np.zeros(shape, np.float16))
        else:
            data = np.zeros(gguf.quant_shape_to_byte_shape(shape, ggml), np.uint8)
            writer.add_tensor(name, data, raw_dtype=ggml)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return str(path)


def test_metadata_shapes_and_types(tmp_path: Path) -> None:
    types = {"token_embd.weight": GGML.F16, "output.weight": GGML.Q8_0}
    graph = load_gguf(write_gguf(tmp_path / "t.gguf", types=types))
    schemes = {w.name: str(w.scheme) for w in graph.weights}
    assert graph.name == "tiny-gguf"
    assert graph.max_context == 512
    assert schemes["embed_tokens"] == "fp16"
    assert schemes["decoder.1.down_proj"] == "q4_0"
    assert schemes["decoder.0.input_layernorm"] == "f32"  # as the file stores it
    assert schemes["lm_head"] == "q8_0"
    assert graph.notes == ()


def test_same_graph_as_the_tiny_example(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "t.gguf", types={n: GGML.F16 for n, s in tiny_shapes().items() if len(s) == 1})
    assert module_text(load_model(path, quant="fp16").module) == module_text(
        load_model("examples/hf/tiny.json", quant="fp16").module
    )


def test_weight_bytes_follow_the_ggml_types(tmp_path: Path) -> None:
    graph = load_gguf(write_gguf(tmp_path / "t.gguf"))
    q4_0 = [w for w in graph.weights if len(w.shape) == 2]
    assert all(str(w.scheme) == "q4_0" for w in q4_0)
    # llama.cpp's q4_0: 18 bytes per block of 32 weights
    assert sum(w.scheme.storage_bytes(*w.shape) for w in q4_0) == sum(w.params for w in q4_0) // 32 * 18


def test_quant_replaces_every_matrix_type(tmp_path: Path) -> None:
    graph = load_gguf(write_gguf(tmp_path / "t.gguf"), quant="q8_0")
    assert {str(w.scheme) for w in graph.weights if len(w.shape) == 2} == {"q8_0"}


def test_tied_embeddings_when_there_is_no_output_tensor(tmp_path: Path) -> None:
    graph = load_gguf(write_gguf(tmp_path / "t.gguf", shapes=tiny_shapes(tied=True)))
    assert "lm_head" not in {w.name for w in graph.weights}


def test_a_layer_of_another_type_gets_its_own_block_func(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "t.gguf", types={"blk.1.ffn_down.weight": GGML.Q8_0})
    funcs = [f.sym_name.data for f in load_model(path).module.ops]  # type: ignore[attr-defined]
    assert funcs == ["main", "decoder", "decoder_1"]


def test_qwen2_biases(tmp_path: Path) -> None:
    shapes = tiny_shapes()
    for i in range(2):
        shapes |= {f"blk.{i}.attn_q.bias": (64,), f"blk.{i}.attn_k.bias": (32,), f"blk.{i}.attn_v.bias": (32,)}
    graph = load_gguf(write_gguf(tmp_path / "q.gguf", shapes=shapes, arch="qwen2"))
    assert {"q_bias", "k_bias", "v_bias"} <= {w.kind for w in graph.weights}


def error(path: str) -> str:
    with pytest.raises(Q35Error) as info:
        load_gguf(path)
    return info.value.render()


def test_a_quantized_vector_is_refused(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "t.gguf", types={"output_norm.weight": GGML.I8})
    assert error(path) == f"q35c: error: {path}: tensor norm is a vector stored as I8; q35c expects F32 or F16"


def test_unsupported_architecture(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "t.gguf", arch="gpt2")
    assert error(path) == f"q35c: error: {path}: unsupported GGUF architecture 'gpt2' (supported: llama, qwen2)"


def test_missing_metadata(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "t.gguf", metadata=False)
    assert error(path) == f"q35c: error: {path}: GGUF metadata has no 'llama.block_count'"


def test_missing_tensor(tmp_path: Path) -> None:
    shapes = tiny_shapes()
    del shapes["blk.1.ffn_up.weight"]
    path = write_gguf(tmp_path / "t.gguf", shapes=shapes)
    assert error(path) == f"q35c: error: {path}: GGUF file has no tensor for decoder.1.up_proj [128, 64]"


def test_shape_that_contradicts_the_metadata(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "t.gguf", shapes=tiny_shapes() | {"blk.0.ffn_up.weight": (96, 64)})
    assert error(path) == (
        f"q35c: error: {path}: tensor decoder.0.up_proj has shape [96, 64], but the metadata implies [128, 64]"
    )


def test_unknown_tensor(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "t.gguf", shapes=tiny_shapes() | {"blk.0.attn_gate.weight": (64, 64)})
    assert error(path) == f"q35c: error: {path}: unexpected tensor 'blk.0.attn_gate.weight' for a llama decoder"


def test_not_a_gguf_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "junk.gguf"
    path.write_bytes(b"not a gguf file at all")
    assert main(["info", str(path)]) == 2
    err = capsys.readouterr().err
    assert err == f"q35c: error: {path}: not a GGUF file (it does not start with 'GGUF')\n"
    assert "Traceback" not in err


def test_cli_info_on_a_gguf_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_gguf(tmp_path / "t.gguf")
    assert main(["info", path]) == 0
    out = capsys.readouterr().out
    assert "parameters          106,816" in out
    assert "input_layernorm           64      f32" in out
