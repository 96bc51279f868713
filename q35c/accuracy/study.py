"""An accuracy study: a GGUF model requantized into each of several schemes, scored against its own weights.

    study = run_study("model.gguf", ["q3p5:g=64", "int4:g=64", "q4_0", "int8"], slots=True)
    for row in study.rows: row.label, row.bits_per_weight, row.score.perplexity, row.errors["q_proj"]

The reference is the file's weights as stored (decoded bit-exactly): a scheme on the same grid as the file
(for a Q4_1 file: q4_1) reproduces them exactly, so its error is 0 and its scores are the reference's (its
forward pass is not rerun); int4 with g=32 has the same min-max grid, up to the float16 rounding of its
offset. `slots` adds, for each q3p5 scheme, a row with the input channels permuted so the most important ones
take the 4-bit slots (`q35c.accuracy.slots`), calibrated on the reference's own forward pass over the corpus.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from q35c.accuracy.evaluate import Reference, Score, corpus_text, reference_run, score_variant, token_chunks
from q35c.accuracy.requant import Variant, check_schemes, codec, requantize
from q35c.accuracy.slots import ActivationStats, choose_slots, permute
from q35c.frontend.gguf_dense import DenseModel, dense_gguf
from q35c.frontend.gguf_reader import read_gguf
from q35c.frontend.tokenizer import gguf_tokenizer
from q35c.util.errors import Q35Error
from q35c.util.progress import Progress

MAX_SCHEMES = 32


@dataclass(frozen=True)
class Row:
    """One scheme's result (`slots`: with the q3p5 slot assignment)."""

    label: str
    spec: str
    variant: Variant
    score: Score
    slots: bool = False

    @property
    def bits_per_weight(self) -> float:
        return self.variant.bits_per_weight

    @property
    def errors(self) -> dict[str, float]:
        return dict(self.variant.errors)

    @property
    def exact(self) -> bool:
        """Every requantized weight reproduced exactly (a scheme on the file's grid)."""
        return all(e == 0.0 for e in self.variant.errors.values())


@dataclass(frozen=True)
class Study:
    """The model, the corpus it was scored on, the reference and one row per scheme."""

    model_name: str
    path: str
    file_schemes: dict[str, int]  # scheme -> weights stored in it
    tokens: int
    chunk: int
    reference: Reference
    rows: tuple[Row, ...] = field(default=())
    embeddings: bool = False


def _file_schemes(model: DenseModel) -> dict[str, int]:
    counts: dict[str, int] = {}
    for name, scheme in model.schemes.items():
        counts[scheme] = counts.get(scheme, 0) + model.params[name].size
    return counts


def run_study(
    path: str,
    specs: Sequence[str],
    *,
    model_name: str | None = None,
    chunk: int = 256,
    max_tokens: int | None = None,
    slots: bool = False,
    embeddings: bool = False,
    progress: Progress | None = None,
) -> Study:
    """Score every scheme of `specs` (see the module docstring); `progress` counts the chunks evaluated."""
    if not specs:
        raise Q35Error("no quantization scheme given")
    if len(specs) > MAX_SCHEMES:
        raise Q35Error(f"{len(specs)} schemes is more than the limit of {MAX_SCHEMES}")
    for spec in specs:
        codec(spec)  # every spec checked before any work
    bar = progress or Progress(sys.stderr, enabled=False)
    bar.note("load", path)
    model = dense_gguf(path)
    check_schemes(model, specs, embeddings=embeddings)
    tokenizer = gguf_tokenizer(read_gguf(path))
    chunks = token_chunks(tokenizer.encode(corpus_text()), chunk, max_tokens)
    jobs = [(spec, False) for spec in specs]
    if slots:
        jobs += [(spec, True) for spec in specs if codec(spec).spec.startswith("q3p5")]
    bar.add(len(chunks) * (1 + len(jobs)))
    stats = ActivationStats() if slots else None
    reference = reference_run(
        model, chunks, observe=stats, on_chunk=lambda i: bar.step("reference", f"chunk {i + 1}/{len(chunks)}")
    )
    slotted = permute(model, choose_slots(model, stats)) if stats is not None else None
    rows: list[Row] = []
    for spec, with_slots in jobs:
        base = slotted if with_slots and slotted is not None else model
        label = f"{codec(spec).spec} +slots" if with_slots else codec(spec).spec
        variant = requantize(
            base, spec, embeddings=embeddings, label=label, on_tensor=lambda name, lb=label: bar.note(lb, name)
        )
        if all(e == 0.0 for e in variant.errors.values()):  # the very same weights: the reference's logits
            for i in range(len(chunks)):
                bar.step(label, f"chunk {i + 1}/{len(chunks)} (weights unchanged)")
            rows.append(Row(label, codec(spec).spec, variant, reference.score, with_slots))
            continue
        score = score_variant(
            variant.model,
            chunks,
            reference,
            on_chunk=lambda i, lb=label: bar.step(lb, f"chunk {i + 1}/{len(chunks)}"),
        )
        rows.append(Row(label, codec(spec).spec, variant, score, with_slots))
    return Study(
        model_name or path,
        path,
        _file_schemes(model),
        sum(len(c) for c in chunks),
        chunk,
        reference,
        tuple(rows),
        embeddings,
    )
