"""Cross-check of q35c's native generation against llama.cpp on the same GGUF file, the same prompt tokens.

    python benchmarks/smollm2_crosscheck.py [--model smollm2-135m] [--prompt TEXT]... [--gen 16] [--threads 2]
                                            [--site DIR] [--json benchmarks/results/smollm2_crosscheck.json]

q35c: `q35c run MODEL --prompt-text PROMPT` (`q35c.codegen.host.generate`): the prompt tokenized by q35c's GGUF
tokenizer, the compiled prefill, then the compiled decode step once per token with its KV cache, greedy. The
weights are the file's own, in its own schemes (SmolLM2-135M-Instruct.Q4_1: Q4_1 linears, a Q8_0 embedding that
is also the output layer, F32 norms), so both programs compute with the same weights bit for bit; what differs
is the arithmetic: q35c keeps activations in float16 between ops and computes each op in float32, llama.cpp
keeps float32 activations and quantizes them to 8 bits inside each quantized matrix product (Q8_1 for the Q4_1
linears, Q8_0 for the output layer).

llama.cpp: the `llama_cpp` package (llama-cpp-python, built outside this repository; `--site DIR` or the
LLAMA_CPP_SITE environment variable names the site-packages holding it). It evaluates token ids (no tokenization
of its own): the prompt, then each greedy token of its own choice; and, for the logits, the prompt followed by
q35c's tokens in one batch.

For each prompt (PROMPTS by default) and each of the `--gen` steps, with both programs fed the same tokens
(q35c's): the logits (relative RMS difference |a - b| / |b|, the largest absolute difference) and the top-1
token; and the greedy tokens each program chooses on its own. The float32 numpy forward pass
(`q35c.accuracy.forward`) on the same tokens says which side a difference comes from. A prompt passes when every
step's relative RMS is at most RTOL and its largest difference at most MAX_ABS, and the greedy tokens are the
same for all `--gen` steps unless the first difference is a near tie (llama.cpp ranks q35c's token second, less
than TIE logits behind its own).
Not a CI test (it needs the model and llama.cpp): a benchmark whose result is written to the JSON file.
Without llama.cpp it prints why and exits 0 having written nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RTOL = 0.15  # relative RMS difference of the logits allowed at every step
MAX_ABS = 2.0  # largest absolute difference of any logit allowed at every step
TIE = 0.5  # a greedy disagreement where llama.cpp's top two logits are closer than this is a near tie
PROMPTS = (
    "The capital of France is",
    "Once upon a time",
    "Water boils at",
    "The largest planet in the solar system is",
)
SITE_ENV = "LLAMA_CPP_SITE"


def load_llama_cpp(site: str | None, nothing: str = "nothing checked") -> Any | None:
    """The `llama_cpp` module (from `site` if given), or None when it cannot be imported (saying so, and
    `nothing`: what the caller leaves undone). `benchmarks/host_model_race.py` loads it this way too."""
    if site:
        sys.path.append(site)
    try:
        import llama_cpp  # type: ignore[import-not-found]
    except ImportError as err:
        print(f"llama.cpp is not importable ({err}): pass --site DIR or set {SITE_ENV}; {nothing}")
        return None
    return llama_cpp


def llama_greedy(llm: Any, prompt: list[int], steps: int) -> list[int]:
    """llama.cpp's own greedy tokens after the prompt."""
    llm.reset()
    llm.eval(prompt)
    tokens: list[int] = []
    for _ in range(steps):
        tokens.append(int(np.argmax(llm.scores[llm.n_tokens - 1])))
        llm.eval([tokens[-1]])
    return tokens


def llama_forced(llm: Any, prompt: list[int], chosen: list[int]) -> np.ndarray:
    """llama.cpp's logits at each of q35c's steps, fed q35c's tokens: [steps, vocab]."""
    llm.reset()
    llm.eval(prompt + chosen[:-1])
    return np.array(llm.scores[len(prompt) - 1 : len(prompt) + len(chosen) - 1], dtype=np.float32)


def numpy_forced(path: str, prompt: list[int], chosen: list[int]) -> np.ndarray:
    """The float32 numpy forward pass's logits at each of q35c's steps (`q35c.accuracy.forward`)."""
    from q35c.accuracy.forward import Session
    from q35c.frontend.gguf_dense import dense_gguf

    logits = Session(dense_gguf(path)).forward(prompt + chosen[:-1])
    return logits[len(prompt) - 1 :]


def relative_rms(a: np.ndarray, b: np.ndarray) -> float:
    """|a - b| / |b| over a step's logits."""
    diff = a.astype(np.float64) - b.astype(np.float64)
    return float(np.sqrt(np.mean(diff**2) / np.mean(b.astype(np.float64) ** 2)))


def margin(logits: np.ndarray) -> float:
    top = np.sort(logits)[-2:]
    return float(top[1] - top[0])


