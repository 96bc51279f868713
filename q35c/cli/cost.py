"""`q35c cost FILE --target T`: the workload and cost of a compiled module read back from a file.

    q35c build llama-2-7b --quant q3p5 --target h100-sxm --batch 8 --dump-ir ir/
    q35c cost ir/decode/05-schedule.mlir --target h100-sxm --format json

FILE is the final stage of the target's pipeline (`--dump-ir DIR` writes `DIR/decode/` and `DIR/prefill/`; a
report holds `ir/<target>/<phase>/`); the cost equals the build's `decode_cost`/`prefill_cost` for it (a
sharded module, from `--devices` or `--tp/--pp`, carries its placement: `q35.placement`). The work is
`q35c.predict.module_cost`; this module parses arguments and prints.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

EPILOG = """\
examples:
  q35c build llama-2-7b --quant q3p5 --target h100-sxm --batch 8 --dump-ir ir
  q35c cost ir/decode/05-schedule.mlir --target h100-sxm               what the decode step's module costs
  q35c cost ir/prefill/05-schedule.mlir --target h100-sxm --format json  = the build's prefill_cost
"""


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "cost",
        help="the workload and cost of a dumped module (the last stage of a target's pipeline)",
        description="Read a module `q35c build --target T --dump-ir DIR` wrote (its final stage), extract its "
        "workload (kernels, bytes per level, MACs, ALU ops) and cost it with T's cost model.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("file", metavar="FILE", help="an .mlir module, e.g. DIR/decode/05-schedule.mlir")
    parser.add_argument("--target", required=True, metavar="T", help="the target the module was compiled for")
    parser.add_argument("--format", choices=("table", "json"), default="table", help="text (default) or json")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from q35c.predict.module_cost import cost_file

    result = cost_file(Path(args.file), args.target)
    if args.format == "json":
        print(json.dumps(result.to_json(), indent=2))
    else:
        print("\n".join(result.lines()))
    return 0
