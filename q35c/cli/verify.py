"""`q35c verify`: compile for the host, run with real MLIR tools and compare with the numpy reference.

Two forms:

    q35c verify MODEL_OR_IR --target host [--quant SPEC] [--seed S] [--seq T] [--context C] [--batch B]
    q35c verify --linear TxNxK --quant SPEC [--keep-int-codes] [--activations f16|f32]

The first runs a whole model (a bundled example such as `tiny`, a .q35/.json/.gguf file, or an `.mlir` file of
q35 graph IR, whose types fix T, C and the schemes) on random weights and inputs and compares the logits
(`q35c.verify.model`); the second one quantized linear layer, codes bit for bit (`q35c.verify.linear`).

Exit status: 0 when everything matches, 1 when something does not (or a tool rejects the IR), 2 for bad
arguments or missing MLIR tools.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from q35c.cli._args import MODEL_HELP, count_at_least
from q35c.util.errors import Q35Error
from q35c.util.limits import I64_MAX, clip, parse_int

if TYPE_CHECKING:
    from q35c.verify.linear import BitFlip
    from q35c.verify.model import WeightFlip

TARGETS = ("host",)
# The keys of `q35c.verify.linear.ACTIVATIONS` (tests/cli check they agree): spelled out so that building the
# parser does not import xdsl and numpy.
ACTIVATION_NAMES = ("f16", "f32")

EPILOG = """\
examples:
  q35c verify tiny --target host
  q35c verify tiny --target host --quant int4:g=32 --seq 3 --context 5
  q35c verify tiny --target host --batch 2 --seq 2 --context 3  two sequences, each over its own cache
  q35c verify graph.mlir --target host
  q35c verify tiny --flip-weight norm,0,3,15                    must report a mismatch (exit 1)
  q35c verify --linear 2x32x128 --quant q3p5
  q35c verify --linear 1x64x256 --quant int4:g=64 --keep-int-codes --seed 3
  q35c verify --linear 2x16x64 --quant q4_0 --flip-bit 0,2,5     must report a mismatch (exit 1)
"""


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "verify",
        help="run a model or a linear layer through real MLIR and compare with the numpy reference",
        description="Lower a model (or one linear layer) to upstream MLIR, run it with mlir-opt/mlir-runner, "
        "and check the results against the numpy reference.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "model", nargs="?", metavar="MODEL_OR_IR", help=f"{MODEL_HELP}, or a .mlir file of q35 graph IR"
    )
    parser.add_argument("--target", choices=TARGETS, default="host", help="where to run (default host)")
    parser.add_argument("--linear", metavar="TxNxK", help="verify one linear layer: tokens x out x in features")
    parser.add_argument("--quant", metavar="SPEC", help="weight scheme, e.g. q3p5, int4:g=64, q4_0")
    parser.add_argument(
        "--seed", type=count_at_least(0, I64_MAX), default=0, help="seed of the random weights and inputs"
    )
    parser.add_argument(
        "--seq", type=count_at_least(1), default=1, metavar="T", help="model: tokens in flight (default 1)"
    )
    parser.add_argument(
        "--context", type=count_at_least(0), default=0, metavar="C", help="model: tokens in the KV cache"
    )
    parser.add_argument(
        "--batch", type=count_at_least(1), default=1, metavar="B", help="model: independent sequences (default 1)"
    )
    parser.add_argument(
        "--flip-weight",
        metavar="NAME,ROW,COL,BIT",
        help="model: corrupt a weight's packed storage before running (checks that the comparison catches it)",
    )
    parser.add_argument(
        "--keep-int-codes", action="store_true", help="linear: matmul on integer codes, scale/offset per group"
    )
    parser.add_argument(
        "--activations", choices=ACTIVATION_NAMES, default="f16", help="linear: element type of x and y"
    )
    parser.add_argument(
        "--flip-bit",
        metavar="ROW,COL,BIT",
        help="linear: corrupt the packed storage before running (checks that the comparison catches it)",
    )
    parser.set_defaults(func=run)


def _bit_flip(text: str, option: str, what: str) -> BitFlip:
    from q35c.verify.linear import BitFlip

    parts = text.split(",")
    if len(parts) != 3 or not all(p.strip().isdigit() for p in parts):
        raise Q35Error(f"{option} expects {what} as non-negative integers, got '{text}'")
    values = [parse_int(p, option) for p in parts]
    if not all(isinstance(v, int) for v in values):
        raise Q35Error(f"{option} expects {what} as integers of at most 19 digits, got '{clip(text)}'")
    row, col, bit = (int(v) for v in values)
    return BitFlip(row, col, bit)


def _flip(text: str | None) -> BitFlip | None:
    return None if text is None else _bit_flip(text, "--flip-bit", "ROW,COL,BIT")


def _flip_weight(text: str | None) -> WeightFlip | None:
    from q35c.verify.model import WeightFlip

    if text is None:
        return None
    name, _, rest = text.partition(",")
    if not name or not rest:
        raise Q35Error(f"--flip-weight expects NAME,ROW,COL,BIT, got '{text}'")
    return WeightFlip(name, _bit_flip(rest, "--flip-weight", "NAME,ROW,COL,BIT with ROW,COL,BIT"))


def _linear_report(args: argparse.Namespace) -> tuple[bool, list[str]]:
    from q35c.verify.linear import LinearCase, verify_linear

    if args.quant is None:
        raise Q35Error("--linear needs --quant SPEC")
    t, n, k = LinearCase.parse_shape(args.linear)
    case = LinearCase(t, n, k, args.quant, args.seed, args.keep_int_codes, args.activations)
    report = verify_linear(case, fault=_flip(args.flip_bit))
    return report.ok, report.lines()


def _model_report(args: argparse.Namespace) -> tuple[bool, list[str]]:
    from q35c.util.progress import Progress
    from q35c.verify.model import STEPS, ModelCase, verify_model

    if args.flip_bit is not None or args.keep_int_codes:
        raise Q35Error("--flip-bit and --keep-int-codes apply to --linear; for a model use --flip-weight")
    case = ModelCase(args.model, args.quant, args.seed, args.seq, args.context, args.batch)
    with Progress.for_stream(sys.stderr, total=len(STEPS)) as progress:
        report = verify_model(
            case, fault=_flip_weight(args.flip_weight), progress=lambda what: progress.step(args.model, what)
        )
    return report.ok, report.lines()


def run(args: argparse.Namespace) -> int:
    from q35c.verify.mlir_tools import MlirToolError

    if (args.model is None) == (args.linear is None):
        raise Q35Error("give either a model (MODEL_OR_IR) or --linear TxNxK")
    try:
        ok, lines = _linear_report(args) if args.linear is not None else _model_report(args)
    except MlirToolError as err:
        print(f"q35c: error: {err}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0 if ok else 1
