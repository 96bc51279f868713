"""One call in a forked process, for work whose result is a file: the caller goes on meanwhile.

    pid = fork_call(lambda: draw(path))        # None: no second core or no fork; do it here instead
    ...
    ok = pid is not None and os.waitpid(pid, 0)[1] == 0

The child sees this process as it is at the fork (a module being compiled stays as it was for the child while
this process changes it), runs `call` with the cyclic garbage collector off (a short life: what it allocates is
freed as it goes) and exits with status 0, or 1 if `call` raised.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable


def fork_call(call: Callable[[], object]) -> int | None:
    """Run `call` in a forked process and return its pid; None (nothing run) on a machine with one core, without
    fork, or when no process can be made."""
    if (os.cpu_count() or 1) < 2 or not hasattr(os, "fork"):
        return None
    try:
        pid = os.fork()
    except OSError:  # no process to spare
        return None
    if pid != 0:
        return pid
    status = 1
    try:
        gc.disable()
        call()
        status = 0
    finally:
        os._exit(status)
