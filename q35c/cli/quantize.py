"""`q35c quantize MODEL --quant S -o OUT.gguf|OUT.npz`: a GGUF model's weight matrices requantized into S."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from q35c.util.errors import Location, Q35Error

EPILOG = """\
examples:
  q35c quantize smollm2-135m --quant q4_0 -o smollm2-q4_0.gguf       ggml's type: a GGUF file llama.cpp reads
  q35c quantize smollm2-135m --quant q3p5:g=64 -o smollm2-q3p5.npz   any scheme: q35c's .npz container

Containers: .gguf keeps the source's metadata and tokenizer, and needs a scheme ggml has a type for (f32, fp16,
q4_0, q4_1, q5_0, q5_1, q8_0, K-quants, iq4_nl, iq4_xs). q3p5, int4 and int8 have none (their float16 scale and
offset are separate arrays), so they are written as .npz: NAME.packed, NAME.scale, NAME.offset per weight and
__meta__ (JSON: schemes, shapes, config). Linear layers are requantized; embeddings too with --embeddings.
"""


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "quantize",
        help="requantize a GGUF model's weight matrices into a scheme (.gguf or .npz)",
        description="Decode every linear layer of a GGUF model bit-exactly and encode it in a scheme with "
        "q35c's encoders; write a GGUF file (ggml types) or q35c's .npz container (any scheme).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", metavar="MODEL", help="a .gguf file, or the name of a packaged model (smollm2-135m)")
    parser.add_argument("--quant", metavar="SPEC", required=True, help="the scheme, e.g. q4_0, q3p5:g=64")
    parser.add_argument("-o", "--output", metavar="OUT", required=True, help="OUT.gguf or OUT.npz")
    parser.add_argument("--embeddings", action="store_true", help="requantize the token embeddings too")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from q35c.accuracy.export import quantize_file
    from q35c.frontend import resolve_model
    from q35c.util.progress import Progress

    path = resolve_model(args.model)
    if Path(path).suffix != ".gguf":
        raise Q35Error("quantize needs a model with weights: a .gguf file, or smollm2-135m", Location(path))
    progress = Progress.for_stream(sys.stderr)
    try:
        summary = quantize_file(
            path, args.quant, args.output, embeddings=args.embeddings, on_tensor=lambda n: progress.note("quantize", n)
        )
    finally:
        progress.close()
    print(
        f"wrote {summary.path} ({summary.container[1:]}): {summary.requantized:,} of {summary.weights:,} weights "
        f"in {summary.scheme}, {summary.weight_bytes:,} bytes of weights "
        f"({summary.weight_bytes * 8 / summary.weights:.3f} bits per weight overall)"
    )
    return 0
