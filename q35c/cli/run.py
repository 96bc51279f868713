"""`q35c run MODEL --target host`: compile the model to native code, run it on this machine with random weights
(or a GGUF file's: `--weights`), and print measured tok/s beside the host cost model's prediction for the same
modules; `--prompt-text TEXT` generates text with the compiled steps (`q35c.codegen.host.generate`).

The work is `q35c.codegen.host.measure`; this module parses arguments and prints. On a terminal a progress line
shows the build and each timed step (`q35c.util.progress`).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from q35c.cli._args import MODEL_HELP, QUANT_HELP, count_at_least, key_values
from q35c.util.errors import Q35Error
from q35c.util.progress import Progress

EPILOG = """\
examples:
  q35c run tiny --target host --quant q3p5:g=32 --gen 8
  q35c run llama-2-7b --quant q3p5 --prompt 16 --gen 16 --threads 2
  q35c run smollm2-135m --prompt-text "The capital of France is" --gen 16
  q35c run tiny --target h100-sxm --quant q3p5:g=32      (needs an NVIDIA GPU and nvcc)
"""


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run",
        help="compile a model to native code, run it on this machine and compare tok/s with the prediction",
        description="Compile MODEL for the host (the decode step and the prefill, as `q35c build --target host "
        "--emit so`), fill its weights with seeded random values in each weight's scheme (or a GGUF file's "
        "tensors: --weights), time the prefill and one decode step per generated token (medians), and print the "
        "measured tok/s beside the host cost model's prediction for the same modules. With --prompt-text, "
        "generate text from the prompt with the compiled steps and a KV cache instead.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    parser.add_argument(
        "--target",
        default="host",
        metavar="T",
        help="where to run: host, this machine's CPU (default); or an NVIDIA target (h100-sxm, h200, h100-pcie, "
        "a100-sxm): the CUDA kernels on this machine's GPU, through the CUDA driver (docs/cuda.md)",
    )
    parser.add_argument("--quant", metavar="SPEC", help=QUANT_HELP)
    parser.add_argument("--prompt", type=count_at_least(1), default=16, metavar="P", help="prompt tokens (16)")
    parser.add_argument("--gen", type=count_at_least(1), default=16, metavar="G", help="generated tokens (16)")
    parser.add_argument("--batch", type=count_at_least(1), default=1, metavar="B", help="sequences (1)")
    parser.add_argument(
        "--threads",
        type=count_at_least(1),
        default=os.cpu_count() or 1,
        metavar="N",
        help="OpenMP threads (default: this machine's logical CPUs)",
    )
    parser.add_argument("--seed", type=count_at_least(0), default=0, metavar="S", help="weights' seed (0)")
    parser.add_argument(
        "--weights",
        metavar="FILE.gguf",
        help="fill the weights from this GGUF file's tensors, converted into the compiled schemes where they differ "
        "(default: the model's own file when it is a GGUF, such as smollm2-135m; otherwise seeded random values)",
    )
    parser.add_argument(
        "--prompt-text",
        metavar="TEXT",
        help="generate text: tokenize TEXT with the weights' GGUF tokenizer, run the compiled prefill over it, then "
        "the compiled decode step once per token (greedy, KV cache of prompt + G rows), print the text and the "
        "measured tok/s beside the prediction (replaces --prompt)",
    )
    parser.add_argument(
        "--option", action="append", default=[], metavar="KEY=VALUE", help="pipeline option (as q35c build)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from q35c.codegen.host.library import TARGET
    from q35c.codegen.host.measure import RunRequest, run_model

    if args.target != TARGET and (args.prompt_text is not None or args.weights is not None):
        raise Q35Error(f"--prompt-text and --weights run on this machine's CPU: --target {TARGET}")
    if args.target != TARGET:  # an NVIDIA GPU of this machine, through CUDA (docs/cuda.md)
        from q35c.codegen.cuda.device import run_command

        return run_command(args, key_values(args.option))
    if args.prompt_text is not None:
        return _generate(args)
    request = RunRequest(
        args.model,
        args.quant,
        prompt=args.prompt,
        gen=args.gen,
        threads=args.threads,
        batch=args.batch,
        seed=args.seed,
        options=key_values(args.option),
        weights=args.weights,
    )
    progress = Progress.for_stream(sys.stderr, total=13 + request.gen + request.prefill_runs)
    with progress:
        result = run_model(request, lambda what: progress.step(args.model, what))
    print("\n".join(result.lines()))
    return 0


def _generate(args: argparse.Namespace) -> int:
    from q35c.codegen.host.generate import GenerateRequest, generate

    if args.batch != 1:
        raise Q35Error("--prompt-text generates one sequence: --batch 1")
    request = GenerateRequest(
        args.model, args.quant, args.prompt_text, args.gen, args.threads, args.weights, key_values(args.option)
    )
    progress = Progress.for_stream(sys.stderr, total=13 + request.gen)
    with progress:
        result = generate(request, lambda what: progress.step(args.model, what))
    print(f"{args.prompt_text}{result.text}")
    print("\n".join(result.lines()))
    return 0
