"""`fork_call`: a call in a forked process, whose exit status says whether it raised; none on one core."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from q35c.util.forks import fork_call


def test_the_child_runs_the_call_and_its_status_says_whether_it_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    out = tmp_path / "done"
    pid = fork_call(lambda: out.write_text("yes"))
    assert pid is not None and os.waitpid(pid, 0)[1] == 0 and out.read_text() == "yes"

    def fail() -> None:
        raise OSError("cannot write")

    failed = fork_call(fail)
    assert failed is not None and os.waitpid(failed, 0)[1] != 0


def test_nothing_is_forked_on_one_core(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 1)
    ran: list[int] = []
    assert fork_call(lambda: ran.append(1)) is None and ran == []
