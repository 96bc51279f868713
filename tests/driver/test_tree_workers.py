"""Pool workers of a parallel tree run exit when their parent dies, even when it is killed with SIGKILL."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time

import pytest

from q35c.util.output import _start_time  # pyright: ignore[reportPrivateUsage]

# Starts a q35c worker pool whose one task prints the worker's pid and blocks; the parent waits for it forever.
PARENT = """
import multiprocessing, os, sys, threading
from q35c.driver.tree import worker_pool

def block() -> None:
    print(os.getpid(), flush=True)
    threading.Event().wait()

if __name__ == "__main__":
    with worker_pool(1, multiprocessing.get_context("fork")) as pool:
        pool.submit(block).result()
"""


def wait_for_exit(pid: int, seconds: float) -> bool:
    """Whether process `pid` (not our child) ends within `seconds`."""
    if hasattr(os, "pidfd_open"):
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            return True
        try:
            return bool(select.select([fd], [], [], seconds)[0])
        finally:
            os.close(fd)
    deadline = time.monotonic() + seconds
    while _start_time(pid) is not None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.skipif(sys.platform == "win32", reason="fork start method")
def test_workers_exit_when_their_parent_is_killed() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    worker = int(parent.stdout.readline())
    assert _start_time(worker) is not None
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    exited = wait_for_exit(worker, 10.0)
    if not exited:
        os.kill(worker, signal.SIGKILL)
    assert exited
