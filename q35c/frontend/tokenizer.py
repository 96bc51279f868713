"""The tokenizer a GGUF file carries: GPT-2-style byte-level BPE from `tokenizer.ggml.tokens` and `merges`.

    tok = gguf_tokenizer(read_gguf("model.gguf"))
    ids = tok.encode("The capital of France is")    # [504, 3575, 282, 4649, 314] for SmolLM2
    tok.decode(ids)                                # the text again (byte-level BPE round-trips every string)

Encoding follows llama.cpp's `llm_tokenizer_bpe` for `tokenizer.ggml.model = gpt2`:
1. control tokens (token type 3, such as `<|im_start|>`) written in the text become their ids;
2. the rest is split by the pre-tokenizer's regular expressions, applied in turn (`PRE_TOKENIZERS`; the `smollm`
   one first splits every digit off, then applies GPT-2's pattern);
3. each piece's UTF-8 bytes are mapped to GPT-2's printable byte alphabet (`Ġ` for a space) and merged pair by
   pair, lowest merge rank first, into tokens of the vocabulary.

Python's `re` has no `\\p{L}`/`\\p{N}`; the letter and number classes are built once from `unicodedata` (the
general categories L* and N*), so they are exact for the Unicode version of the running Python.
"""

from __future__ import annotations

import functools
import itertools
import re
import sys
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from q35c.frontend.gguf_reader import GgufArray, GgufFile
from q35c.util.errors import Location, Q35Error

CONTROL = 3  # llama.cpp's LLAMA_TOKEN_TYPE_CONTROL
MAX_TEXT = 1 << 24  # characters one encode call accepts
_GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?{L}+| ?{N}+| ?[^\s{L}{N}]+|\s+(?!\S)|\s+"
# Pre-tokenizer name (tokenizer.ggml.pre) -> its regular expressions, applied one after another.
PRE_TOKENIZERS: Mapping[str, tuple[str, ...]] = {
    "gpt2": (_GPT2,),
    "default": (_GPT2,),
    "smollm": (r"{N}", _GPT2),
    "starcoder": (r"{N}", _GPT2),
}


@functools.cache
def _category_class(prefix: str) -> str:
    """A `re` character-class body (no brackets) of every code point whose general category starts with `prefix`."""
    ranges: list[tuple[int, int]] = []
    for cp in range(sys.maxunicode + 1):
        if unicodedata.category(chr(cp)).startswith(prefix):
            if ranges and ranges[-1][1] == cp - 1:
                ranges[-1] = (ranges[-1][0], cp)
            else:
                ranges.append((cp, cp))
    return "".join(re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges)


def _compile(pattern: str) -> re.Pattern[str]:
    letters, numbers = _category_class("L"), _category_class("N")
    body = pattern.replace("[^\\s{L}{N}]", f"[^\\s{letters}{numbers}]")
    return re.compile(body.replace("{L}", f"[{letters}]").replace("{N}", f"[{numbers}]"))


@functools.cache
def byte_alphabet() -> tuple[str, ...]:
    """GPT-2's map of the 256 byte values to printable characters (`bytes_to_unicode`)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars: dict[int, int] = {b: b for b in printable}
    extra = 0
    for b in range(256):
        if b not in chars:
            chars[b] = 256 + extra
            extra += 1
    return tuple(chr(chars[b]) for b in range(256))


def _split(pieces: list[str], pattern: re.Pattern[str]) -> list[str]:
    """Each piece cut at the pattern's matches: the matches and the text between them, in order."""
    out: list[str] = []
    for piece in pieces:
        start = 0
        for match in pattern.finditer(piece):
            if match.start() > start:
                out.append(piece[start : match.start()])
            if match.end() > match.start():
                out.append(match.group())
            start = match.end()
        if start < len(piece):
            out.append(piece[start:])
    return out


