"""Token-by-token generation with native code (`q35c run --prompt-text`, `q35c.codegen.host.generate`): a tiny
LLaMA GGUF (Q4_1 linears, Q8_0 embeddings, a byte-level BPE tokenizer) compiled for a KV cache filled at run
time; its greedy tokens equal the numpy reference's run of the same graphs step by step, rows of the cache not
yet written do not change a step's result, and a GGUF whose tensors do not fit the model is refused."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray
from xdsl.context import Context

from q35c.cli.main import main
from q35c.codegen.host.generate import NativeModel
from q35c.codegen.host.library import LibraryRequest, compile_phase_modules, emit_library, manifest_for
from q35c.codegen.host.measure import step_arguments
from q35c.codegen.host.runtime import HostLibrary
from q35c.codegen.host.toolchain import Toolchain
from q35c.codegen.host.weights import gguf_params
from q35c.frontend import load_model
from q35c.frontend.gguf_reader import read_gguf
from q35c.frontend.tokenizer import gguf_tokenizer
from q35c.passes.runtime_kv_cache import RuntimeKVCachePass
from q35c.predict.predictor import Scenario
from q35c.verify.model import model_inputs, model_params
from q35c.verify.reference import evaluate

PROMPT = "the and of the"
GEN = 6


def _write_tiny_llama(path: Path) -> str:
    spec = importlib.util.spec_from_file_location(
        "tiny_llama", Path(__file__).parents[1] / "accuracy" / "tiny_llama.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.write_tiny_llama(path))


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> str:
    return _write_tiny_llama(tmp_path_factory.mktemp("gguf") / "tiny-llama.gguf")


@pytest.fixture(scope="module")
def prompt_ids(tiny_gguf: str) -> list[int]:
    return gguf_tokenizer(read_gguf(tiny_gguf)).encode(PROMPT)


@pytest.fixture(scope="module")
def native(
    host_toolchain: Toolchain, tiny_gguf: str, prompt_ids: list[int], tmp_path_factory: pytest.TempPathFactory
) -> NativeModel:
    capacity = len(prompt_ids) + GEN
    request = LibraryRequest(tiny_gguf, None, Scenario(1, len(prompt_ids), GEN), capacity=capacity)
    modules, keys = compile_phase_modules(request)
    out = tmp_path_factory.mktemp("kv") / "lib"
    emit_library(modules, manifest_for(request, keys), out, "so", host_toolchain)
    lib = HostLibrary.load(out)
    lib.set_threads(2)
    return NativeModel(lib, gguf_params(load_model(tiny_gguf).module, tiny_gguf), capacity)


def _graph(path: str, seq: int, context: int) -> Any:
    module = load_model(path, seq=seq, context=context).module
    RuntimeKVCachePass().apply(Context(), module)
    return module


def reference_greedy(path: str, prompt: list[int], gen: int) -> tuple[list[int], list[NDArray[Any]]]:
    """Greedy tokens of the numpy reference (`q35c.verify.reference`) running the same graphs as the library:
    the prefill, then one decode step per token over a cache whose rows it writes itself."""
    capacity = len(prompt) + gen
    prefill, decode = _graph(path, len(prompt), 0), _graph(path, 1, capacity)
    params = gguf_params(prefill, path)
    widths = [arg.type.get_shape()[1] for arg in next(iter(decode.ops)).body.blocks.first.args[2:]]  # type: ignore[attr-defined]
    caches = [np.zeros((capacity, w), np.float16) for w in widths]
    empty = [np.zeros((0, w), np.float16) for w in widths]
    ids, pos = np.asarray(prompt, np.int32), np.arange(len(prompt), dtype=np.int32)
    logits, *rows = evaluate(prefill, [ids, pos, *empty], params)
    for cache, new in zip(caches, rows, strict=True):
        cache[: len(prompt)] = new
    tokens, seen, step_logits = [], [], logits[-1]
    for length in range(len(prompt), capacity):
        seen.append(step_logits)
        tokens.append(int(np.argmax(step_logits)))
        inputs = [np.asarray([tokens[-1]], np.int32), np.asarray([length], np.int32), *caches]
        logits, *rows = evaluate(decode, inputs, params)
        for cache, new in zip(caches, rows, strict=True):
            cache[length] = new[0]
        step_logits = logits[0]
    return tokens, seen


def test_generated_tokens_equal_the_reference(native: NativeModel, tiny_gguf: str, prompt_ids: list[int]) -> None:
    expected, expected_logits = reference_greedy(tiny_gguf, prompt_ids, GEN)
    logits = native.prefill(prompt_ids)
    tokens: list[int] = []
    for step in range(GEN):
        reference = expected_logits[step].astype(np.float64)
        assert np.abs(logits - reference).max() <= 0.02 * np.abs(reference).max()
        tokens.append(int(np.argmax(logits)))
        logits = native.step(tokens[-1])
    assert tokens == expected
    assert len(set(tokens)) > 1  # not one token over and over: the cache and positions matter


def test_cache_rows_not_yet_written_are_masked(native: NativeModel, prompt_ids: list[int]) -> None:
    """A step at position p reads cache rows 0..p-1 only: what the rows after hold changes nothing."""
    token = int(np.argmax(native.prefill(prompt_ids)))
    first = native.step(token).copy()
    rng = np.random.default_rng(3)
    for cache in native.caches:
        cache[len(prompt_ids) :] = rng.standard_normal(cache[len(prompt_ids) :].shape) * 100
    native.length = len(prompt_ids)
    assert np.array_equal(native.step(token), first)


def test_full_cache_step_equals_the_plain_decode_step(host_toolchain: Toolchain, tmp_path: Path) -> None:
    """At pos = C (every cache row written) the masked step computes exactly what the cost model's module does."""
    scenario = Scenario(1, 3, 4)  # decode: 1 token after C = 5 cached
    plain = LibraryRequest("tiny", "q3p5:g=32", scenario)
    masked = LibraryRequest("tiny", "q3p5:g=32", scenario, capacity=5)
    outputs = []
    graph = load_model("tiny", quant="q3p5:g=32", seq=1, context=5).module
    rng = np.random.default_rng(5)
    params, inputs = model_params(graph, rng), model_inputs(graph, rng)
    inputs[1][:] = 5  # pos = C
    for name, request in (("plain", plain), ("masked", masked)):
        modules, keys = compile_phase_modules(request)
        emit_library({"decode": modules["decode"]}, manifest_for(request, keys), tmp_path / name, "so", host_toolchain)
        lib = HostLibrary.load(tmp_path / name)
        entry = lib.entries["q35_decode_step"]
        outputs.append(lib.call(entry.symbol, step_arguments(entry, params, inputs))[0])
    assert np.array_equal(outputs[0], outputs[1])


