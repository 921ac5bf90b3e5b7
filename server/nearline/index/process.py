"""What a process that builds the index does first: take the CPU only when nobody else wants
it, and never outlive the process that started it."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import time

_PR_SET_PDEATHSIG = 1
PARENT_POLL_S = 0.5


def lowest_priority() -> None:
    """Run only when a core is otherwise idle (Linux ``SCHED_IDLE``), else at nice 19."""
    if hasattr(os, "sched_setscheduler") and hasattr(os, "SCHED_IDLE"):
        with contextlib.suppress(OSError):
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
            return
    with contextlib.suppress(OSError, AttributeError):
        os.nice(19)


def exit_at_end_of_input() -> None:
    """The server closes our standard input when it goes (or the system does for it)."""
    try:
        while sys.stdin.buffer.read(4096):
            pass
    finally:
        os._exit(0)


def die_with_parent(parent: int | None = None) -> None:
    """End this process when its parent ends, even by SIGKILL: Linux's parent-death signal,
    and elsewhere (or as well) a thread that watches the parent's pid. ``parent``: the pid
    expected (the parent may have ended before this ran)."""
    expected = os.getppid() if parent is None else parent
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != expected:
        os._exit(0)

    def watch() -> None:
        while os.getppid() == expected:
            time.sleep(PARENT_POLL_S)
        os._exit(0)

    threading.Thread(target=watch, name="nearline-parent-watch", daemon=True).start()
