"""`q35c build MODEL --emit graph`: import a model and print its q35 graph IR."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from q35c.commands.info import MODEL_HELP
from q35c.errors import Location, Q35Error
from q35c.frontend import load_model
from q35c.pipeline import module_text

EMITS = ("graph",)

EPILOG = """\
examples:
  q35c build tiny --emit graph                      the q35 graph IR of the bundled tiny model
  q35c build llama-3-8b --quant int4 -o l3.mlir     written to a file
  q35c build examples/hf/llama-2-7b.json --seq 16 --context 512
"""


def _count(minimum: int) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got '{text}'") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "build",
        help="compile a model; --emit graph prints its q35 graph IR",
        description="Import a model (.q35, config.json, .gguf or a bundled example) and emit its IR.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    parser.add_argument("--emit", choices=EMITS, default="graph", help="what to emit (default: graph, the q35 IR)")
    parser.add_argument("--quant", metavar="SPEC", help="default scheme for weight matrices, e.g. q3p5, int4:g=64")
    parser.add_argument("--seq", type=_count(1), default=1, metavar="T", help="tokens in flight (default 1)")
    parser.add_argument(
        "--context", type=_count(0), default=0, metavar="C", help="tokens already in the KV cache (default 0)"
    )
    parser.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of standard output")
    parser.set_defaults(func=run)


def write_atomically(path: str, text: str) -> None:
    """Write via a temporary sibling and a rename, so a failure never leaves a half-written file."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, target)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise Q35Error(f"cannot write {path}: {err.strerror}", Location(path)) from None


def run(args: argparse.Namespace) -> int:
    model = load_model(args.model, quant=args.quant, seq=args.seq, context=args.context)
    text = module_text(model.module) + "\n"
    if args.output:
        write_atomically(args.output, text)
    else:
        print(text, end="")
    return 0
