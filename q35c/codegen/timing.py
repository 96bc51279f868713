"""A phase's measured step times beside its prediction, as `q35c run` reports them on the host and on a GPU."""

from __future__ import annotations

import statistics
from dataclasses import dataclass


@dataclass(frozen=True)
class PhaseTiming:
    """One phase: tokens per step, the measured seconds of each timed step, and the predicted seconds."""

    phase: str
    tokens: int
    seconds: tuple[float, ...]
    predicted_seconds: float | None

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def tok_s(self) -> float:
        return self.tokens / self.median

    @property
    def predicted_tok_s(self) -> float | None:
        return None if not self.predicted_seconds else self.tokens / self.predicted_seconds

    @property
    def ratio(self) -> float | None:
        """measured / predicted tok/s (1.0: the prediction was exact; below 1: slower than predicted)."""
        predicted = self.predicted_tok_s
        return None if predicted is None else self.tok_s / predicted


HEADER = f"{'phase':<8} {'measured tok/s':>15} {'predicted tok/s':>16} {'measured/predicted':>19}  median of"


def row(p: PhaseTiming, suffix: str = "") -> str:
    """The phase's line under `HEADER`: measured and predicted tok/s, their ratio, the steps timed."""
    predicted = "-" if p.predicted_tok_s is None else f"{p.predicted_tok_s:,.1f}"
    ratio = "-" if p.ratio is None else f"{p.ratio:.3f}"
    return (
        f"{p.phase:<8} {p.tok_s:>15,.1f} {predicted:>16} {ratio:>19}  {len(p.seconds)} step(s) of "
        f"{p.tokens} token(s), {p.median * 1e3:.3f} ms each{suffix}"
    )


def one_thread_note(threads: int) -> list[str]:
    """What the predicted column means when the run used several threads: the host model is one thread's."""
    if threads == 1:
        return []
    return [
        f"predicted: the host model's figures are one thread's; with {threads} threads, "
        "measured/predicted above 1 is what the threads gained"
    ]