def check_prompt(llm: Any, model: str, path: str, text: str, gen: int, threads: int) -> dict[str, Any]:
    from q35c.codegen.host.generate import GenerateRequest, generate

    result = generate(GenerateRequest(model, None, text, gen, threads, path))
    prompt, ours = list(result.prompt_ids), list(result.new_ids)
    theirs = llama_greedy(llm, prompt, len(ours))
    agree = next((i for i, (a, b) in enumerate(zip(ours, theirs, strict=True)) if a != b), len(ours))
    forced = llama_forced(llm, prompt, ours)
    reference = numpy_forced(path, prompt, ours)
    steps: list[dict[str, Any]] = []
    for i, logits in enumerate(result.logits):
        steps.append(
            {
                "step": i,
                "q35c_token": int(np.argmax(logits)),
                "llama_cpp_token": int(np.argmax(forced[i])),
                "relative_rms": relative_rms(logits, forced[i]),
                "max_abs": float(np.abs(logits.astype(np.float64) - forced[i]).max()),
                "llama_cpp_margin": margin(forced[i]),
                "q35c_vs_numpy_relative_rms": relative_rms(logits, reference[i]),
                "llama_cpp_vs_numpy_relative_rms": relative_rms(forced[i], reference[i]),
            }
        )
    # A greedy disagreement is accepted only as a near tie: llama.cpp itself ranks q35c's token second, within TIE.
    first = steps[agree] if agree < len(steps) else None
    tie = first is not None and first["llama_cpp_margin"] < TIE and theirs[agree] == first["llama_cpp_token"]
    tie = tie and int(np.argsort(forced[agree])[-2]) == ours[agree]
    worst = max(s["relative_rms"] for s in steps)
    return {
        "prompt": text,
        "prompt_ids": prompt,
        "q35c_text": result.text,
        "q35c_tokens": ours,
        "llama_cpp_tokens": theirs,
        "greedy_steps_equal": agree,
        "first_difference_is_near_tie": tie,
        "teacher_forced_top1_equal": sum(s["q35c_token"] == s["llama_cpp_token"] for s in steps),
        "worst_relative_rms": worst,
        "worst_max_abs": max(s["max_abs"] for s in steps),
        "q35c_tok_s": {
            "prefill": len(prompt) / result.prefill_seconds,
            "decode": len(result.decode_seconds) / sum(result.decode_seconds) if result.decode_seconds else None,
        },
        "passed": (agree == gen or tie) and worst <= RTOL and max(s["max_abs"] for s in steps) <= MAX_ABS,
        "steps": steps,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--prompt", action="append", help=f"a prompt (repeatable; default: {len(PROMPTS)} prompts)")
    parser.add_argument("--gen", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--site", default=os.environ.get(SITE_ENV), help="site-packages holding llama_cpp")
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "smollm2_crosscheck.json"))
    args = parser.parse_args()
    llama_cpp = load_llama_cpp(args.site)
    if llama_cpp is None:
        return 0
    from q35c.frontend.examples import resolve_model

    path = resolve_model(args.model)
    prompts = args.prompt or list(PROMPTS)
    n_ctx = max(len(p) for p in prompts) + args.gen + 64
    llm = llama_cpp.Llama(model_path=path, n_ctx=n_ctx, n_threads=args.threads, logits_all=True, verbose=False)
    results = [check_prompt(llm, args.model, path, text, args.gen, args.threads) for text in prompts]
    print(f"{args.model} ({Path(path).name}), llama.cpp {getattr(llama_cpp, '__version__', '?')}, {args.gen} steps")
    print(
        f"{'prompt':<44} {'greedy =':>8} {'forced top-1 =':>14} {'worst rel. RMS':>14} {'max |diff|':>10}  "
        "rel. RMS to numpy f32: q35c / llama.cpp"
    )
    for r in results:
        q_np = max(s["q35c_vs_numpy_relative_rms"] for s in r["steps"])
        l_np = max(s["llama_cpp_vs_numpy_relative_rms"] for s in r["steps"])
        tie = " (near tie)" if r["first_difference_is_near_tie"] else ""
        print(
            f"{r['prompt'][:44]:<44} {r['greedy_steps_equal']:>8} {r['teacher_forced_top1_equal']:>14} "
            f"{r['worst_relative_rms']:>14.4f} {r['worst_max_abs']:>10.3f}  {q_np:.4f} / {l_np:.4f}{tie}"
        )
    passed = all(r["passed"] for r in results)
    print(
        f"{'PASS' if passed else 'FAIL'}: greedy tokens equal for {args.gen} steps (or up to a near tie, llama.cpp's "
        f"top-2 margin < {TIE}), relative RMS <= {RTOL} and max |diff| <= {MAX_ABS} at every step"
    )
    record = {
        "model": args.model,
        "gguf": Path(path).name,
        "llama_cpp_version": getattr(llama_cpp, "__version__", "?"),
        "gen": args.gen,
        "threads": args.threads,
        "tolerance": {"relative_rms": RTOL, "max_abs": MAX_ABS, "near_tie_logits": TIE, "greedy_steps": args.gen},
        "passed": passed,
        "prompts": results,
    }
    Path(args.json).write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
