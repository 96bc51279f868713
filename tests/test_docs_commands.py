"""Every short `q35c ...` command README.md and docs/*.md show runs as written (`tests/docs_commands.py` finds
them), in a scratch directory where `examples/` is the repository's, exiting 0, or 2 with the error the document
prints after it.

Not run, each for the reason listed here (the lists must name commands the documents still show):
- templates (MODEL, DIR, SPEC, `...`) and inline mentions of a bare command name, found by rule;
- SLOW: commands that take tens of seconds to minutes on two cores; `Q35C_DOCS_ALL=1` runs them too;
- NOT_RUN: fragments of a command written in prose, and files the document does not show.
The others take about half a minute together on two cores.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from docs_commands import ROOT, DocCommand, all_commands

Q35C = str(Path(sys.executable).with_name("q35c"))
TIMEOUT = 600

SLOW: dict[str, str] = {
    'q35c run smollm2-135m --prompt-text "The capital of France is" --gen 16 --threads 1': "compiles and runs "
    "smollm2-135m's prefill and decode (tens of seconds to minutes)",
    "q35c build llama-2-70b --quant q3p5 --target all -o out/llama-2-70b-q3p5": "every target, a report directory",
    "q35c build llama-2-70b --quant q3p5 --target all": "every target",
    "q35c build llama-2-70b --quant int4 --target all -o out/llama-2-70b-int4": "every target, a report directory",
    "q35c compare out/llama-2-70b-q3p5 out/llama-2-70b-int4": "needs the two report directories above",
    "q35c build llama-2-70b --quant q3p5 --target "
    "a100-sxm,groq-lpu,h100-pcie,h100-sxm,h200,m1-max,m2-max,m2-ultra,m3-max,m4-max,mi210,mi300x": "every target",
    "q35c build llama-3.1-405b --quant q3p5 --target all": "every target",
    "q35c targets host --probe": "measures the host's bandwidth and FLOPS (seconds, and noisy on a busy machine)",
    "q35c build llama-2-7b --target h100-sxm --quant q3p5 --emit cuda -o out/cuda": "nvcc compiles every kernel",
    "q35c build llama-2-70b --quant q3p5 --target h100-sxm,groq-lpu --batch 8 --format json": "two placements",
    "q35c build llama-2-70b --quant q3p5 --target h100-sxm,groq-lpu --batch 8 --prompt 1024 --gen 256 "
    "--format json": "two placements",
    "q35c build llama-2-70b --quant int8 --target groq-lpu --devices 576": "a 576-device placement",
    "q35c build llama-2-70b --quant q3p5 --target h100-sxm --tp 8 --pp 2 --dump-ir ir/": "a 16-device placement",
    "q35c verify --linear 2x32x128 --quant q3p5:g=64": "mlir-opt and mlir-runner (tests/verify runs it)",
    "q35c build tiny --target host --quant q3p5:g=32 --emit so -o lib/": "clang compiles a library (tests/codegen)",
    "q35c run tiny --target host --quant q3p5:g=32 --gen 8": "compiles and times native code (tests/codegen)",
    "q35c run tiny --target host --quant q3p5:g=32 --gen 8 --threads 1": "compiles and times native code",
    "q35c run llama-2-7b --quant q3p5 --prompt 1 --gen 3 --threads 1": "compiles and runs a 7B model natively",
    "q35c run smollm2-135m --prompt-text 'The capital of France is' --gen 16 --threads 2": "compiles and runs "
    "smollm2-135m natively; needs it (bash scripts/setup --models)",
    "q35c accuracy smollm2-135m --quant q3p5:g=64,int3:g=64,int4:g=64,q4_0,int8 -o out/acc": "minutes of "
    "numpy forward passes; needs smollm2-135m (bash scripts/setup --models)",
    "q35c accuracy smollm2-135m --quant q3p5:g=64,int3:g=64,int3:g=32,int4:g=64,q4_0,int8,q4_1,int4:g=32": "minutes "
    "of numpy forward passes; needs smollm2-135m (bash scripts/setup --models)",
    "q35c build smollm2-135m --quant q3p5:g=64 --target m2-max,h100-sxm -o out/smollm2-q3p5 --accuracy": "minutes "
    "of numpy forward passes; needs smollm2-135m (bash scripts/setup --models)",
    "q35c quantize smollm2-135m --quant q4_0 -o smollm2-q4_0.gguf": "needs smollm2-135m (scripts/setup --models)",
    "q35c quantize smollm2-135m --quant q3p5:g=64 -o smollm2-q3p5.npz": "needs smollm2-135m (scripts/setup --models)",
}
"""Commands that take ten seconds or more on two cores; run with Q35C_DOCS_ALL=1."""

NOT_RUN: dict[tuple[str, str], str] = {
    ("docs/host-code.md", "q35c build --target host --emit so"): "a fragment: the options, without a model",
    ("docs/host-code.md", "q35c build --target host"): "a fragment: the option, without a model",
    ("docs/model-language.md", "q35c info bad.q35"): "the document shows the error, not the file",
    ("docs/host-code.md", "q35c run tiny --weights tiny-llama.gguf"): "the document shows the error, not the file "
    "(tests/codegen/test_host_generate.py writes one and checks it)",
}
"""(document, command) pairs that are not commands to run as written."""

PLACEHOLDER = re.compile(r"\.\.\.|[|\[\]<>]|(?<![\w-])[A-Z][A-Z_]*(?![\w-])")

# Files some commands read, as the documents describe them: README's bad.q35 is tiny with a misspelt weight, its
# big.q35 a dimension past the limit on line 1.
TINY = (ROOT / "examples" / "tiny.q35").read_text(encoding="utf-8")
FILES = {
    "bad.q35": TINY.replace("x = embed(ids, embed_tokens)", "x = embed(ids, embed_tokenz)"),
    "big.q35": "dim layers = 2147483648\n",
    "my-model.q35": TINY,
}


def not_a_command(c: DocCommand) -> str | None:
    """Why `c`, as written, is no command at all (None: it is one)."""
    if PLACEHOLDER.search(c.text.removeprefix("q35c ")):
        return "a template with placeholders"
    if c.inline and len(c.argv) == 2:
        return "names a command in prose"
    return None


def skip_reason(c: DocCommand) -> str | None:
    """Why `c` is not run (None: it is)."""
    if (why := not_a_command(c)) is not None:
        return why
    if (c.doc, c.text) in NOT_RUN:
        return NOT_RUN[(c.doc, c.text)]
    if c.text in SLOW and os.environ.get("Q35C_DOCS_ALL") != "1":
        return f"slow ({SLOW[c.text]}); Q35C_DOCS_ALL=1 runs it"
    return None


COMMANDS = all_commands()
SHOWN: dict[str, list[DocCommand]] = {}  # every command as written, by its text, with where it is shown
for command in COMMANDS:
    if not_a_command(command) is None:
        SHOWN.setdefault(command.text, []).append(command)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory to run the commands in: `examples/` as in the repository, the files they read, and a host
    measurement already cached (so no command stops to probe the machine)."""
    from q35c.targets import host_probe

    directory = tmp_path_factory.mktemp("docs")
    (directory / "examples").symlink_to(ROOT / "examples")
    for name, text in FILES.items():
        (directory / name).write_text(text, encoding="utf-8")
    cache = directory / ".cache"
    previous = os.environ.get("Q35C_CACHE_DIR")
    os.environ["Q35C_CACHE_DIR"] = str(cache)
    try:
        host_probe.save(host_probe.measure(array_bytes=1 << 16, matmul_n=32, min_seconds=0.0, runs=1))
    finally:
        if previous is None:
            del os.environ["Q35C_CACHE_DIR"]
        else:
            os.environ["Q35C_CACHE_DIR"] = previous
    return directory