def test_run_prompt_text_prints_the_reference_continuation(
    host_toolchain: Toolchain, tiny_gguf: str, prompt_ids: list[int], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", tiny_gguf, "--prompt-text", PROMPT, "--gen", "3", "--threads", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    tokens, _ = reference_greedy(tiny_gguf, prompt_ids, 3)
    text = gguf_tokenizer(read_gguf(tiny_gguf)).decode(tokens)
    assert "\n".join(lines).startswith(PROMPT + text)
    rows = {line.split()[0]: line.split() for line in lines if line.startswith(("prefill ", "decode "))}
    assert set(rows) == {"prefill", "decode"}
    for row in rows.values():
        measured, predicted, ratio = (float(v.replace(",", "")) for v in row[1:4])
        assert measured > 0 and predicted > 0 and ratio == pytest.approx(measured / predicted, rel=0.01, abs=1e-3)


def test_weights_that_do_not_fit_name_the_tensor(tiny_gguf: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "tiny", "--weights", tiny_gguf, "--prompt", "1", "--gen", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("q35c: error: ") and "Traceback" not in err and len(err.splitlines()) == 1
    assert "tensor 'token_embd.weight' (embed_tokens) is 270x128, but the model's weight is 256x64" in err


def test_run_times_the_gguf_weights(
    host_toolchain: Toolchain, tiny_gguf: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["run", tiny_gguf, "--weights", tiny_gguf, "--prompt", "2", "--gen", "2", "--threads", "1"]
    assert main(args) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert "from tiny-llama.gguf" in first and "prompt 2, generate 2" in first


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["tiny", "--prompt-text", "the"], "--prompt-text needs a GGUF file for the weights and tokenizer of tiny"),
        (["GGUF", "--prompt-text", "the", "--batch", "2"], "--prompt-text generates one sequence: --batch 1"),
        (["GGUF", "--prompt-text", ""], "the prompt is empty"),
        (["GGUF", "--prompt-text", "the", "--gen", "5000"], "is more than 4096 tokens"),
    ],
)
def test_prompt_text_refuses_bad_input(
    tiny_gguf: str, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(["run", *(tiny_gguf if a == "GGUF" else a for a in args)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("q35c: error: ") and message in err and "Traceback" not in err
