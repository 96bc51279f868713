"""What requantizing a model costs in accuracy: perplexity, KL divergence and top-1 agreement on a text corpus.

    text = corpus_text()                                        # data/corpus/*.txt, in name order
    chunks = token_chunks(tokenizer.encode(text), 256)          # equal chunks, each evaluated from an empty cache
    reference = reference_run(model, chunks)                    # the file's own weights: log-probs per chunk
    score = score_variant(variant.model, chunks, reference)     # per chunk and overall

Each chunk of T tokens gives T - 1 predictions (token t + 1 from tokens 0..t). Per scheme: perplexity
exp(mean negative log-likelihood of the next token); mean KL(P_reference || P_scheme) of the next-token
distributions; top-1 agreement (the share of positions whose most likely next token is the reference's).
The spread over chunks (the standard error of the per-chunk means) is the noise estimate.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from q35c.accuracy.forward import Session
from q35c.frontend.gguf_dense import DenseModel
from q35c.util.errors import Q35Error

F32 = NDArray[np.float32]
# The corpus lives next to the package in the repository (editable installs and running from a checkout).
CORPUS_DIR = Path(__file__).resolve().parents[2] / "data" / "corpus"
MAX_CORPUS_BYTES = 1 << 24


def corpus_text(folder: Path = CORPUS_DIR) -> str:
    """The corpus: every .txt file of `folder` in name order, separated by blank lines."""
    files = sorted(folder.glob("*.txt"))
    if not files:
        raise Q35Error(f"no text corpus: {folder} has no .txt files")
    if sum(f.stat().st_size for f in files) > MAX_CORPUS_BYTES:
        raise Q35Error(f"the corpus in {folder} is more than {MAX_CORPUS_BYTES:,} bytes")
    return "\n\n".join(f.read_text(encoding="utf-8").strip() for f in files)


def token_chunks(ids: Sequence[int], length: int, limit: int | None = None) -> list[NDArray[np.int64]]:
    """The ids cut into whole chunks of `length` tokens (at most `limit` tokens in all)."""
    if length < 2:
        raise Q35Error(f"chunk length must be at least 2 tokens, got {length}")
    usable = len(ids) if limit is None else min(len(ids), limit)
    count = usable // length
    if count == 0:
        raise Q35Error(f"the corpus has {len(ids)} tokens, fewer than one chunk of {length}")
    data = np.asarray(ids[: count * length], dtype=np.int64)
    return list(data.reshape(count, length))


def log_softmax(logits: F32) -> F32:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


@dataclass(frozen=True)
class ChunkScore:
    """One chunk's sums over its predictions (divide by `count` for means)."""

    nll: float
    kl: float
    agree: int
    count: int


@dataclass(frozen=True)
class Score:
    """A model's scores over all chunks, with the standard error over chunks of each per-chunk mean."""

    chunks: tuple[ChunkScore, ...]

    def _per_chunk(self, what: str) -> NDArray[np.float64]:
        return np.array([getattr(c, what) / c.count for c in self.chunks], dtype=np.float64)

    def _stderr(self, values: NDArray[np.float64]) -> float:
        return float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0

    @property
    def predictions(self) -> int:
        return sum(c.count for c in self.chunks)

    @property
    def perplexity(self) -> float:
        return float(np.exp(sum(c.nll for c in self.chunks) / self.predictions))

    @property
    def kl(self) -> float:
        return sum(c.kl for c in self.chunks) / self.predictions

    @property
    def top1(self) -> float:
        return sum(c.agree for c in self.chunks) / self.predictions

    @property
    def kl_stderr(self) -> float:
        return self._stderr(self._per_chunk("kl"))

    @property
    def top1_stderr(self) -> float:
        return self._stderr(self._per_chunk("agree"))

    @property
    def perplexity_stderr(self) -> float:
        """The standard error of the perplexity over chunks (delta method on the mean log-likelihood)."""
        return self.perplexity * self._stderr(self._per_chunk("nll"))

    def nll_diffs(self, other: Score) -> NDArray[np.float64]:
        """Per chunk, this score's mean negative log-likelihood minus `other`'s (paired: the same chunks)."""
        return self._per_chunk("nll") - other._per_chunk("nll")

    def paired_stderr(self, other: Score) -> float:
        """The standard error of the mean log-perplexity difference to `other` over the same chunks."""
        return self._stderr(self.nll_diffs(other))


@dataclass(frozen=True)
class Reference:
    """The reference model's log-probabilities of each chunk's predictions, and its own score."""

    log_probs: tuple[F32, ...]
    score: Score


Observer = Callable[[str, F32], None]


def _score_chunk(ids: NDArray[np.int64], lp: F32, ref_lp: F32 | None) -> ChunkScore:
    targets = ids[1:]
    nll = -float(lp[np.arange(len(targets)), targets].astype(np.float64).sum())
    if ref_lp is None:
        return ChunkScore(nll, 0.0, len(targets), len(targets))
    kl = max(0.0, float((np.exp(ref_lp) * (ref_lp - lp)).astype(np.float64).sum()))  # >= 0 but for rounding
    agree = int((lp.argmax(axis=-1) == ref_lp.argmax(axis=-1)).sum())
    return ChunkScore(nll, kl, agree, len(targets))


def reference_run(
    model: DenseModel,
    chunks: Sequence[NDArray[np.int64]],
    *,
    observe: Observer | None = None,
    on_chunk: Callable[[int], None] | None = None,
) -> Reference:
    """The reference model over every chunk (each from an empty cache): its log-probs and score."""
    log_probs: list[F32] = []
    scores: list[ChunkScore] = []
    for i, ids in enumerate(chunks):
        lp = log_softmax(Session(model, observe=observe).forward(ids)[:-1])
        log_probs.append(lp)
        scores.append(_score_chunk(ids, lp, None))
        if on_chunk is not None:
            on_chunk(i)
    return Reference(tuple(log_probs), Score(tuple(scores)))


def score_variant(
    model: DenseModel,
    chunks: Sequence[NDArray[np.int64]],
    reference: Reference,
    *,
    on_chunk: Callable[[int], None] | None = None,
) -> Score:
    """A (requantized) model's score against the reference's next-token distributions."""
    scores: list[ChunkScore] = []
    for i, (ids, ref_lp) in enumerate(zip(chunks, reference.log_probs, strict=True)):
        lp = log_softmax(Session(model).forward(ids)[:-1])
        scores.append(_score_chunk(ids, lp, ref_lp))
        if on_chunk is not None:
            on_chunk(i)
    return Score(tuple(scores))