@pytest.mark.parametrize("text", list(SHOWN), ids=list(SHOWN))
def test_the_documented_command_runs(text: str, scratch: Path) -> None:
    reasons = {skip_reason(c) for c in SHOWN[text]}
    if None not in reasons:  # one place may show a command that another only mentions
        pytest.skip("; ".join(sorted(r for r in reasons if r is not None)))
    shown = [c for c in SHOWN[text] if skip_reason(c) is None]
    errors = {c.error for c in shown}
    assert len(errors) == 1, f"{text}: the documents disagree on its outcome"
    error = errors.pop()
    env = {**os.environ, "Q35C_CACHE_DIR": str(scratch / ".cache")}
    done = subprocess.run(
        [Q35C, *shown[0].argv[1:]], cwd=scratch, env=env, capture_output=True, text=True, timeout=TIMEOUT
    )
    where = ", ".join(f"{c.doc}:{c.line}" for c in shown)
    stderr = done.stderr.replace(f"{ROOT}/", "")  # a bundled example's path, as it reads from the repository
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr, f"{where}: {done.stderr}"
    if error is None:
        assert done.returncode == 0, f"{where}: exit {done.returncode}\n{done.stderr}"
    else:
        assert done.returncode == 2, f"{where}: exit {done.returncode}, expected 2 ({error})"
        assert error in stderr, f"{where}: the document shows\n{error}\nbut q35c printed\n{done.stderr}"


def test_the_lists_name_commands_the_documents_show() -> None:
    shown = {c.text for c in COMMANDS}
    assert set(SLOW) <= shown, set(SLOW) - shown
    assert {text for _, text in NOT_RUN} <= shown
    assert {(c.doc, c.text) for c in COMMANDS} >= set(NOT_RUN)


def test_the_documents_show_many_commands() -> None:
    run = [text for text, shown in SHOWN.items() if any(skip_reason(c) is None for c in shown)]
    assert len(SHOWN) >= 25 and len(run) >= 10  # a broken extraction finds few
