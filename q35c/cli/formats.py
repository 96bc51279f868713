"""`q35c formats`: the weight formats, their bits per weight, and (with --explain) their exact bit layouts."""

from __future__ import annotations

import argparse
from typing import Any

from q35c.cli._args import count_at_least
from q35c.util.limits import MAX_DIM

EPILOG = """\
examples:
  q35c formats                      every scheme with its bits per weight for rows of 4096
  q35c formats --k 11008            the same for rows of 11008 (LLaMA-7B's MLP down projection)
  q35c formats --explain q3p5       the 7-bit pair code, the dense 7-word chunk and a worked example
  q35c formats --explain q3p5:container=byte
  q35c formats --explain int4:g=64  (also int8, fp16, q4_0, q8_0)
  q35c formats --k 100              schemes whose rules a row of 100 breaks show n/a (K % 128 != 0)
"""


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "formats",
        help="list the weight formats and their bits per weight; --explain one's bit layout",
        description="List the quantized weight formats (bits per weight including scales and offsets, storage, "
        "metadata) or explain one format's exact bit layout with a worked example.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--k",
        type=count_at_least(1, MAX_DIM),
        default=4096,
        metavar="K",
        help="row length (in_features) for the table (default 4096)",
    )
    parser.add_argument(
        "--explain",
        metavar="SPEC",
        help="show the bit layout of one scheme, e.g. q3p5, q3p5:container=byte, int4, q4_0",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from q35c.formats import explain as formats_explain

    text = formats_explain.explain(args.explain) if args.explain else formats_explain.format_table(args.k)
    print(text)
    return 0
