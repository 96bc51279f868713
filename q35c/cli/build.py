"""`q35c build MODEL`: import a model and print its q35 graph IR (`--emit graph`), or compile it for a target.

With `--target T` the target's pipeline runs stage by stage (see `q35c.driver.compile`) and one line per stage is
printed; `--print-ir-after-all`, `--print-ir-after=STAGE` (stderr, MLIR-style headers) and `--dump-ir DIR`
(`NN-<stage>.mlir`, 00 the imported graph) show the IR between stages. Without `--target`, `-o FILE` writes
the graph IR to FILE; with `--target` (one, several or all), `-o DIR` writes a report directory
(`q35c.report.directory`: report.json, report.md, report.csv, plots, the IR of every stage for every target) and
prints the comparison table.

On a terminal, a build that takes more than a second shows its progress on stderr (`q35c.util.progress`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from q35c.cli._args import MODEL_HELP, QUANT_HELP, count_at_least, key_values
from q35c.cli._cost_args import add_cost_arguments, comparison_only, run_cost, run_report
from q35c.driver.pipeline import IRPrinter, StageCallback, chain, module_text
from q35c.frontend import load_model
from q35c.util.errors import Q35Error
from q35c.util.output import write_atomically
from q35c.util.progress import Progress

EMITS = ("graph",)

EPILOG = """\
examples:
  q35c build tiny --emit graph                      the q35 graph IR of the bundled tiny model
  q35c build llama-3-8b --quant int4 -o l3.mlir     written to a file
  q35c build examples/hf/llama-2-7b.json --seq 16 --context 512
  q35c build llama-2-70b --target h100-sxm          compile: one line per pipeline stage
  q35c build tiny --target host --print-ir-after=tile
  q35c build tiny --target groq-lpu --dump-ir ir/   ir/00-graph.mlir ... ir/05-schedule.mlir
  q35c build tiny --target m2-max --option budget-bytes=16384
  q35c build llama-2-70b --quant q3p5 --target all  tokens/s, latency, energy and devices on every target
  q35c build llama-2-70b --target h100-sxm,groq-lpu --batch 8 --format json
  q35c build llama-2-70b --quant q3p5 --target all -o out/l2-70b
                                                    a report directory: report.md/.json/.csv, plots, IR
"""


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "build",
        help="compile a model: its q35 graph IR, or --target T to run T's pipeline",
        description="Import a model (.q35, config.json, .gguf or a bundled example) and emit its graph IR, or "
        "compile it for a target with the target's pipeline of named stages.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    parser.add_argument("--emit", choices=EMITS, default="graph", help="what to emit (default: graph, the q35 IR)")
    parser.add_argument("--quant", metavar="SPEC", help=QUANT_HELP)
    parser.add_argument("--seq", type=count_at_least(1), default=1, metavar="T", help="tokens in flight (default 1)")
    parser.add_argument(
        "--context", type=count_at_least(0), default=0, metavar="C", help="tokens already in the KV cache (default 0)"
    )
    parser.add_argument(
        "-o",
        "--output",
        metavar="FILE|DIR",
        help="without --target: write the graph IR to FILE; with --target: write a report directory DIR "
        "(report.md, report.json, report.csv, plots, the IR of every stage; replaces an earlier report)",
    )
    parser.add_argument(
        "--target",
        metavar="T[,T2...|all]",
        help="compile for target T and predict its speed, latency and energy; several targets (or all): compare them",
    )
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="pipeline option: tile-t, tile-n, tile-k, budget-bytes, keep-int-codes (repeatable)",
    )
    ir = parser.add_argument_group("IR between stages (with --target)")
    ir.add_argument("--print-ir-after-all", action="store_true", help="print the IR after every stage to stderr")
    ir.add_argument(
        "--print-ir-after",
        action="append",
        default=[],
        metavar="STAGE",
        help="print the IR after STAGE to stderr (repeatable, or comma-separated)",
    )
    ir.add_argument("--dump-ir", metavar="DIR", help="write NN-<stage>.mlir files into DIR")
    add_cost_arguments(parser)
    parser.set_defaults(func=run)


def compile_for_target(args: argparse.Namespace) -> int:
    from q35c.driver.compile import IRDirectory, check_stage_names, compile_model, target_spec, target_stages

    spec = target_spec(args.target)
    options = key_values(args.option)
    after = [name.strip() for item in args.print_ir_after for name in item.split(",") if name.strip()]
    check_stage_names(after, target_stages(spec, options))
    printer: StageCallback | None = None
    if args.print_ir_after_all or after:
        printer = IRPrinter(sys.stderr, after_all=args.print_ir_after_all, after=frozenset(after))
    model = load_model(args.model, quant=args.quant, seq=args.seq, context=args.context)
    # The progress line shares stderr with printed IR, so it stays off when IR is printed.
    progress = Progress.for_stream(sys.stderr, total=len(target_stages(spec, options)) + 1)
    progress.enabled = progress.enabled and printer is None
    with progress:
        callback = chain(printer, progress.stage_callback(spec.name))
        if args.dump_ir:
            with IRDirectory(Path(args.dump_ir)) as dumps:
                result = compile_model(model, spec.name, options, chain(callback, dumps.dumper))
        else:
            result = compile_model(model, spec.name, options, callback)
    print(f"{result.model.name} for {spec.name} ({spec.family}):")
    for report in result.reports:
        print(report.line())
    for line in result.peak_lines():
        print(line)
    return 0


def run(args: argparse.Namespace) -> int:
    if args.target is not None:
        if args.output:
            return run_report(args)
        if comparison_only(args):
            return run_cost(args)
        compile_for_target(args)
        print()
        return run_cost(args)
    if args.print_ir_after_all or args.print_ir_after or args.dump_ir or args.option:
        raise Q35Error("--print-ir-after-all, --print-ir-after, --dump-ir and --option need --target")
    model = load_model(args.model, quant=args.quant, seq=args.seq, context=args.context)
    text = module_text(model.module) + "\n"
    if args.output:
        write_atomically(args.output, text)
    else:
        print(text, end="")
    return 0
