"""`q35c build MODEL`: import a model and print its q35 graph IR (`--emit graph`), or compile it for a target.

With `--target T` the target's pipeline compiles the modules the cost model costs for the scenario (`--batch`,
`--prompt`, `--gen`): the decode step (B sequences x 1 token after C cached tokens each) and the prefill (B x P
tokens, empty cache), stage by stage (see `q35c.driver.compile`), one line per stage printed;
`--print-ir-after-all`, `--print-ir-after=STAGE` (stderr, MLIR-style headers) and `--dump-ir DIR`
(`DIR/decode/NN-<stage>.mlir`, `DIR/prefill/...`, 00 the imported graph) show the IR between stages, and the
costs printed after are those of exactly these modules. `--seq`/`--context` apply to `--emit graph` only.
Without `--target`, `-o FILE` writes
the graph IR to FILE; with `--target` (one, several or all), `-o DIR` writes a report directory
(`q35c.report.directory`: report.json, report.md, report.csv, plots, the graph and final IR of every target, every
stage's with `--ir-stages all`) and
prints the comparison table.

On a terminal, a build that takes more than a second shows its progress on stderr (`q35c.util.progress`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from q35c.cli._args import MODEL_HELP, QUANT_HELP, count_at_least, key_values
from q35c.cli._cost_args import add_cost_arguments, comparison_only, run_cost, run_report
from q35c.util.errors import Q35Error
from q35c.util.output import write_atomically
from q35c.util.progress import Progress

STAGES_HELP = (
    "with -o DIR: the stages whose IR DIR/ir/ holds: final (the default: the graph as imported and the final IR, "
    "the one the figures are costed from), all (after every stage), or a comma list of stage names (graph, shard, "
    "materialize, lower-graph, tile, unpack, schedule) besides the final IR"
)

if TYPE_CHECKING:
    from q35c.driver.pipeline import StageCallback
    from q35c.predict.predictor import Scenario

EMITS = ("graph", "so", "obj", "llvm", "cuda")
NATIVE_EMITS = ("so", "obj", "llvm")  # with --target host: native code (q35c.codegen.host)

EPILOG = """\
examples:
  q35c build tiny --emit graph                      the q35 graph IR of the bundled tiny model
  q35c build llama-3-8b --quant int4 -o l3.mlir     written to a file
  q35c build examples/hf/llama-2-7b.json --seq 16 --context 512      graph IR only
  q35c build llama-2-70b --target h100-sxm          compile the decode step and the prefill: a line per stage
  q35c build tiny --target host --print-ir-after=tile
  q35c build tiny --target host --quant q3p5:g=32 --emit so -o lib/
                                                    lib/libq35.so, lib/libq35.h: native code, a C entry per kernel
                                                    and per step (--emit obj: libq35.o; --emit llvm: libq35.ll)
  q35c build llama-2-7b --target h100-sxm --quant q3p5 --emit cuda -o cuda/
                                                    cuda/decode/*.cu, cuda/prefill/*.cu: a CUDA kernel per kernel,
                                                    launch.cu and q35c_kernels.h (docs/cuda.md)
  q35c build tiny --target groq-lpu --dump-ir ir/   ir/decode/00-graph.mlir ... ir/prefill/05-schedule.mlir
  q35c build tiny --target h100-sxm --batch 8 --dump-ir ir/
                                                    the costed modules: 8 rows per decode step
  q35c cost ir/decode/05-schedule.mlir --target h100-sxm
                                                    the workload and cost of a dumped module
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
        "compile it for a target with the target's pipeline of named stages: with --target, the modules the cost "
        "model costs for the scenario (--batch, --prompt, --gen), the decode step (B sequences x 1 token after "
        "C = P + floor(G/2) cached tokens each: the mean context, halves rounded up) and the prefill (B x P "
        "tokens); --dump-ir DIR writes DIR/decode/ and DIR/prefill/, and `q35c cost` re-costs a dumped module.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    parser.add_argument(
        "--emit",
        choices=EMITS,
        default="graph",
        help="what to emit (default: graph, the q35 IR); so, obj or llvm with --target host -o DIR: the decode "
        "step and the prefill as native code (a shared library, an object file or LLVM IR) with a C header; cuda "
        "with one NVIDIA --target -o DIR: CUDA kernels of the decode step and the prefill, and their launcher",
    )
    parser.add_argument("--quant", metavar="SPEC", help=QUANT_HELP)
    parser.add_argument(
        "--seq", type=count_at_least(1), metavar="T", help="--emit graph only: tokens in flight (default 1)"
    )
    parser.add_argument(
        "--context",
        type=count_at_least(0),
        metavar="C",
        help="--emit graph only: tokens already in the KV cache (default 0); with --target the scenario "
        "(--batch, --prompt, --gen) fixes the modules",
    )
    parser.add_argument(
        "-o",
        "--output",
        metavar="FILE|DIR",
        help="without --target: write the graph IR to FILE; with --target: write a report directory DIR "
        "(report.md, report.json, report.csv, plots, the graph and final IR: --ir-stages; replaces an earlier "
        "report)",
    )
    parser.add_argument("--ir-stages", metavar="final|all|STAGE,...", help=STAGES_HELP)
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
        help="pipeline option: tile-t, tile-n, tile-k, budget-bytes, keep-int-codes, integer-activations, "
        "interleave-rows (repeatable)",
    )
    parser.add_argument(
        "--accuracy",
        action="store_true",
        help="with --target, -o DIR, a GGUF model (such as smollm2-135m) and --quant: also measure what the scheme "
        "costs in accuracy against the model's own weights, as `q35c accuracy` does (minutes): DIR/accuracy.md, "
        "accuracy.json, accuracy.png and a section of report.md",
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
    ir.add_argument("--dump-ir", metavar="DIR", help="write DIR/decode/NN-<stage>.mlir and DIR/prefill/NN-<stage>.mlir")
    add_cost_arguments(parser)
    parser.set_defaults(func=run)


def compile_for_target(args: argparse.Namespace) -> int:
    """Compile the scenario's phase modules for one target, printing each stage (and any IR asked for)."""
    from q35c.driver.compile import (
        CompileResult,
        IRDirectory,
        check_stage_names,
        compile_phases,
    )
    from q35c.driver.pipeline import IRDumper, IRPrinter, chain
    from q35c.predict.predictor import Predictor
    from q35c.targets.cost import DoesNotFit
    from q35c.targets.registry import get_target

    target = get_target(args.target)
    spec = target.spec
    options = key_values(args.option)
    after = [name.strip() for item in args.print_ir_after for name in item.split(",") if name.strip()]
    scenario = scenario_for(args)
    predictor = Predictor(args.model, args.quant, scenario, tuple(sorted(options.items())))
    try:
        placement = predictor.placement(target, args.devices, args.tp, args.pp)
    except DoesNotFit as err:
        raise Q35Error(f"{spec.name}: {err}") from None
    options = {**options, **placement.options()}
    stages = target.pipeline(options)
    check_stage_names(after, stages)
    keys = predictor.phase_keys()
    printing = args.print_ir_after_all or bool(after)
    # The progress line shares stderr with printed IR, so it stays off when IR is printed.
    progress = Progress.for_stream(sys.stderr, total=(len(stages) + 1) * len(keys))
    progress.enabled = progress.enabled and not printing
    dumps = IRDirectory(Path(args.dump_ir)) if args.dump_ir else None

    def callback(phase: str) -> StageCallback:
        printer = None
        if printing:
            sys.stderr.write(f"// q35c: the {describe_phase(phase, keys[phase])}\n")
            printer = IRPrinter(sys.stderr, after_all=args.print_ir_after_all, after=frozenset(after))
        dumper = None if dumps is None else IRDumper(dumps.tmp / phase)
        return chain(printer, progress.stage_callback(f"{spec.name} {phase}"), dumper)

    def show(phase: str, result: CompileResult) -> None:
        print(f"{result.model.name} for {spec.name} ({spec.family}), the {describe_phase(phase, keys[phase])}:")
        for report in result.reports:
            print(report.line())
        for line in result.peak_lines():
            print(line)

    with progress:
        if dumps is not None:
            with dumps:
                compile_phases(keys, spec.name, options, callback, show)
        else:
            compile_phases(keys, spec.name, options, callback, show)
    return 0


def describe_phase(phase: str, key: tuple[str, str | None, int, int, int]) -> str:
    """`decode step: batch 8 x 1 token after 576 cached` for a phase's compile key."""
    _, _, seq, context, batch = key
    if phase == "decode":
        return f"decode step: batch {batch} x {seq} token after {context} cached tokens each"
    return f"prefill: batch {batch} x {seq} tokens, empty cache"


def scenario_for(args: argparse.Namespace) -> Scenario:
    """The scenario of `--batch/--prompt/--gen` for the model (the defaults fitted to its context length)."""
    from q35c.frontend import load_graph
    from q35c.predict.predictor import Scenario, scenario_lengths

    graph = load_graph(args.model, quant=args.quant)
    prompt, gen = scenario_lengths(args.prompt, args.gen, graph.max_context, graph.source)
    if prompt + gen < 1:
        raise Q35Error("prompt + gen must be at least 1")
    return Scenario(args.batch, prompt, gen)


def emit_native(args: argparse.Namespace) -> int:
    """`--emit so|obj|llvm`: the host pipeline's final IR as native code in the directory `-o DIR`."""
    from q35c.codegen.host.library import TARGET, LibraryRequest, build_library
    from q35c.codegen.host.runtime import HEADER

    if args.target != TARGET or not args.output:
        raise Q35Error(f"--emit {args.emit} compiles for this machine: it needs --target {TARGET} and -o DIR")
    if args.seq is not None or args.context is not None:
        raise Q35Error("--seq and --context apply to --emit graph only: the scenario fixes the modules")
    request = LibraryRequest(args.model, args.quant, scenario_for(args), key_values(args.option))
    progress = Progress.for_stream(sys.stderr, total=len(request.phase_keys()) * 6 + 1)
    with progress:
        built = build_library(request, Path(args.output), args.emit, lambda p: progress.stage_callback(f"host {p}"))
    print(f"{built.artifact} ({len(built.entries)} entries; C header {built.directory / HEADER})")
    return 0


def emit_cuda(args: argparse.Namespace) -> int:
    """`--emit cuda`: CUDA kernels of the decode step and the prefill for an NVIDIA target, in `-o DIR`."""
    from q35c.codegen.cuda.emit import emit_cuda as write_cuda
    from q35c.predict.predictor import Predictor

    if args.target is None or "," in args.target or args.target == "all" or not args.output:
        import tomllib

        from q35c.targets.spec import SPEC_DIR, spec_names

        def vendor(name: str) -> object:  # read from the file: loading the host's spec would probe the machine
            return tomllib.loads((SPEC_DIR / f"{name}.toml").read_text(encoding="utf-8")).get("vendor")

        nvidia = ", ".join(n for n in spec_names() if vendor(n) == "NVIDIA")
        raise Q35Error(f"--emit cuda needs one NVIDIA --target ({nvidia}) and -o DIR")
    if args.seq is not None or args.context is not None:
        raise Q35Error("--seq and --context apply to --emit graph only: the scenario fixes the modules")
    if args.print_ir_after_all or args.print_ir_after or args.dump_ir:
        raise Q35Error("--emit cuda writes kernels, not IR: --dump-ir and --print-ir-after* go without --emit")
    from q35c.targets.cost import DoesNotFit
    from q35c.targets.registry import get_target

    options = key_values(args.option)
    predictor = Predictor(args.model, args.quant, scenario_for(args), tuple(sorted(options.items())))
    target = get_target(args.target)
    if target.spec.vendor == "NVIDIA":
        try:
            devices = predictor.placement(target, args.devices, args.tp, args.pp).devices
        except DoesNotFit as err:
            raise Q35Error(f"{target.name}: {err}") from None
        if devices > 1:
            raise Q35Error(
                f"--emit cuda writes one device's kernels; {args.model} on {target.name} takes {devices} devices, "
                "whose collectives have no CUDA emitter"
            )
    emitted = write_cuda(args.target, predictor.phase_keys(), options, Path(args.output))
    for phase, sources in emitted.items():
        print(f"{args.output}/{phase}: {len(sources.kernels)} kernels, launch.cu, q35c_kernels.h")
    return 0


def run(args: argparse.Namespace) -> int:
    from q35c.driver.tree import collecting_less

    with collecting_less():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    if args.accuracy and args.emit != "graph":
        raise Q35Error(f"--accuracy belongs to a report (--target T -o DIR), not to --emit {args.emit}")
    if args.ir_stages is not None and (args.target is None or not args.output or args.emit != "graph"):
        raise Q35Error("--ir-stages chooses the IR a report directory holds: it needs --target T and -o DIR")
    if args.emit == "cuda":
        return emit_cuda(args)
    if args.emit in NATIVE_EMITS:
        return emit_native(args)
    if args.target is not None:
        if args.seq is not None or args.context is not None:
            raise Q35Error(
                "--seq and --context apply to --emit graph only: with --target the scenario (--batch, --prompt, "
                "--gen) fixes the modules compiled (the decode step and the prefill)"
            )
        if args.output:
            return run_report(args)
        if args.accuracy:
            raise Q35Error("--accuracy writes into a report directory: add -o DIR")
        if comparison_only(args):
            return run_cost(args)
        compile_for_target(args)
        print()
        return run_cost(args)
    if args.print_ir_after_all or args.print_ir_after or args.dump_ir or args.option or args.accuracy:
        raise Q35Error("--print-ir-after-all, --print-ir-after, --dump-ir, --option and --accuracy need --target")
    from q35c.driver.pipeline import module_text
    from q35c.frontend import load_model

    model = load_model(args.model, quant=args.quant, seq=args.seq or 1, context=args.context or 0)
    text = module_text(model.module) + "\n"
    if args.output:
        write_atomically(args.output, text)
    else:
        print(text, end="")
    return 0
