"""A one-line progress display on stderr for long builds: `[3/12] h100-sxm: schedule`, updated in place.

    progress = Progress.for_stream(sys.stderr, total=12)
    progress.step("h100-sxm", "schedule")     # the callback a compile loop calls after each stage
    progress.close()                          # erase the line

It shows only on a terminal: when the stream is not a TTY (a pipe, a file, a test's capture) nothing is
written at all. It also stays silent for the first `delay` seconds, so a build that finishes within a second
prints nothing; after that every update rewrites the same line (carriage return, then erase to the end of
line), and `close` erases it so that what follows starts on a clean line. An update held back by the delay is
shown when the delay ends (a timer), so a long step that starts early still shows what it is doing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

ERASE = "\r\x1b[K"


@dataclass
class Progress:
    """Counts steps and shows the latest on one terminal line (see the module docstring).

    `enabled` False makes every call a no-op; `clock` and `timer` (whether a held-back line is shown when the
    delay ends) are there for tests.
    """

    stream: TextIO
    total: int = 0
    enabled: bool = True
    delay: float = 1.0
    clock: Callable[[], float] = time.monotonic
    timer: bool = True
    done: int = 0
    started: float = field(init=False)
    shown: bool = field(default=False, init=False)
    last: str = field(default="", init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _pending: threading.Timer | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.started = self.clock()

    @classmethod
    def for_stream(cls, stream: TextIO, total: int = 0, delay: float = 1.0) -> Progress:
        """A display on `stream`, enabled only when the stream is a terminal."""
        isatty = getattr(stream, "isatty", None)
        return cls(stream, total, enabled=bool(isatty and isatty()), delay=delay)

    def add(self, steps: int) -> None:
        """Announce `steps` more steps to come (the total grows)."""
        self.total += steps

    def step(self, subject: str, what: str) -> None:
        """One step done: `[done/total] subject: what`."""
        self.done += 1
        self.show(f"[{self.done}/{max(self.total, self.done)}] {subject}: {what}")

    def note(self, subject: str, what: str) -> None:
        """Work that is not counted as a step (it runs before the next step): `[done/total] subject: what`, or
        `subject: what` while no steps are known."""
        counter = f"[{self.done}/{max(self.total, self.done)}] " if self.total or self.done else ""
        self.show(f"{counter}{subject}: {what}")

    def show(self, text: str) -> None:
        """Replace the line with `text` (once the delay has passed)."""
        if not self.enabled:
            return
        with self._lock:
            self.last = text
            wait = self.delay - (self.clock() - self.started)
            if wait <= 0:
                self._write(text)
            elif self.timer and self._pending is None:
                self._pending = threading.Timer(wait, self._flush)
                self._pending.daemon = True
                self._pending.start()

    def _flush(self) -> None:
        with self._lock:
            if self._pending is not None and self.last:
                self._write(self.last)

    def _write(self, text: str) -> None:
        self.stream.write(ERASE + text)
        self.stream.flush()
        self.shown = True

    def stage_callback(self, subject: str) -> Callable[[int, str, object], None]:
        """A `StageCallback` (`q35c.driver.pipeline`) counting each stage of `subject`'s pipeline as a step."""

        def call(index: int, stage: str, module: object) -> None:
            self.step(subject, stage)

        return call

    def close(self) -> None:
        """Stop the timer and erase the line, if anything was shown."""
        with self._lock:
            if self._pending is not None:
                self._pending.cancel()
                self._pending = None
            if self.enabled and self.shown:
                self.stream.write(ERASE)
                self.stream.flush()
            self.shown = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
