"""`q35c verify --linear TxNxK --quant SPEC`: compile a quantized linear layer for the host, run it with real
MLIR tools and compare with the numpy reference (codes bit for bit, outputs within a derived tolerance).

Exit status: 0 when everything matches, 1 when something does not (or a tool rejects the IR), 2 for bad
arguments or missing MLIR tools. The library behind it is `q35c.verify`.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from q35c.errors import Q35Error
from q35c.mlir_tools import MlirToolError
from q35c.verify import ACTIVATIONS, BitFlip, LinearCase, verify_linear

EPILOG = """\
examples:
  q35c verify --linear 2x32x128 --quant q3p5
  q35c verify --linear 1x64x256 --quant int4:g=64 --keep-int-codes --seed 3
  q35c verify --linear 2x16x64 --quant q4_0 --flip-bit 0,2,5     must report a mismatch (exit 1)
"""


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "verify",
        help="run a quantized linear layer through real MLIR and compare with the numpy reference",
        description="Lower a linear layer to upstream MLIR, run it with mlir-opt/mlir-runner, check the results.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--linear", required=True, metavar="TxNxK", help="tokens x out_features x in_features")
    parser.add_argument("--quant", required=True, metavar="SPEC", help="weight scheme, e.g. q3p5, int4:g=64, q4_0")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights and activations")
    parser.add_argument(
        "--keep-int-codes", action="store_true", help="matmul on integer codes, scale/offset per group after it"
    )
    parser.add_argument(
        "--activations", choices=tuple(ACTIVATIONS), default="f16", help="element type of x and y (default f16)"
    )
    parser.add_argument(
        "--flip-bit",
        metavar="ROW,COL,BIT",
        help="corrupt the packed storage before running (checks that the comparison catches it)",
    )
    parser.set_defaults(func=run)


def _flip(text: str | None) -> BitFlip | None:
    if text is None:
        return None
    parts = text.split(",")
    if len(parts) != 3 or not all(p.strip().isdigit() for p in parts):
        raise Q35Error(f"--flip-bit expects ROW,COL,BIT as non-negative integers, got '{text}'")
    row, col, bit = (int(p) for p in parts)
    return BitFlip(row, col, bit)


def run(args: argparse.Namespace) -> int:
    t, n, k = LinearCase.parse_shape(args.linear)
    case = LinearCase(t, n, k, args.quant, args.seed, args.keep_int_codes, args.activations)
    try:
        report = verify_linear(case, fault=_flip(args.flip_bit))
    except MlirToolError as err:
        print(f"q35c: error: {err}", file=sys.stderr)
        return 1
    print("\n".join(report.lines()))
    return 0 if report.ok else 1
