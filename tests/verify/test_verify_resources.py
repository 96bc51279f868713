"""`q35c verify` refuses up front a model whose run would not fit in memory, saying how much it needs and how much
there is, and shows what it is doing on a terminal."""

from __future__ import annotations

import io
import re

import pytest

from q35c.cli.main import main
from q35c.util.progress import Progress
from q35c.verify import model
from q35c.verify.mlir_tools import MlirTools
from q35c.verify.model import STEPS, ModelCase, check_memory, count_elements, load_graph_module, memory_needed


def test_memory_needed_grows_with_the_elements() -> None:
    _, graph = load_graph_module(ModelCase("tiny"))
    elements = count_elements(graph)
    assert elements > 100_000
    assert memory_needed(elements) == model.BASE_BYTES + model.BYTES_PER_ELEMENT * elements
    check_memory("tiny", graph, available=memory_needed(elements))  # just enough: no error


def test_a_model_too_big_for_memory_is_refused_before_any_work(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(model, "available_memory", lambda: 16 * 10**9)

    def must_not_run(*_: object, **__: object) -> None:
        raise AssertionError("generated data for a model that does not fit")

    monkeypatch.setattr(model, "model_params", must_not_run)
    assert main(["verify", "llama-2-7b", "--target", "host"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    found = re.search(r"needs about ([\d.]+) GB of memory .* but 16 GB is available", err)
    assert found is not None and float(found.group(1)) > 100, err


def test_the_available_memory_is_read_from_the_machine() -> None:
    available = model.available_memory()
    assert available is None or available > 0


def test_progress_names_every_step_in_order(mlir_tools: MlirTools) -> None:
    seen: list[str] = []
    report = model.verify_model(ModelCase("tiny"), mlir_tools, progress=seen.append)
    assert report.ok and seen == list(STEPS)


def test_progress_shows_on_a_terminal_only(mlir_tools: MlirTools, monkeypatch: pytest.MonkeyPatch) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    monkeypatch.setattr(Progress, "for_stream", classmethod(lambda cls, stream, total=0, delay=1.0: cls(
        stream, total, enabled=stream.isatty(), delay=0.0)))  # fmt: skip
    assert main(["verify", "tiny", "--target", "host"]) == 0
    shown = terminal.getvalue()
    assert f"[1/{len(STEPS)}] tiny: {STEPS[0]}" in shown and f"[{len(STEPS)}/{len(STEPS)}] tiny: {STEPS[-1]}" in shown
