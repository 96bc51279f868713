"""The `q35c` command line: argument parsing only; every command calls the library.

Each command lives in `q35c.cli.<name>` and exposes `add_parser(subparsers)` (which registers its
arguments and sets `func`) and a `run(args) -> int`.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import sys
import traceback
from collections.abc import Sequence

from q35c import __version__
from q35c.util.errors import Q35Error

# Command modules under q35c.cli, in the order `q35c --help` lists them.
COMMANDS = ("formats", "info", "build", "run", "cost", "compare", "opt", "verify", "targets", "quantize", "accuracy")

EXIT_USAGE = 2  # bad input: a Q35Error
EXIT_INTERNAL = 70  # a q35c bug (EX_SOFTWARE): any other exception


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
    """Run one command. Exit status: 0 success (a command may return 1, e.g. verify's mismatch), 2 bad input
    (a `Q35Error`: one line, no traceback), 70 a q35c bug (any other exception: `q35c: internal error: ...`,
    the traceback with `--debug` or Q35C_TRACEBACK=1), 130 interrupted, 0 on a closed pipe."""
    parser = build_parser()
    args = parser.parse_args(argv)
    show_traceback = args.debug or os.environ.get("Q35C_TRACEBACK", "") not in ("", "0")
    try:
        return int(args.func(args))
    except Q35Error as err:
        if show_traceback:
            traceback.print_exc()
        print(err.render(), file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        return 130
    except Exception as err:
        if show_traceback:
            traceback.print_exc()
        hint = "" if show_traceback else " (a q35c bug: --debug or Q35C_TRACEBACK=1 shows the traceback)"
        print(f"q35c: internal error: {_one_line(err)}{hint}", file=sys.stderr)
        return EXIT_INTERNAL
    finally:
        if argv is None:
            # The process's own command line: it exits next. What it made stays out of the collection the
            # interpreter runs on its way out, which walks every object left (a compile leaves millions).
            gc.freeze()


def _one_line(err: BaseException) -> str:
    """`TypeName: first line of the message` (the type alone when the message is empty)."""
    lines = str(err).strip().splitlines()
    name = type(err).__name__
    return f"{name}: {lines[0]}" if lines else name


if __name__ == "__main__":
    sys.exit(main())
