"""The cost options of `q35c build`: `--target T[,T2...|all]` with `--batch`, `--prompt`, `--gen`, `--devices` and
`--format`, which print what the model would do on each target instead of (or after) its IR.

    q35c build llama-2-70b --quant q3p5 --target all
    q35c build llama-2-70b --quant q3p5 --target h100-sxm,groq-lpu --batch 4 --format json

`add_cost_arguments(parser)` registers them (the target option itself, shared with the IR flags, is added by
the build command); `run_cost(args)` prints the comparison and returns the exit status. With one
target and table output, the build command first compiles it and prints its stages (and any IR asked for), then
the table; several targets, `all`, or `--format json` print the comparison alone. `-o DIR` with any `--target`
writes a report directory (`run_report`, `q35c.report.directory`) and prints the table (or the JSON).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from q35c.cli._args import count_at_least, key_values
from q35c.util.errors import Location, Q35Error
from q35c.util.limits import MAX_DEVICES
from q35c.util.progress import Progress

FORMATS = ("table", "json")
# `q35c.predict.predictor.DEFAULT_PROMPT` and `DEFAULT_GEN` (tests/cli check they agree): spelled out so that
# building the parser does not import the predictor (and with it xdsl and numpy).
DEFAULT_PROMPT = 512
DEFAULT_GEN = 128


def add_cost_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the cost options on the build command's parser (which has `--target` already)."""
    group = parser.add_argument_group("cost simulation (with --target)")
    group.add_argument("--batch", type=count_at_least(1), default=1, metavar="B", help="sequences decoded together (1)")
    group.add_argument(
        "--prompt",
        type=count_at_least(0),
        metavar="P",
        help=f"prompt tokens ({DEFAULT_PROMPT}, less where the model's context is shorter)",
    )
    group.add_argument("--gen", type=count_at_least(0), metavar="G", help=f"generated tokens ({DEFAULT_GEN})")
    group.add_argument(
        "--devices",
        type=count_at_least(1, MAX_DEVICES),
        metavar="N",
        help="devices to use, placed by the rule: tensor parallel within a node, pipeline stages across "
        "(default: the fewest that hold the model)",
    )
    group.add_argument(
        "--tp",
        type=count_at_least(1, MAX_DEVICES),
        metavar="T",
        help="tensor-parallel degree (devices splitting each layer; within a node)",
    )
    group.add_argument(
        "--pp",
        type=count_at_least(1, MAX_DEVICES),
        metavar="P",
        help="pipeline stages (consecutive layers per stage; T x P devices in all)",
    )
    group.add_argument("--format", choices=FORMATS, default="table", help="table (default) or json")


IR_FLAGS = ("print_ir_after_all", "print_ir_after", "dump_ir", "option")
REPORT_CONFLICTS = ("print_ir_after_all", "print_ir_after", "dump_ir")


def comparison_only(args: argparse.Namespace) -> bool:
    """Whether `--target` asks only for the cost comparison: several targets (a list, `all`) or JSON output.

    Q35Error when such a request also asks for IR (those flags follow one target's pipeline).
    """
    names = [n for n in str(args.target).split(",") if n.strip()]
    several = len(names) != 1 or names[0].strip() == "all"
    if several and any(getattr(args, flag, None) for flag in IR_FLAGS):
        raise Q35Error("--print-ir-after-all, --print-ir-after, --dump-ir and --option need a single --target")
    return several or args.format == "json"


def run_cost(args: argparse.Namespace) -> int:
    """Print the comparison for `args.target`; Q35Error (exit 2) for unknown targets or a model that cannot fit."""
    from q35c.predict.predictor import compare
    from q35c.report.table import render_json, render_table

    with Progress.for_stream(sys.stderr) as progress:
        progress.note("cost model", f"compiling {args.model} (decode step and prefill) for {args.target}")
        report = compare(
            args.model,
            args.quant,
            args.target,
            batch=args.batch,
            prompt=args.prompt,
            gen=args.gen,
            devices=args.devices,
            tp=args.tp,
            pp=args.pp,
            options=key_values(getattr(args, "option", None) or []),
        )
    print(render_json(report) if args.format == "json" else render_table(report))
    return 0


def accuracy_section(args: argparse.Namespace) -> Callable[[Progress], Callable[[Path], str]]:
    """`--accuracy`: checked before anything compiles (a GGUF model with weights, a scheme), then a writer the
    report directory calls: the study of `--quant` against the model's own weights, as `q35c accuracy` runs it
    (q3p5 also with slot assignment), written as accuracy.md/json/png into the report, its section returned for
    report.md."""
    from q35c.frontend import resolve_model

    path = resolve_model(args.model)
    if Path(path).suffix != ".gguf":
        raise Q35Error("--accuracy needs a model with weights: a .gguf file, or smollm2-135m", Location(path))
    if not args.quant:
        raise Q35Error("--accuracy measures the scheme --quant names against the file's own weights: add --quant S")
    from q35c.accuracy.requant import codec

    codec(args.quant)  # an unknown or unsupported scheme: before any compile

    def writer(progress: Progress) -> Callable[[Path], str]:
        def write(directory: Path) -> str:
            from q35c.accuracy.report import render_section, write_files
            from q35c.accuracy.study import run_study

            study = run_study(path, [args.quant], model_name=args.model, slots=True, progress=progress)
            write_files(study, directory)
            return render_section(study)

        return write

    return writer


def run_report(args: argparse.Namespace) -> int:
    """`-o DIR` with `--target`: write the report directory, then print the table (or the JSON)."""
    from q35c.report.directory import Request, build_report
    from q35c.report.ir import FINAL
    from q35c.report.table import render_json, render_table

    given = [f"--{flag.replace('_', '-')}" for flag in REPORT_CONFLICTS if getattr(args, flag, None)]
    if given:
        raise Q35Error(
            f"{', '.join(given)} and -o DIR do not combine: the report directory holds every target's IR "
            "(DIR/ir/<target>/; --ir-stages all for every stage)"
        )
    if getattr(args, "seq", None) is not None or getattr(args, "context", None) is not None:
        raise Q35Error(
            "--seq and --context do not apply to a report (-o DIR): it compiles the decode step and the prefill "
            "of the scenario (--batch, --prompt, --gen)"
        )
    request = Request(
        model=args.model,
        scheme=args.quant,
        targets=args.target,
        batch=args.batch,
        prompt=args.prompt,
        gen=args.gen,
        devices=args.devices,
        tp=args.tp,
        pp=args.pp,
        options=tuple(sorted(key_values(getattr(args, "option", None) or []).items())),
        ir_stages=getattr(args, "ir_stages", None) or FINAL,
    )
    accuracy = accuracy_section(args) if getattr(args, "accuracy", False) else None
    with Progress.for_stream(sys.stderr) as progress:
        build = build_report(request, Path(args.output), progress, None if accuracy is None else accuracy(progress))
    if args.format == "json":
        print(render_json(build.report))
    else:
        print(render_table(build.report))
        extra = ", accuracy.md/json/png" if accuracy is not None else ""
        print(f"\nreport written to {args.output}: report.md, report.json, report.csv, plots (*.png){extra}, ir/")
    return 0
