"""The `q35c` command line: argument parsing only; every command calls the library.

Each command lives in `q35c.cli.<name>` and exposes `add_parser(subparsers)` (which registers its
arguments and sets `func`) and a `run(args) -> int`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from collections.abc import Sequence

from q35c import __version__
from q35c.util.errors import Q35Error

# Command modules under q35c.cli, in the order `q35c --help` lists them.
COMMANDS = ("formats", "info", "build", "cost", "compare", "opt", "verify", "targets")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="q35c",
        description="q35c: a compiler toolchain for quantized LLM inference.",
    )
    parser.add_argument("--version", action="version", version=f"q35c {__version__}")
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks for errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        module = importlib.import_module(f"q35c.cli.{name}")
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except Q35Error as err:
        if args.debug:
            traceback.print_exc()
        print(err.render(), file=sys.stderr)
        return 2
    except ValueError as err:
        # Library functions raise ValueError for bad arguments (an unknown scheme, shapes that do not divide).
        if args.debug:
            traceback.print_exc()
        print(f"q35c: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        return 130
    except Exception:
        traceback.print_exc()
        print("q35c: internal error (please report it with the traceback above)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
