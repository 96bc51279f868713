"""The progress line: only on a terminal, only after the delay, rewritten in place, erased at the end."""

from __future__ import annotations

import io
import time

from q35c.util.progress import ERASE, Progress


class FakeTTY(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_steps_rewrite_one_line_after_the_delay() -> None:
    stream, clock = FakeTTY(), Clock()
    progress = Progress(stream, total=3, clock=clock, timer=False)
    progress.step("h100-sxm", "tile")
    assert stream.getvalue() == ""  # within the first second: nothing
    clock.now = 1.5
    progress.step("h100-sxm", "unpack")
    progress.step("groq-lpu", "schedule")
    assert stream.getvalue() == f"{ERASE}[2/3] h100-sxm: unpack{ERASE}[3/3] groq-lpu: schedule"
    assert "\n" not in stream.getvalue()
    progress.close()
    assert stream.getvalue().endswith(ERASE)


def test_a_build_shorter_than_the_delay_prints_nothing() -> None:
    stream, clock = FakeTTY(), Clock()
    with Progress(stream, total=2, clock=clock, timer=False) as progress:
        progress.step("tiny", "graph")
        progress.step("tiny", "materialize")
        clock.now = 0.5
    assert stream.getvalue() == ""


def test_nothing_is_written_when_the_stream_is_not_a_terminal() -> None:
    stream = io.StringIO()
    progress = Progress.for_stream(stream, total=2, delay=0.0)
    assert not progress.enabled
    progress.note("cost model", "compiling")
    progress.step("tiny", "graph")
    progress.close()
    assert stream.getvalue() == ""


def test_for_stream_enables_itself_on_a_terminal() -> None:
    stream = FakeTTY()
    progress = Progress.for_stream(stream, total=1, delay=0.0)
    assert progress.enabled
    progress.step("m2-max", "schedule")
    assert stream.getvalue() == f"{ERASE}[1/1] m2-max: schedule"


def test_totals_grow_and_notes_do_not_count() -> None:
    stream = FakeTTY()
    progress = Progress(stream, delay=0.0, timer=False)
    progress.note("cost model", "compiling")
    progress.add(2)
    progress.step("a", "graph")
    assert stream.getvalue() == f"{ERASE}cost model: compiling{ERASE}[1/2] a: graph"


def test_stage_callback_counts_each_stage() -> None:
    stream = FakeTTY()
    progress = Progress(stream, total=2, delay=0.0, timer=False)
    callback = progress.stage_callback("host")
    callback(0, "graph", None)
    callback(1, "tile", None)
    assert stream.getvalue().endswith("[2/2] host: tile")


def test_a_line_held_back_by_the_delay_shows_when_it_ends() -> None:
    stream = FakeTTY()
    progress = Progress(stream, total=1, delay=0.05)
    progress.note("cost model", "compiling for 12 targets")
    assert stream.getvalue() == ""
    deadline = time.monotonic() + 5
    while not stream.getvalue() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert stream.getvalue() == f"{ERASE}[0/1] cost model: compiling for 12 targets"
    progress.close()
    assert stream.getvalue().endswith(ERASE)
