"""`q35c run MODEL --prompt-text TEXT`: greedy text generation with q35c's own native code, timed.

    result = generate(GenerateRequest("smollm2-135m", None, "The capital of France is", gen=16, threads=2))
    print(result.text)                     # " Paris. ..."
    print("\\n".join(result.lines()))        # measured tok/s of the prefill and of the decode steps, predicted

The prompt is tokenized with the weights' GGUF tokenizer (`q35c.frontend.tokenizer`). The library is compiled
once for a KV cache of capacity C = prompt + gen rows (`LibraryRequest.capacity`): the prefill over the prompt
(T = P tokens, empty cache) and the decode step (T = 1 over the C-row cache), both through `runtime-kv-cache`, so
attention reads only the cache rows below the step's position and each step returns its new k and v rows.
The prefill's rows fill cache rows 0..P-1; then each decode step takes the last chosen token at position p,
returns the logits and its k, v rows, which are written into cache row p. The token with the largest logit is
chosen (greedy), until `gen` tokens or the end-of-text token. Decode steps run in place: the step's arguments
are bound once and the cache buffers are written between calls.

Timing: the prefill runs once to warm up, then once timed; every decode step is timed and the decode figure is
the median. Predicted: the host cost model on the same two final modules (`Target.estimate`).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from q35c.codegen.host.abi import Entry
from q35c.codegen.host.library import TARGET, LibraryRequest, compile_phase_modules, emit_library, manifest_for
from q35c.codegen.host.measure import (
    check_fits,
    default_weights,
    graph_weight_bytes,
    measure_generated_code,
    vocabulary,
)
from q35c.codegen.host.runtime import DTYPES, HostLibrary
from q35c.codegen.host.weights import gguf_params
from q35c.codegen.timing import one_thread_note
from q35c.frontend import load_model
from q35c.frontend.gguf_reader import read_gguf
from q35c.frontend.tokenizer import Tokenizer, gguf_tokenizer
from q35c.predict.predictor import Scenario
from q35c.util.errors import Q35Error

MAX_TOKENS = 4096  # prompt + generated tokens: the cache capacity compiled


@dataclass(frozen=True)
class GenerateRequest:
    model: str
    quant: str | None
    prompt: str
    gen: int
    threads: int
    weights: str | None = None  # a GGUF file; by default the model's own when it is one
    options: Mapping[str, Any] = field(default_factory=dict[str, Any])


@dataclass(frozen=True)
class Generated:
    """What a generation produced and how fast: token ids, text, each step's logits, timings, predictions."""

    request: GenerateRequest
    weights: str
    prompt_ids: tuple[int, ...]
    new_ids: tuple[int, ...]
    text: str
    logits: tuple[NDArray[np.float32], ...]  # the logits each chosen token was taken from
    prefill_seconds: float
    decode_seconds: tuple[float, ...]
    predicted: Mapping[str, float]  # seconds per step of each phase
    build_seconds: float

    def lines(self) -> list[str]:
        r = self.request
        p = len(self.prompt_ids)
        rows: list[tuple[str, float, float | None, str]] = [
            ("prefill", p / self.prefill_seconds, _tok_s(p, self.predicted.get("prefill")), f"1 step of {p} tokens")
        ]
        if self.decode_seconds:
            median = statistics.median(self.decode_seconds)
            steps = len(self.decode_seconds)
            rows.append(("decode", 1 / median, _tok_s(1, self.predicted.get("decode")), f"median of {steps} step(s)"))
        out = [
            f"{r.model}, {r.quant or 'its own schemes'}, weights {Path(self.weights).name}: prompt {p} tokens, "
            f"generated {len(self.new_ids)} (greedy), KV cache {p + r.gen} rows, {r.threads} thread(s), compiled "
            f"in {self.build_seconds:.1f} s",
            f"{'phase':<8} {'measured tok/s':>15} {'predicted tok/s':>16} {'measured/predicted':>19}",
        ]
        for phase, measured, predicted, what in rows:
            shown = "-" if predicted is None else f"{predicted:,.1f}"
            ratio = "-" if predicted is None else f"{measured / predicted:.3f}"
            out.append(f"{phase:<8} {measured:>15,.1f} {shown:>16} {ratio:>19}  {what}")
        return out + one_thread_note(r.threads)


def _tok_s(tokens: int, seconds: float | None) -> float | None:
    return None if not seconds else tokens / seconds


def cache_layout(entry: Entry) -> list[int]:
    """The argument indices of the step's KV caches, in the order of its extra results (results 1..)."""
    caches = [i for i, t in enumerate(entry.args) if t.param is None and t.name not in ("ids", "pos")]
    if len(entry.results) != 1 + len(caches):
        raise Q35Error(f"{entry.symbol} returns {len(entry.results)} tensors, expected logits and one per cache")
    for i, result in zip(caches, entry.results[1:], strict=True):
        if entry.args[i].shape[1:] != result.shape[1:]:
            raise Q35Error(f"{entry.symbol}: rows {result.shape} do not fit cache {entry.args[i].name}")
    return caches


