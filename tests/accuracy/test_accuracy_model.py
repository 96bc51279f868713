"""The numpy forward pass, requantization, the q3p5 slot permutation and the GGUF q/k row order."""

from __future__ import annotations

import numpy as np
import pytest

from q35c.accuracy.evaluate import ChunkScore, Score, log_softmax
from q35c.accuracy.forward import Session, attention, greedy
from q35c.accuracy.requant import codec, requantize
from q35c.accuracy.slots import ActivationStats, SlotPermutation, choose_slots, permute, slot_order
from q35c.frontend.gguf_dense import dense_gguf, rope_halves_to_rows, rope_rows_to_halves
from q35c.util.errors import Q35Error
from q35c.verify import reference


def converter_permute(w: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's convert_hf_to_gguf.py `permute` (Hugging Face rows -> GGUF rows)."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def test_rope_rows_undo_the_converters_permutation() -> None:
    w = np.arange(64 * 3, dtype=np.float32).reshape(64, 3)
    assert np.array_equal(rope_rows_to_halves(converter_permute(w, 4), 4), w)
    assert np.array_equal(rope_halves_to_rows(w, 4), converter_permute(w, 4))


def test_attention_is_the_references() -> None:
    rng = np.random.default_rng(1)
    t, c, hd = 5, 3, 8
    q = rng.standard_normal((t, 6 * hd)).astype(np.float32)
    k, v = (rng.standard_normal((c + t, 2 * hd)).astype(np.float32) for _ in range(2))
    ours = attention(q, k, v, 6, 2, hd)
    ref = reference.attention(q, k[c:], v[c:], k[:c], v[:c], 6, 2, hd)
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-6)


def test_the_cache_continues_a_sequence(tiny_gguf: str) -> None:
    model = dense_gguf(tiny_gguf)
    ids = np.arange(3, 23)
    whole = Session(model).forward(ids)
    session = Session(model)
    parts = np.concatenate([session.forward(ids[:7]), session.forward(ids[7:8]), session.forward(ids[8:])])
    np.testing.assert_allclose(parts, whole, rtol=1e-4, atol=1e-4)
    out = greedy(model, [5, 6], 4)
    assert out[:2] == [5, 6] and len(out) == 6
    assert out[2] == int(np.argmax(Session(model).forward([5, 6])[-1]))


def test_the_file_grid_is_reproduced_exactly(tiny_gguf: str) -> None:
    model = dense_gguf(tiny_gguf)
    assert set(requantize(model, "q4_1").errors.values()) == {0.0}
    # int4 with g=32 has the same min-max grid; its offset lo + 8 s is rounded to float16, so nearly exact
    assert max(requantize(model, "int4:g=32").errors.values()) < 1e-3
    off = requantize(model, "q3p5:g=64")
    assert all(0.01 < e < 0.5 for e in off.errors.values())
    assert off.bits_per_weight == pytest.approx(4.0)
    assert "embed_tokens" not in off.errors and "embed_tokens" in requantize(model, "int8", embeddings=True).errors


def test_int3_is_coarser_than_int4_at_the_same_group() -> None:
    w = np.random.default_rng(2).standard_normal((8, 128)).astype(np.float32)
    e3, e4 = (float(np.sqrt(((codec(s).roundtrip(w) - w) ** 2).mean())) for s in ("int3:g=64", "int4:g=64"))
    assert 1.5 < e3 / e4 < 3
    assert codec("int3:g=64").bits_per_weight(128) == 3.5
    with pytest.raises(Q35Error, match="invalid quantization scheme"):
        codec("int5")


def test_slot_order_puts_the_most_important_first_in_even_columns() -> None:
    perm = slot_order(np.array([0.1, 5.0, 3.0, 0.2, 4.0, 0.0]))
    assert list(perm[0::2]) == [1, 4, 2] and sorted(perm) == list(range(6))


