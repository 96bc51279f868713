"""The GGUF byte-level BPE tokenizer: merges by rank, the smollm pre-tokenizer, control tokens, round trips."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from tiny_llama import CONTROL, vocabulary

from q35c.frontend.gguf_reader import read_gguf
from q35c.frontend.tokenizer import Tokenizer, byte_alphabet, gguf_tokenizer


def test_byte_alphabet_is_gpt2s() -> None:
    alphabet = byte_alphabet()
    assert len(set(alphabet)) == 256
    assert alphabet[ord(" ")] == "Ġ" and alphabet[ord("\n")] == "Ċ" and alphabet[ord("A")] == "A"


def test_merges_apply_by_rank(tiny_gguf: str) -> None:
    tok = gguf_tokenizer(read_gguf(tiny_gguf))
    names = [tok.tokens[i] for i in tok.encode("the and of other")]
    assert names == ["the", "Ġand", "Ġof", "Ġo", "the", "r"]


def test_smollm_splits_every_digit() -> None:
    tokens = [*vocabulary(), "12", "Ġ1"]
    merges = ["1 2", "Ġ 1"]
    smollm, gpt2 = (Tokenizer(tokens, merges, pre=pre) for pre in ("smollm", "gpt2"))
    assert [tokens[i] for i in smollm.encode("a 123")] == ["a", "Ġ", "1", "2", "3"]
    assert [tokens[i] for i in gpt2.encode("a 123")] == ["a", "Ġ", "12", "3"]  # digits merge across


def test_control_tokens_in_text(tiny_gguf: str) -> None:
    tok = gguf_tokenizer(read_gguf(tiny_gguf))
    ids = tok.encode(f"the{CONTROL[1]}the")
    assert ids == [vocabulary().index("the"), 1, vocabulary().index("the")]
    assert tok.decode(ids) == f"the{CONTROL[1]}the"


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=40))
def test_every_text_round_trips(text: str) -> None:
    tokens = vocabulary()
    tok = Tokenizer(tokens, ["t h", "th e", "Ġ th"], pre="smollm", control=(0, 1))
    assert tok.decode(tok.encode(text)) == text


def test_the_real_tokenizer(smollm2: str) -> None:
    tok = gguf_tokenizer(read_gguf(smollm2))
    assert tok.vocab_size == 49152 and not tok.add_bos
    france = tok.tokens.index("ĠFrance")
    assert tok.encode(" France") == [france]
    text = "Four score and seven years ago, in 1863: naïve “quotes” 日本語 <|im_start|>"
    assert tok.decode(tok.encode(text)) == text
    assert tok.encode("<|im_start|>") == [tok.tokens.index("<|im_start|>")]
