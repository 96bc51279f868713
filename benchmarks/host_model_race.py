"""The full-model race on the host: q35c's native generation against llama.cpp on the same GGUF file, the same
prompt token ids and the same thread counts, prefill and decode tokens/s.

    python benchmarks/host_model_race.py [--model smollm2-135m] [--prompt-text TEXT] [--gen 16] [--threads 1,2]
                                         [--runs 5] [--site DIR] [--json benchmarks/results/host_model_race.json]

q35c: the `q35c run MODEL --prompt-text` machinery (`q35c.codegen.host.generate`) in this process: the prompt
tokenized by the GGUF's tokenizer, one library compiled for a KV cache of prompt + gen rows, the model's weights
read from the file in the schemes it stores (SmolLM2-135M-Instruct.Q4_1: Q4_1 linears, a Q8_0 embedding that is
also the output layer). A run times one prefill of the prompt (after a warm-up prefill) and `--gen` - 1 greedy
decode steps (their median).

llama.cpp: `llama_cpp.Llama` (llama-cpp-python, built outside this repository; `--site DIR` or LLAMA_CPP_SITE
names the site-packages holding it) on the same file with `n_threads` = `n_threads_batch` = the thread count,
fed q35c's prompt token ids: a run times `eval(prompt)` after a reset (the prefill) and one `eval([token])` per
greedy token of its own (each decode step; their median).

The runs alternate between the programs and thread counts; each figure is the median of `--runs` runs. Printed:
tokens/s per phase and thread count, and llama.cpp's time over q35c's (> 1: q35c is faster). Not a CI test: it
needs the model and llama.cpp. Without llama.cpp it prints why and exits 0 having written nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from smollm2_crosscheck import SITE_ENV, load_llama_cpp  # this script's folder, first on sys.path

ROOT = Path(__file__).resolve().parents[1]
PROMPT = (
    "The history of the city begins with a small settlement on the river, where traders met to exchange grain, "
    "salt and cloth. Over the centuries it grew into"
)


class Q35cRunner:
    """q35c's native library for the model, compiled once, with the file's weights."""

    def __init__(self, model: str, path: str, prompt: list[int], gen: int, tmp: Path) -> None:
        from q35c.codegen.host.generate import NativeModel
        from q35c.codegen.host.library import LibraryRequest, compile_phase_modules, emit_library, manifest_for
        from q35c.codegen.host.runtime import HostLibrary
        from q35c.codegen.host.weights import gguf_params
        from q35c.frontend import load_model
        from q35c.predict.predictor import Scenario

        capacity = len(prompt) + gen
        request = LibraryRequest(model, None, Scenario(1, len(prompt), gen), {}, capacity=capacity)
        start = time.perf_counter()
        modules, keys = compile_phase_modules(request)
        emit_library(modules, manifest_for(request, keys), tmp / "lib", "so")
        self.build_seconds = time.perf_counter() - start
        self.lib = HostLibrary.load(tmp / "lib")
        params = gguf_params(load_model(model).module, path)
        self.native = NativeModel(self.lib, params, capacity)
        self.prompt, self.gen = prompt, gen

    def run(self, threads: int) -> tuple[float, float, list[int]]:
        """Seconds of one prefill, the median seconds of a decode step, and the greedy tokens."""
        self.lib.set_threads(threads)
        self.native.prefill(self.prompt)  # warm-up
        start = time.perf_counter()
        logits = self.native.prefill(self.prompt)
        prefill = time.perf_counter() - start
        tokens, steps = [int(np.argmax(logits))], []
        for _ in range(self.gen - 1):
            start = time.perf_counter()
            logits = self.native.step(tokens[-1])
            steps.append(time.perf_counter() - start)
            tokens.append(int(np.argmax(logits)))
        return prefill, statistics.median(steps), tokens


class LlamaRunner:
    """llama.cpp on the same file, one context per thread count."""

    def __init__(self, llama_cpp: Any, path: str, prompt: list[int], gen: int, threads: list[int]) -> None:
        n_ctx = len(prompt) + gen + 16
        self.llms = {
            t: llama_cpp.Llama(model_path=path, n_ctx=n_ctx, n_threads=t, n_threads_batch=t, verbose=False)
            for t in threads
        }
        self.prompt, self.gen = prompt, gen

    @staticmethod
    def last_logits(llm: Any) -> np.ndarray:
        """The logits of the last token evaluated (without `logits_all`, llama.cpp computes only those)."""
        return np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),))

    def run(self, threads: int) -> tuple[float, float, list[int]]:
        llm = self.llms[threads]
        llm.reset()
        llm.eval(self.prompt)  # warm-up
        llm.reset()
        start = time.perf_counter()
        llm.eval(self.prompt)
        prefill = time.perf_counter() - start
        tokens, steps = [int(np.argmax(self.last_logits(llm)))], []
        for _ in range(self.gen - 1):
            start = time.perf_counter()
            llm.eval([tokens[-1]])
            steps.append(time.perf_counter() - start)
            tokens.append(int(np.argmax(self.last_logits(llm))))
        return prefill, statistics.median(steps), tokens


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--prompt-text", default=PROMPT)
    parser.add_argument("--gen", type=int, default=16)
    parser.add_argument("--threads", default="1,2", help="thread counts, comma-separated")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--site", default=os.environ.get(SITE_ENV), help="site-packages holding llama_cpp")
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "host_model_race.json"))
    args = parser.parse_args()
    threads = [int(t) for t in args.threads.split(",")]
    if args.gen < 2 or args.runs < 1 or min(threads) < 1:
        parser.error("--gen must be at least 2, --runs and the thread counts at least 1")
    llama_cpp = load_llama_cpp(args.site, "nothing measured")
    if llama_cpp is None:
        return 0
    from q35c.frontend.examples import resolve_model
    from q35c.frontend.gguf_reader import read_gguf
    from q35c.frontend.tokenizer import gguf_tokenizer

    path = resolve_model(args.model)
    prompt = gguf_tokenizer(read_gguf(path)).encode(args.prompt_text)
    llama = LlamaRunner(llama_cpp, path, prompt, args.gen, threads)
    times: dict[tuple[str, int], list[tuple[float, float]]] = {}
    tokens: dict[str, list[int]] = {}
    with tempfile.TemporaryDirectory(prefix="q35c-model-race-") as tmp:
        q35c = Q35cRunner(args.model, path, prompt, args.gen, Path(tmp))
        runners: dict[str, Q35cRunner | LlamaRunner] = {"q35c": q35c, "llama.cpp": llama}
        for _ in range(args.runs):
            for t in threads:
                for name, runner in runners.items():
                    prefill, decode, chosen = runner.run(t)
                    times.setdefault((name, t), []).append((prefill, decode))
                    tokens[name] = chosen
    rows = []
    for t in threads:
        for phase, index, count in (("prefill", 0, len(prompt)), ("decode", 1, 1)):
            seconds = {n: statistics.median(s[index] for s in times[(n, t)]) for n in ("q35c", "llama.cpp")}
            rows.append(
                {
                    "threads": t,
                    "phase": phase,
                    "tokens_per_step": count,
                    "q35c_tok_s": count / seconds["q35c"],
                    "llama_cpp_tok_s": count / seconds["llama.cpp"],
                    "llama_cpp_over_q35c_time": seconds["llama.cpp"] / seconds["q35c"],
                }
            )
    print(
        f"{args.model} ({Path(path).name}): prompt {len(prompt)} tokens, {args.gen - 1} decode steps, "
        f"median of {args.runs} runs; llama.cpp {getattr(llama_cpp, '__version__', '?')}; "
        f"q35c compiled in {q35c.build_seconds:.1f} s"
    )
    print(f"{'threads':>7} {'phase':<8} {'q35c tok/s':>11} {'llama.cpp tok/s':>16} {'llama.cpp/q35c time':>20}")
    for r in rows:
        print(
            f"{r['threads']:>7} {r['phase']:<8} {r['q35c_tok_s']:>11.1f} {r['llama_cpp_tok_s']:>16.1f} "
            f"{r['llama_cpp_over_q35c_time']:>20.3f}"
        )
    same = tokens["q35c"] == tokens["llama.cpp"]
    first = next(
        (i for i, (a, b) in enumerate(zip(tokens["q35c"], tokens["llama.cpp"], strict=True)) if a != b), args.gen
    )
    print(f"greedy tokens {'equal' if same else f'equal for {first} of'} {args.gen} steps")
    record = {
        "model": args.model,
        "gguf": Path(path).name,
        "llama_cpp_version": getattr(llama_cpp, "__version__", "?"),
        "prompt_tokens": len(prompt),
        "gen": args.gen,
        "runs": args.runs,
        "cpus": os.cpu_count(),
        "q35c_build_seconds": q35c.build_seconds,
        "greedy_tokens_equal": same,
        "greedy_steps_equal": first,
        "rows": rows,
    }
    Path(args.json).write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
