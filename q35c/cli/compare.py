"""`q35c compare REPORT REPORT2 ...`: several builds' reports side by side, with ratios to the first.

The library side is `q35c.report.compare`; this module only parses arguments.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

EPILOG = """\
examples:
  q35c build llama-2-70b --quant q3p5 --target all -o out/q3p5
  q35c build llama-2-70b --quant int4 --target all -o out/int4
  q35c build llama-2-70b --quant fp16 --target all -o out/fp16
  q35c compare out/q3p5/report.json out/int4/report.json out/fp16/report.json
  q35c compare out/q3p5 out/int4 --format json      a report directory stands for its report.json
"""


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="several builds' reports side by side (e.g. q3p5 vs int4 vs fp16), with ratios to the first",
        description="Compare reports written by `q35c build ... -o DIR` (their report.json, or the directory): "
        "a line per field the builds differ in (model, scheme, batch, prompt, gen), a summary per metric (which "
        "way is better; targets improved, worsened, same; the geometric-mean ratio), then one block per metric, "
        "one row per target, each build's value and its ratio to the first report (the baseline); - where a "
        "build has no figure.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("reports", nargs="+", metavar="REPORT", help="report.json files or report directories")
    parser.add_argument("--format", choices=("table", "json"), default="table", help="table (default) or json")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from q35c.report.compare import load_build, render_side_by_side, side_by_side

    comparison = side_by_side([load_build(path) for path in args.reports])
    if args.format == "json":
        print(json.dumps(comparison.to_json(), indent=2))
    else:
        print(render_side_by_side(comparison))
    return 0