def test_the_slot_permutation_preserves_the_logits(tiny_gguf: str) -> None:
    model = dense_gguf(tiny_gguf)
    stats = ActivationStats()
    ids = np.arange(2, 40)
    before = Session(model, observe=stats).forward(ids)
    perm = choose_slots(model, stats)
    assert not np.array_equal(perm.hidden, np.arange(model.config.hidden))
    after = Session(permute(model, perm)).forward(ids)
    np.testing.assert_allclose(after, before, rtol=1e-4, atol=1e-4)
    rng = np.random.default_rng(3)
    shuffled = SlotPermutation(rng.permutation(model.config.hidden), tuple(rng.permutation(256) for _ in range(2)))
    np.testing.assert_allclose(Session(permute(model, shuffled)).forward(ids), before, rtol=1e-4, atol=1e-4)


def test_scores_and_their_spread() -> None:
    lp = log_softmax(np.array([[2.0, 0.0, 0.0], [0.0, 0.0, 3.0]], dtype=np.float32))
    np.testing.assert_allclose(np.exp(lp).sum(axis=1), 1.0, rtol=1e-6)
    score = Score((ChunkScore(1.0, 0.2, 2, 2), ChunkScore(3.0, 0.0, 1, 2)))
    assert score.perplexity == pytest.approx(np.exp(1.0)) and score.top1 == 0.75 and score.kl == pytest.approx(0.05)
    assert score.kl_stderr == pytest.approx(0.05)


def test_the_real_model_knows_paris(smollm2: str) -> None:
    from q35c.frontend.gguf_reader import read_gguf
    from q35c.frontend.tokenizer import gguf_tokenizer

    model = dense_gguf(smollm2)
    tok = gguf_tokenizer(read_gguf(smollm2))
    out = greedy(model, tok.encode("The capital of France is"), 2)
    assert "Paris" in tok.decode(out[-2:])


def test_packed_q_rows_decode_to_the_dense_rows(tiny_gguf: str) -> None:
    from q35c import formats
    from q35c.frontend.gguf_dense import gguf_config, in_rope_halves
    from q35c.frontend.gguf_reader import read_gguf
    from q35c.frontend.gguf_tensors import gguf_weights

    gguf = read_gguf(tiny_gguf)
    dense, cfg = dense_gguf(tiny_gguf), gguf_config(gguf)
    for name, qt in gguf_weights(gguf):
        if name.endswith(("q_proj", "k_proj")):
            moved = in_rope_halves(name, qt, cfg)
            np.testing.assert_array_equal(formats.get(moved.scheme).dequantize(moved), dense.params[name])


def test_the_forward_pass_is_q35s_reference_interpreter(tiny_gguf: str) -> None:
    """The q35 graph of the file, run by q35c's numpy reference on the file's weights (q/k rows in rotate-half
    order), gives the logits of this forward pass, up to the reference's float16 activations."""
    from q35c.frontend import load_model
    from q35c.frontend.gguf_dense import gguf_config, in_rope_halves
    from q35c.frontend.gguf_reader import read_gguf
    from q35c.frontend.gguf_tensors import gguf_weights
    from q35c.verify.model import model_inputs

    gguf = read_gguf(tiny_gguf)
    cfg = gguf_config(gguf)
    module = load_model(tiny_gguf, seq=12).module
    inputs = model_inputs(module, np.random.default_rng(0))
    ids = inputs[0].reshape(-1)
    params = {name: in_rope_halves(name, qt, cfg) for name, qt in gguf_weights(gguf)}
    theirs = reference.evaluate(module, inputs, params)[0].astype(np.float32).reshape(12, -1)
    ours = Session(dense_gguf(tiny_gguf)).forward(ids)
    scale = float(np.abs(ours).max())
    assert float(np.abs(theirs - ours).max()) < 0.02 * scale
    assert (theirs.argmax(axis=1) == ours.argmax(axis=1)).mean() > 0.9


def test_generate_text_continues_the_prompt(tiny_gguf: str) -> None:
    from q35c.accuracy.generate import generate_text

    pieces: list[str] = []
    result = generate_text(tiny_gguf, "the and", 5, on_text=pieces.append)
    assert len(result.new_ids) == len(result.logits) <= 5
    assert "".join(pieces) == result.text
    assert result.new_ids[0] == int(np.argmax(result.logits[0]))
    expected = greedy(dense_gguf(tiny_gguf), list(result.prompt_ids), 5, stop=0)
    assert list(result.new_ids) == expected[len(result.prompt_ids) :]
