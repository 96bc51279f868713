"""The GGUF reader (`q35c.frontend.gguf_reader`) and the import's validation, on files the tests write with gguf."""

from __future__ import annotations

import struct
from pathlib import Path

import gguf
import numpy as np
import pytest
from gguf import GGMLQuantizationType as GGML
from gguf import GGUFValueType
from test_frontend_gguf import LAYER, tiny_shapes, write_gguf

from q35c.cli.main import main
from q35c.frontend.gguf_file import load_gguf, scheme_of
from q35c.frontend.gguf_reader import GGML_TYPES, GgufArray, read_gguf
from q35c.frontend.summary import summarize
from q35c.util.errors import Q35Error


def test_ggml_types_are_the_gguf_package_types() -> None:
    known = {int(t): (t.name, *gguf.GGML_QUANT_SIZES[t]) for t in GGML if t in gguf.GGML_QUANT_SIZES}
    assert {i: (t.name, t.block, t.block_bytes) for i, t in GGML_TYPES.items()} == known


def test_header_metadata_and_tensors_as_gguf_reads_them(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "t.gguf", types={"output.weight": GGML.Q8_0})
    ours, theirs = read_gguf(path), gguf.GGUFReader(path)
    assert ours.version == 3
    assert ours.metadata["llama.block_count"] == 2
    assert ours.metadata["general.name"] == "tiny-gguf"
    assert ours.fields["llama.attention.layer_norm_rms_epsilon"].kind_name == "float32"
    assert [t.name for t in ours.tensors] == [t.name for t in theirs.tensors]
    for mine, ref in zip(ours.tensors, theirs.tensors, strict=True):
        assert mine.ggml.name == ref.tensor_type.name
        assert mine.dims == tuple(int(d) for d in ref.shape)
        assert mine.offset == ref.data_offset and mine.nbytes == ref.n_bytes
        raw = ours.tensor_data(mine)
        assert raw.tobytes() == np.asarray(ref.data).tobytes()
    assert ours.tensor_bytes == sum(int(t.n_bytes) for t in theirs.tensors)


