"""`q35c opt FILE -p 'pass{opt=val},...' [-o OUT]`: run q35c passes over MLIR text, as mlir-opt does.

The pipeline uses xDSL's syntax (`parse_pipeline`) over the passes registered in `q35c.universe.PASSES`; the IR
may use the q35 dialects and every upstream dialect xDSL knows.

    q35c opt tiny.mlir -p 'materialize-weights,unpack-bits{keep-int-codes=true}' -o lowered.mlir
    q35c build tiny | q35c opt - -p materialize-weights
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from q35c.util.errors import Q35Error
from q35c.util.output import write_atomically

if TYPE_CHECKING:
    from xdsl.dialects.builtin import ModuleOp
    from xdsl.passes import ModulePass

QUOTE = "'"
# The names of `q35c.universe.PASSES`, sorted (tests/cli check they agree): spelled out so that building the
# parser does not import xdsl.
PASS_NAMES = (
    "copy-to-memcpy",
    "fuse-gather",
    "fuse-unpack",
    "integer-matvec",
    "lower-graph",
    "materialize-weights",
    "parallel-tiles",
    "prefetch-streams",
    "reassociate-reductions",
    "reduce-in-registers",
    "runtime-kv-cache",
    "schedule-memory",
    "serial-small-loops",
    "shard",
    "tile",
    "unpack-bits",
    "unstage-tiles",
)

EPILOG = """\
examples:
  q35c build tiny -o tiny.mlir                                     the q35 graph IR to start from
  q35c opt tiny.mlir -p materialize-weights,unpack-bits
  q35c opt tiny.mlir -p 'materialize-weights,unpack-bits{keep-int-codes=true}' -o out.mlir
  q35c build tiny | q35c opt - -p materialize-weights
"""


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "opt",
        help="run q35c passes over an MLIR file (like mlir-opt)",
        description="Parse MLIR text, run a pipeline of q35c passes, and print the resulting IR.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("input", metavar="FILE", help="MLIR file to read, or - for standard input")
    parser.add_argument(
        "-p",
        "--passes",
        default="",
        metavar="PIPELINE",
        help=f"comma-separated passes with options, e.g. 'unpack-bits{{keep-int-codes=true}}' "
        f"(available: {', '.join(PASS_NAMES)})",
    )
    parser.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of standard output")
    parser.set_defaults(func=run)


def _valid_passes() -> str:
    from q35c.universe import PASSES

    return ", ".join(sorted(PASSES))


def _options(cls: type[ModulePass]) -> str:
    from xdsl.passes import get_pass_option_infos

    infos = get_pass_option_infos(cls)
    if not infos:
        return "it takes no options"
    names = ", ".join(f"{i.name.replace('_', '-')}: {i.expected_type.strip(QUOTE)}" for i in infos)
    return f"its options: {names}"


def build_pipeline(spec: str) -> list[ModulePass]:
    """The passes of a pipeline string; Q35Error for a syntax error, an unknown pass, an unknown option or an
    unknown target. `target=NAME` is expanded into the options that target gives the pass (`pass_options.expand`:
    `tile{target=groq-lpu}` becomes its budget, tile caps and keep-int-codes)."""
    from xdsl.utils.arg_spec import ArgSpec, parse_pipeline
    from xdsl.utils.exceptions import ArgSpecParseError

    from q35c.targets.pass_options import expand
    from q35c.universe import PASSES

    try:
        specs = list(parse_pipeline(spec))
    except ArgSpecParseError as err:
        raise Q35Error(f"invalid pass pipeline: {err}") from None
    passes: list[ModulePass] = []
    for pass_spec in specs:
        if pass_spec.name not in PASSES:
            raise Q35Error(f"unknown pass '{pass_spec.name}' (valid passes: {_valid_passes()})")
        cls = PASSES[pass_spec.name]()
        try:
            options = expand(pass_spec.name, pass_spec.normalize_parameter_names().parameters)
        except ValueError as err:
            raise Q35Error(f"bad options for pass '{pass_spec.name}': {err}") from None
        try:
            passes.append(cls.from_pass_spec(ArgSpec(pass_spec.name, options)))
        except (ValueError, TypeError) as err:
            raise Q35Error(f"bad options for pass '{pass_spec.name}': {err}; {_options(cls)}") from None
    return passes


def run_passes(module: ModuleOp, passes: list[ModulePass], name: str) -> None:
    """Apply the passes in order, verifying after each (`q35c.driver.pipeline.Runner`, each pass a stage of its
    own); a pass that rejects the input is a Q35Error `pass 'NAME' failed: ...` pointing at `name`."""
    from q35c.driver.pipeline import Runner, Stage

    Runner(verify=True, source=name, unit="pass").run(module, [Stage(p.name, (p,)) for p in passes])


def run(args: argparse.Namespace) -> int:
    from q35c.driver.mlir_input import parse_module, read_text
    from q35c.driver.pipeline import module_text

    passes = build_pipeline(args.passes)
    text, name = read_text(args.input)
    module = parse_module(text, name)
    run_passes(module, passes, name)
    result = module_text(module) + "\n"
    if args.output:
        write_atomically(args.output, result)
    else:
        sys.stdout.write(result)
    return 0
