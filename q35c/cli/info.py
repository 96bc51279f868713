"""`q35c info MODEL`: parameters, weight bytes per kind and per layer, bits per weight, KV-cache size."""

from __future__ import annotations

import argparse
import json
from typing import Any

from q35c.cli._args import MODEL_HELP, QUANT_HELP

EPILOG = """\
examples:
  q35c info llama-2-70b                    a bundled example (the .q35 file's schemes)
  q35c info llama-2-70b --quant int4:g=64  every weight matrix int4 (the file's overrides still apply)
  q35c info examples/hf/llama-3-8b.json    a Hugging Face config.json (fp16 unless --quant)
  q35c info model.gguf --json              a GGUF file's own tensor types, as JSON
"""


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "info",
        help="parameter count, weight bytes, bits per weight and KV-cache size of a model",
        description="Report a model's parameters, weight bytes (codes plus scales and offsets) per tensor kind "
        "and per layer, bits per weight, and KV-cache bytes per token, computed from its q35 IR.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    parser.add_argument("--quant", metavar="SPEC", help=QUANT_HELP)
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from q35c.frontend import load_model
    from q35c.frontend.summary import render_text, summarize

    summary = summarize(load_model(args.model, quant=args.quant))
    print(json.dumps(summary.to_json(), indent=2) if args.json else render_text(summary))
    return 0
