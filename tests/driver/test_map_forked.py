"""`map_forked` gives what a loop gives, in order, whether it runs in workers or here."""

from __future__ import annotations

import os

import pytest

import q35c.driver.tree as tree
from q35c.driver.tree import map_forked


def test_results_in_order_as_a_loop_gives_them() -> None:
    values = [n * n for n in range(7)]
    assert map_forked(lambda i: (i, values[i]), len(values)) == [(i, v) for i, v in enumerate(values)]


def test_workers_see_this_process_and_their_effects_stay_there(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tree, "_workers", lambda count: 2)
    seen: list[int] = []

    def work(i: int) -> int:
        seen.append(i)
        return os.getpid()

    pids = map_forked(work, 4)
    assert all(pid != os.getpid() for pid in pids) and seen == []


def test_one_core_runs_here(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tree, "_workers", lambda count: 1)
    assert map_forked(lambda i: os.getpid(), 3) == [os.getpid()] * 3


def test_an_error_in_a_worker_reaches_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tree, "_workers", lambda count: 2)

    def fail(i: int) -> int:
        if i == 2:
            raise ValueError("item 2")
        return i

    with pytest.raises(ValueError, match="item 2"):
        map_forked(fail, 4)