@dataclass
class Tokenizer:
    """Byte-level BPE: the vocabulary (id -> token), merge ranks and the pre-tokenizer's patterns."""

    tokens: Sequence[str]
    merges: Sequence[str]
    pre: str = "gpt2"
    control: Sequence[int] = ()
    bos: int | None = None
    eos: int | None = None
    add_bos: bool = False
    _ids: dict[str, int] = field(init=False, repr=False)
    _ranks: dict[tuple[str, str], int] = field(init=False, repr=False)
    _patterns: tuple[re.Pattern[str], ...] = field(init=False, repr=False)
    _special: re.Pattern[str] | None = field(init=False, repr=False)
    _cache: dict[str, tuple[int, ...]] = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        if self.pre not in PRE_TOKENIZERS:
            raise Q35Error(f"unknown pre-tokenizer '{self.pre}' (known: {', '.join(sorted(PRE_TOKENIZERS))})")
        self._ids = {t: i for i, t in enumerate(self.tokens)}
        self._ranks = {}
        for rank, merge in enumerate(self.merges):
            left, sep, right = merge.partition(" ")
            if not sep or not left or not right:
                raise Q35Error(f"tokenizer merge {rank} '{merge[:40]}' is not two tokens separated by a space")
            self._ranks.setdefault((left, right), rank)
        self._patterns = tuple(_compile(p) for p in PRE_TOKENIZERS[self.pre])
        specials = sorted((self.tokens[i] for i in self.control), key=len, reverse=True)
        self._special = re.compile("|".join(map(re.escape, specials))) if specials else None

    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    def encode(self, text: str, *, bos: bool | None = None) -> list[int]:
        """The token ids of `text` (with the BOS token first if `bos`, by default as the file says)."""
        if len(text) > MAX_TEXT:
            raise Q35Error(f"text of {len(text):,} characters is more than the limit of {MAX_TEXT:,}")
        ids: list[int] = []
        if (self.add_bos if bos is None else bos) and self.bos is not None:
            ids.append(self.bos)
        start = 0
        for match in self._special.finditer(text) if self._special else ():
            ids += self._encode_plain(text[start : match.start()])
            ids.append(self._ids[match.group()])
            start = match.end()
        ids += self._encode_plain(text[start:])
        return ids

    def _encode_plain(self, text: str) -> list[int]:
        pieces = [text] if text else []
        for pattern in self._patterns:
            pieces = _split(pieces, pattern)
        alphabet = byte_alphabet()
        ids: list[int] = []
        for piece in pieces:
            word = "".join(alphabet[b] for b in piece.encode("utf-8"))
            if word not in self._cache:
                self._cache[word] = self._bpe(word)
            ids += self._cache[word]
        return ids

    def _bpe(self, word: str) -> tuple[int, ...]:
        """Merge the lowest-ranked adjacent pair, every occurrence left to right, until no pair has a rank."""
        parts = list(word)
        while len(parts) > 1:
            pairs = itertools.pairwise(parts)
            rank, left, right = min((self._ranks.get(p, len(self._ranks)), *p) for p in pairs)
            if rank == len(self._ranks):
                break
            merged: list[str] = []
            i = 0
            while i < len(parts):
                if i + 1 < len(parts) and parts[i] == left and parts[i + 1] == right:
                    merged.append(left + right)
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        out: list[int] = []
        for part in parts:
            if part in self._ids:
                out.append(self._ids[part])
            else:  # a byte the vocabulary lacks as a token of its own: llama.cpp spells it byte by byte
                out += [self._ids[c] for c in part if c in self._ids]
        return tuple(out)

    def decode(self, ids: Sequence[int]) -> str:
        """The text of token ids (control tokens as written; invalid UTF-8 as U+FFFD)."""
        inverse = {c: b for b, c in enumerate(byte_alphabet())}
        data = bytearray()
        for i in ids:
            if not 0 <= i < len(self.tokens):
                raise Q35Error(f"token id {i} is out of range [0, {len(self.tokens)})")
            token = self.tokens[i]
            if i in self.control:
                data += token.encode("utf-8")
            else:
                data += bytes(inverse[c] for c in token if c in inverse)
        return data.decode("utf-8", errors="replace")


def _strings(gguf: GgufFile, key: str) -> list[str]:
    field_ = gguf.fields.get(key)
    if field_ is None or not isinstance(field_.value, GgufArray):
        raise Q35Error(f"GGUF metadata has no array '{key}' (the file carries no tokenizer)", Location(gguf.path))
    values = field_.value.values()
    if not all(isinstance(v, str) for v in values):
        raise Q35Error(f"GGUF metadata '{key}' must be an array of strings", Location(gguf.path))
    return [str(v) for v in values]


def _optional(gguf: GgufFile, key: str) -> object:
    field_ = gguf.fields.get(key)
    return None if field_ is None else field_.value


def gguf_tokenizer(gguf: GgufFile) -> Tokenizer:
    """The byte-level BPE tokenizer of a GGUF file; Q35Error if it has none or another kind."""
    model = _optional(gguf, "tokenizer.ggml.model")
    if model != "gpt2":
        raise Q35Error(f"tokenizer '{model}' is not supported (only byte-level BPE, 'gpt2')", Location(gguf.path))
    tokens = _strings(gguf, "tokenizer.ggml.tokens")
    merges = _strings(gguf, "tokenizer.ggml.merges")
    types_field = gguf.fields.get("tokenizer.ggml.token_type")
    types = list(types_field.value.values()) if types_field and isinstance(types_field.value, GgufArray) else []
    control = tuple(i for i, t in enumerate(types) if t == CONTROL and i < len(tokens))
    pre = _optional(gguf, "tokenizer.ggml.pre")

    def token_id(key: str) -> int | None:
        value = _optional(gguf, key)
        return value if isinstance(value, int) and 0 <= value < len(tokens) else None

    return Tokenizer(
        tokens,
        merges,
        pre=pre if isinstance(pre, str) else "gpt2",
        control=control,
        bos=token_id("tokenizer.ggml.bos_token_id"),
        eos=token_id("tokenizer.ggml.eos_token_id"),
        add_bos=_optional(gguf, "tokenizer.ggml.add_bos_token") is True,
    )