class NativeModel:
    """A loaded generation library with its weights: `prefill(ids)`, then `step(token)` as often as the cache
    holds; each returns the logits of its last token and writes its new k, v rows into the cache. The decode step
    is bound once to its arguments: `caches` are the arrays it reads (one per cache argument, in order)."""

    def __init__(self, lib: HostLibrary, params: Mapping[str, Any], capacity: int) -> None:
        self.lib, self.params, self.capacity, self.length = lib, params, capacity, 0
        entry = lib.entries["q35_decode_step"]
        self._decode = lib.prepare(entry.symbol, self.arguments(entry, {}))
        self.caches = [self._decode.inputs[i] for i in cache_layout(entry)]
        self._ids, self._pos = (self._decode.inputs[i] for i, t in enumerate(entry.args) if t.name in ("ids", "pos"))

    def arguments(self, entry: Entry, inputs: Mapping[str, NDArray[Any]]) -> list[NDArray[Any]]:
        """The entry's arguments: weight storage from `params`, the others from `inputs` by name (zeros if absent)."""
        args: list[NDArray[Any]] = []
        for t in entry.args:
            if t.param is None:
                args.append(inputs[t.name] if t.name in inputs else np.zeros(t.shape, DTYPES[t.element]))
                continue
            qt = self.params[t.param]
            array = {"codes": qt.packed, "scale": qt.scale, "offset": qt.offset}[t.role or ""]
            assert array is not None, f"{t.param} has no {t.role}"
            args.append(array.reshape(t.shape))
        return args

    def prefill(self, ids: Sequence[int]) -> NDArray[np.float32]:
        """Logits of the prompt's last token; the prompt's k, v rows fill cache rows 0..P-1 (the cache restarts)."""
        entry = self.lib.entries["q35_prefill_step"]
        p = len(ids)
        inputs = {"ids": np.asarray(ids, np.int32), "pos": np.arange(p, dtype=np.int32)}
        outputs = self.lib.call(entry.symbol, self.arguments(entry, inputs))
        cache_layout(entry)  # the prefill returns its rows in the decode step's cache order too
        for cache, rows in zip(self.caches, outputs[1:], strict=True):
            cache[:p] = rows
        self.length = p
        return np.asarray(outputs[0][-1], np.float32)

    def step(self, token: int) -> NDArray[np.float32]:
        """Logits after `token` at the next position; its k, v rows join the cache."""
        if self.length >= self.capacity:
            raise Q35Error(f"the KV cache holds {self.capacity} tokens")
        self._ids[0], self._pos[0] = token, self.length
        self._decode.call()
        logits, *rows = self._decode.outputs
        for cache, new in zip(self.caches, rows, strict=True):
            cache[self.length] = new[0]
        self.length += 1
        return np.asarray(logits[0], np.float32)


def generate(request: GenerateRequest, on_step: Callable[[str], None] | None = None) -> Generated:
    """Tokenize, compile, fill, generate and time (see the module docstring)."""
    notify = on_step or (lambda what: None)
    weights = request.weights or default_weights(request.model)
    if weights is None:
        raise Q35Error(f"--prompt-text needs a GGUF file for the weights and tokenizer of {request.model}: --weights")
    tokenizer = gguf_tokenizer(read_gguf(weights))
    prompt_ids = tokenizer.encode(request.prompt)
    if not prompt_ids:
        raise Q35Error("the prompt is empty")
    capacity = len(prompt_ids) + request.gen
    if capacity > MAX_TOKENS:
        raise Q35Error(f"prompt ({len(prompt_ids)} tokens) + --gen {request.gen} is more than {MAX_TOKENS} tokens")
    lib_request = LibraryRequest(
        request.model, request.quant, Scenario(1, len(prompt_ids), request.gen), request.options, capacity=capacity
    )
    graph = load_model(request.model, quant=request.quant)
    check_fits(graph_weight_bytes(graph.module), request.model)
    params = gguf_params(graph.module, weights)
    check_vocabulary(tokenizer, graph.module)
    notify("weights read")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="q35c-generate-") as tmp:
        callback = lambda phase: lambda i, s, m: notify(f"{phase}: {s}")  # noqa: E731
        modules, keys = compile_phase_modules(lib_request, callback)
        emit_library(modules, manifest_for(lib_request, keys), Path(tmp) / "lib", "so")
        build_seconds = time.perf_counter() - start
        lib = HostLibrary.load(Path(tmp) / "lib")
        lib.set_threads(request.threads)
        measure_generated_code(notify)
        predicted = predictions(modules)
        native = NativeModel(lib, params, capacity)
        native.prefill(prompt_ids)  # warm-up
        t0 = time.perf_counter()
        logits = native.prefill(prompt_ids)
        prefill_seconds = time.perf_counter() - t0
        notify("prefill")
        new: list[int] = []
        seen: list[NDArray[np.float32]] = []
        seconds: list[float] = []
        for index in range(request.gen):
            seen.append(logits)
            token = int(np.argmax(logits))
            new.append(token)
            if token == tokenizer.eos or index == request.gen - 1:
                break
            t0 = time.perf_counter()
            logits = native.step(token)
            seconds.append(time.perf_counter() - t0)
            notify("decode step")
    return Generated(
        request,
        weights,
        tuple(prompt_ids),
        tuple(new),
        tokenizer.decode(new),
        tuple(seen),
        prefill_seconds,
        tuple(seconds),
        predicted,
        build_seconds,
    )


def check_vocabulary(tokenizer: Tokenizer, module: Any) -> None:
    """Q35Error when the tokenizer's ids do not fit the model's embedding table."""
    if tokenizer.vocab_size > vocabulary(module):
        raise Q35Error(f"the tokenizer has {tokenizer.vocab_size} tokens, the model's embeddings {vocabulary(module)}")


def predictions(modules: Mapping[str, Any]) -> dict[str, float]:
    """Predicted seconds per step of each phase: the host cost model on the final modules that were compiled."""
    from q35c.analysis.workload import extract
    from q35c.targets.registry import get_target

    target = get_target(TARGET)
    return {phase: target.estimate(extract(module, batch=1)).seconds for phase, module in modules.items()}
