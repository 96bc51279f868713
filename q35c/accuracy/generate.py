"""Greedy text generation from a GGUF file with the numpy forward pass (a reference for native code).

    result = generate_text("model.gguf", "The capital of France is", 16)
    result.text, result.new_ids, result.logits[0]     # the continuation, its tokens, the first step's logits

The prompt is tokenized with the file's own tokenizer (`q35c.frontend.tokenizer`), run in one forward pass,
then one token at a time with the KV cache (`q35c.accuracy.forward.Session`), each step taking the most likely
token, until `steps` tokens or the end-of-text token.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from q35c.accuracy.forward import Session
from q35c.frontend.gguf_dense import dense_gguf
from q35c.frontend.gguf_reader import read_gguf
from q35c.frontend.tokenizer import gguf_tokenizer
from q35c.util.errors import Q35Error

MAX_STEPS = 4096


@dataclass(frozen=True)
class Generation:
    """The prompt's ids, the generated ids and text, each step's logits [vocab], and the seconds spent."""

    prompt_ids: tuple[int, ...]
    new_ids: tuple[int, ...]
    text: str
    logits: tuple[NDArray[np.float32], ...]
    seconds: float


def generate_text(path: str, prompt: str, steps: int, *, on_text: Callable[[str], None] | None = None) -> Generation:
    """Up to `steps` greedy tokens after `prompt` (see the module docstring); `on_text` gets each token's text."""
    if not 0 <= steps <= MAX_STEPS:
        raise Q35Error(f"steps must be in [0, {MAX_STEPS}], got {steps}")
    tokenizer = gguf_tokenizer(read_gguf(path))
    prompt_ids = tokenizer.encode(prompt)
    if not prompt_ids:
        raise Q35Error("the prompt is empty")
    session = Session(dense_gguf(path))
    start = time.perf_counter()
    step_logits = session.forward(prompt_ids)[-1]
    new: list[int] = []
    logits: list[NDArray[np.float32]] = []
    for _ in range(steps):
        logits.append(step_logits)
        token = int(np.argmax(step_logits))
        new.append(token)
        if on_text is not None:
            on_text(tokenizer.decode([token]))
        if token == tokenizer.eos:
            break
        step_logits = session.forward([token])[-1]
    return Generation(tuple(prompt_ids), tuple(new), tokenizer.decode(new), tuple(logits), time.perf_counter() - start)
