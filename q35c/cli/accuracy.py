"""`q35c accuracy MODEL --quant S[,S2...]`: what requantizing a GGUF model's weights costs in accuracy."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from q35c.cli._args import count_at_least
from q35c.util.errors import Location, Q35Error

EPILOG = """\
examples:
  q35c accuracy smollm2-135m --quant q3p5:g=64,int4:g=64,q4_0,int8
  q35c accuracy smollm2-135m --quant q3p5:g=64,int3:g=64,int4:g=64 -o out/accuracy
  q35c accuracy model.gguf --quant q3p5:g=64 --no-slots --tokens 1024 --json

The reference is the model's own weights as the file stores them; a scheme on the file's grid (for a Q4_1 file:
q4_1) reproduces them exactly (int4:g=32 too, up to the float16 rounding of its offset). int3:g=G is
MLX-style affine 3-bit, simulated (no q35c layout).
smollm2-135m is installed by `bash scripts/setup --models`.
"""


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "accuracy",
        help="perplexity, KL divergence, top-1 agreement and weight error of a GGUF model per scheme",
        description="Requantize a GGUF model's linear layers into each scheme and score it against the file's "
        "own weights on the text corpus in data/corpus (a numpy forward pass): perplexity, mean KL divergence "
        "and top-1 agreement of the next-token distributions, relative RMS weight error per tensor kind, and "
        "bits per weight including metadata.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", metavar="MODEL", help="a .gguf file, or the name of a packaged model (smollm2-135m)")
    parser.add_argument("--quant", metavar="S[,S2...]", required=True, help="schemes, comma-separated")
    parser.add_argument(
        "--slots",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also score each q3p5 scheme with its 4-bit slots given to the most important input channels (a "
        "function-preserving permutation; on by default, --no-slots skips it)",
    )
    parser.add_argument("--embeddings", action="store_true", help="requantize the token embeddings (and lm_head) too")
    parser.add_argument("--chunk", type=count_at_least(2, 4096), default=256, help="tokens per chunk (256)")
    parser.add_argument("--tokens", type=count_at_least(2), help="use at most this many corpus tokens")
    parser.add_argument("-o", "--output", metavar="DIR", help="write accuracy.md, accuracy.json, accuracy.png")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from q35c.accuracy.report import render_text, to_json, write_report
    from q35c.accuracy.study import run_study
    from q35c.frontend import resolve_model
    from q35c.util.progress import Progress

    path = resolve_model(args.model)
    if Path(path).suffix != ".gguf":
        raise Q35Error("accuracy needs a model with weights: a .gguf file, or smollm2-135m", Location(path))
    specs = [s.strip() for s in args.quant.split(",") if s.strip()]
    progress = Progress.for_stream(sys.stderr)
    try:
        study = run_study(
            path,
            specs,
            model_name=args.model,
            chunk=args.chunk,
            max_tokens=args.tokens,
            slots=args.slots,
            embeddings=args.embeddings,
            progress=progress,
        )
    finally:
        progress.close()
    written = write_report(study, Path(args.output)) if args.output else []
    print(json.dumps(to_json(study), indent=2) if args.json else render_text(study), end="" if not args.json else "\n")
    sys.stdout.flush()
    for path in written:
        print(f"wrote {path}", file=sys.stderr)
    return 0
