"""Building the parser (`q35c --help`, `q35c CMD --help`) imports none of the heavy libraries: each command
imports what it needs inside `run`. The constants the help texts spell out agree with the library's."""

from __future__ import annotations

import subprocess
import sys

from q35c.cli import _cost_args, opt, verify
from q35c.cli.main import COMMANDS

HEAVY = ("xdsl", "networkx", "matplotlib", "numpy")


def heavy_modules_after(code: str) -> str:
    probe = f"import sys\n{code}\nprint(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120)
    return done.stdout.strip()


def test_building_the_parser_imports_no_heavy_library() -> None:
    assert heavy_modules_after("from q35c.cli.main import build_parser; build_parser()") == "[]"


def test_command_help_imports_no_heavy_library() -> None:
    for name in COMMANDS:
        code = (
            "import contextlib, io\nfrom q35c.cli.main import main\n"
            "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
            f"    main([{name!r}, '--help'])"
        )
        assert heavy_modules_after(code) == "[]", name


def test_spelled_out_constants_agree_with_the_library() -> None:
    from q35c.predict.predictor import DEFAULT_GEN, DEFAULT_PROMPT
    from q35c.universe import PASSES
    from q35c.verify.linear import ACTIVATIONS

    assert tuple(sorted(PASSES)) == opt.PASS_NAMES
    assert tuple(ACTIVATIONS) == verify.ACTIVATION_NAMES
    assert (_cost_args.DEFAULT_PROMPT, _cost_args.DEFAULT_GEN) == (DEFAULT_PROMPT, DEFAULT_GEN)