def test_arrays_are_read_on_demand(tmp_path: Path) -> None:
    writer = gguf.GGUFWriter(str(tmp_path / "a.gguf"), "llama")
    writer.add_token_list(["a", "bc", "déf"] * 1000)
    writer.add_array("test.numbers", [1, 2, 3])
    writer.add_tensor("x", np.zeros((4,), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    tokens = read_gguf(str(tmp_path / "a.gguf")).metadata["tokenizer.ggml.tokens"]
    assert isinstance(tokens, GgufArray) and tokens.kind_name == "string" and len(tokens) == 3000
    assert tokens.values()[:3] == ["a", "bc", "déf"]


def test_version_2_files_are_read(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "t.gguf")
    data = bytearray(Path(path).read_bytes())
    data[4:8] = struct.pack("<I", 2)
    Path(path).write_bytes(bytes(data))
    assert read_gguf(path).version == 2
    assert load_gguf(path).name == "tiny-gguf"


# -- every ggml type: a scheme with its exact bytes --

SHAPES_256 = {  # hidden 256 so that the 256-weight super-blocks fit every row
    "token_embd.weight": (256, 256),
    **{
        f"blk.{i}.{n}.weight": (256,) if len(s) == 1 else (s[0] * 4, s[1] * 4)
        for i in range(2)
        for n, s in LAYER.items()
    },
    "output_norm.weight": (256,),
    "output.weight": (256, 256),
}


def write_256(path: Path, types: dict[str, GGML]) -> str:
    writer = gguf.GGUFWriter(str(path), "llama")
    for key, value in {"block_count": 2, "embedding_length": 256, "feed_forward_length": 512}.items():
        writer.add_uint32(f"llama.{key}", value)
    writer.add_head_count(4)
    writer.add_head_count_kv(2)
    for name, shape in SHAPES_256.items():
        ggml = types.get(name, GGML.F32 if len(shape) == 1 else GGML.Q4_K)
        writer.add_tensor(name, np.zeros(gguf.quant_shape_to_byte_shape(shape, ggml), np.uint8), raw_dtype=ggml)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return str(path)


@pytest.mark.parametrize("ggml", [t for t in GGML if t in gguf.GGML_QUANT_SIZES and t.name not in ("F32", "F16")])
def test_every_ggml_type_imports_with_its_exact_bytes(tmp_path: Path, ggml: GGML) -> None:
    path = write_256(tmp_path / "t.gguf", {"blk.1.attn_q.weight": ggml, "output.weight": GGML.Q6_K})
    graph = load_gguf(path)
    schemes = {w.name: w.scheme for w in graph.weights}
    assert str(schemes["decoder.1.q_proj"]) == scheme_of(ggml.name) == ggml.name.lower()
    assert str(schemes["decoder.0.q_proj"]) == "q4_k" and str(schemes["lm_head"]) == "q6_k"
    stored = sum(w.scheme.storage_bytes(*w.shape) if len(w.shape) == 2 else 4 * w.shape[0] for w in graph.weights)
    assert stored == read_gguf(path).tensor_bytes
    assert bool(graph.notes) == schemes["decoder.1.q_proj"].opaque


def test_info_shows_the_mix_and_the_file_bytes(tmp_path: Path) -> None:
    from q35c.frontend import load_model

    types = {"blk.0.ffn_down.weight": GGML.Q6_K, "blk.1.ffn_down.weight": GGML.Q4_K, "blk.0.attn_v.weight": GGML.Q5_K}
    path = write_256(tmp_path / "t.gguf", types)
    summary = summarize(load_model(path))
    kinds = {row.kind: row for row in summary.kinds}
    assert kinds["down_proj"].scheme in ("q6_k x1, q4_k x1", "q4_k x1, q6_k x1")
    assert kinds["q_proj"].scheme == "q4_k"
    assert kinds["down_proj"].bytes == 256 * 512 // 256 * (210 + 144)
    assert summary.weight_bytes == read_gguf(path).tensor_bytes


def test_an_opaque_type_builds_no_kernel(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_256(tmp_path / "t.gguf", {"blk.0.ffn_up.weight": GGML.IQ2_XXS})
    assert main(["info", path]) == 0
    assert "iq2_xxs x1" in capsys.readouterr().out
    assert main(["build", path, "--target", "host", "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "cannot unpack iq2_xxs weights: q35c knows this ggml type's size (2.0625 bits per weight)" in err
    assert "Traceback" not in err and not (tmp_path / "out").exists()


# -- bad files: exit 2, naming the key or tensor, before any work --


def _tensor_type_offset(data: bytes, name: str, n_dims: int) -> int:
    """The byte offset of a tensor info's type field."""
    return data.rindex(name.encode()) + len(name) + 4 + 8 * n_dims


def _patched(tmp_path: Path, at: int, raw: bytes, **kwargs: object) -> str:
    path = write_gguf(tmp_path / "bad.gguf", **kwargs)  # type: ignore[arg-type]
    data = bytearray(Path(path).read_bytes())
    data[at if at >= 0 else len(data) + at : (at if at >= 0 else len(data) + at) + len(raw)] = raw
    Path(path).write_bytes(bytes(data))
    return path


def _error(path: str) -> str:
    with pytest.raises(Q35Error) as info:
        load_gguf(path)
    return info.value.message


def _with_metadata(tmp_path: Path, key: str, value: object, vtype: GGUFValueType) -> str:
    """The tiny model with metadata `key` written as `value` of GGUF kind `vtype`."""
    writer = gguf.GGUFWriter(str(tmp_path / "meta.gguf"), "llama")
    good: dict[str, object] = {
        "llama.block_count": 2,
        "llama.context_length": 512,
        "llama.embedding_length": 64,
        "llama.feed_forward_length": 128,
        "llama.attention.head_count": 4,
        "llama.attention.head_count_kv": 2,
    }
    for name, number in good.items():
        if name != key:
            writer.add_uint32(name, number)  # type: ignore[arg-type]
    if vtype == GGUFValueType.ARRAY:
        writer.add_array(key, value)  # type: ignore[arg-type]
    else:
        writer.add_key_value(key, value, vtype)
    for name, shape in tiny_shapes().items():
        ggml = GGML.F32 if len(shape) == 1 else GGML.Q4_0
        writer.add_tensor(name, np.zeros(gguf.quant_shape_to_byte_shape(shape, ggml), np.uint8), raw_dtype=ggml)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return str(tmp_path / "meta.gguf")


@pytest.mark.parametrize(
    ("key", "value", "vtype", "message"),
    [
        ("llama.attention.head_count", 0, GGUFValueType.UINT32, "'llama.attention.head_count' = 0 is out of range"),
        ("llama.block_count", 2**32 - 1, GGUFValueType.UINT32, "'llama.block_count' = 4294967295 is out of range"),
        (
            "llama.embedding_length",
            "64",
            GGUFValueType.STRING,
            "'llama.embedding_length' must be an integer, got a str",
        ),
        ("llama.feed_forward_length", [128, 128], GGUFValueType.ARRAY, "must be an integer, got a array"),
        ("llama.rope.freq_base", float("inf"), GGUFValueType.FLOAT32, "'llama.rope.freq_base' = inf must be a finite"),
        ("llama.rope.freq_base", float("nan"), GGUFValueType.FLOAT64, "'llama.rope.freq_base' = nan must be a finite"),
        ("llama.context_length", -5, GGUFValueType.INT64, "'llama.context_length' = -5 is out of range"),
        ("llama.attention.head_count_kv", 3, GGUFValueType.UINT32, "head_count 4 is not a multiple of head_count_kv 3"),
    ],
)
def test_bad_metadata_values(tmp_path: Path, key: str, value: object, vtype: GGUFValueType, message: str) -> None:
    assert message in _error(_with_metadata(tmp_path, key, value, vtype))


def test_block_count_must_match_the_layers_present(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "t.gguf", shapes=tiny_shapes(layers=3))
    assert _error(path) == (
        "GGUF metadata 'llama.block_count' = 2, but the file has tensors for 3 layers (blk.0 .. blk.2)"
    )


def test_unknown_tensor_type(tmp_path: Path) -> None:
    data = Path(write_gguf(tmp_path / "t.gguf")).read_bytes()
    path = _patched(tmp_path, _tensor_type_offset(data, "blk.1.attn_k.weight", 2), struct.pack("<I", 99))
    assert _error(path) == "tensor 'blk.1.attn_k.weight' has an unknown ggml type 99"


def test_tensor_bytes_that_disagree_with_type_and_shape(tmp_path: Path) -> None:
    data = Path(write_gguf(tmp_path / "t.gguf")).read_bytes()
    # Q4_0 -> Q8_0: the same shape now needs 34 bytes per block instead of 18 and overlaps the next tensor
    path = _patched(tmp_path, _tensor_type_offset(data, "blk.0.attn_q.weight", 2), struct.pack("<I", 8))
    assert _error(path).startswith("tensor 'blk.0.attn_q.weight' [64, 64] of type Q8_0 is 4352 bytes, which overlaps")
    # a first dimension that is not whole blocks
    at = _tensor_type_offset(data, "blk.0.attn_q.weight", 2) - 16
    path = _patched(tmp_path, at, struct.pack("<Q", 48))
    assert "rows of 48 elements, not a whole number of its 32-element blocks" in _error(path)


def test_truncated_file_names_the_tensor(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "t.gguf")
    Path(path).write_bytes(Path(path).read_bytes()[:-100])
    assert _error(path).startswith("tensor 'output.weight' [64, 256] of type Q4_0 is 9216 bytes at offset")


def test_absurd_counts_are_refused_before_reading(tmp_path: Path) -> None:
    path = _patched(tmp_path, 8, struct.pack("<Q", 2**60))
    assert _error(path).startswith("the tensor count 1152921504606846976 is impossible: only")
    path = _patched(tmp_path, 16, struct.pack("<Q", 2**40))
    assert _error(path).startswith("the metadata count 1099511627776 is impossible")


@pytest.mark.parametrize(
    ("version", "message"),
    [(1, "unsupported GGUF version 1 (version 1 is llama.cpp's pre-2023 format)"), (3 << 24, "big-endian")],
)
def test_versions(tmp_path: Path, version: int, message: str) -> None:
    assert message in _error(_patched(tmp_path, 4, struct.pack("<I", version)))


def test_bad_files_exit_2_without_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = Path(write_gguf(tmp_path / "t.gguf")).read_bytes()
    path = _patched(tmp_path, _tensor_type_offset(data, "blk.1.attn_k.weight", 2), struct.pack("<I", 12345))
    assert main(["info", path]) == 2
    err = capsys.readouterr().err
    assert err == f"q35c: error: {path}: tensor 'blk.1.attn_k.weight' has an unknown ggml type 12345\n"
    empty = tmp_path / "empty.gguf"
    empty.write_bytes(b"")
    assert main(["info", str(empty)]) == 2
    assert "not a GGUF file (it is empty)" in capsys.readouterr().err


def test_weights_one_tensor_at_a_time_decode_as_gguf_does(tmp_path: Path) -> None:
    from q35c import formats
    from q35c.frontend.gguf_tensors import gguf_weights

    rng = np.random.default_rng(4)
    path = str(tmp_path / "w.gguf")
    writer = gguf.GGUFWriter(path, "llama")
    tensors = {
        "blk.0.attn_norm.weight": rng.standard_normal(64).astype(np.float32),
        "blk.0.attn_q.weight": rng.standard_normal((64, 64)).astype(np.float16),
        "blk.0.attn_k.weight": gguf.quants.quantize(rng.standard_normal((32, 64)).astype(np.float32), GGML.Q4_1),
        "blk.0.ffn_down.weight": gguf.quants.quantize(rng.standard_normal((64, 128)).astype(np.float32), GGML.Q8_0),
        "rope_freqs.weight": np.ones(8, np.float32),
    }
    raw_types = {"blk.0.attn_k.weight": GGML.Q4_1, "blk.0.ffn_down.weight": GGML.Q8_0}
    for name, data in tensors.items():
        writer.add_tensor(name, data, raw_dtype=raw_types.get(name))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    theirs = {t.name: t for t in gguf.GGUFReader(path).tensors}
    weights = dict(gguf_weights(read_gguf(path)))
    assert list(weights) == ["decoder.0.input_layernorm", "decoder.0.q_proj", "decoder.0.k_proj", "decoder.0.down_proj"]
    assert [str(qt.scheme) for qt in weights.values()] == ["f32", "fp16", "q4_1", "q8_0"]
    assert weights["decoder.0.k_proj"].shape == (32, 64) and weights["decoder.0.input_layernorm"].shape == (1, 64)
    names = {"attn_norm": "input_layernorm", "attn_q": "q_proj", "attn_k": "k_proj", "ffn_down": "down_proj"}
    for gguf_name, name in ((f"blk.0.{a}.weight", f"decoder.0.{b}") for a, b in names.items()):
        ref = theirs[gguf_name]
        expected = gguf.quants.dequantize(ref.data, ref.tensor_type).astype(np.float32).reshape(weights[name].shape)
        got = formats.get(weights[name].scheme).dequantize(weights[name])
        assert np.array_equal(got.view(np.uint32), expected.view(np.uint32)), name
