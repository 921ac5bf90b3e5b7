"""A worker process of the server's (``python -m MODULE``): given one JSON line on its standard
input, it prints JSON lines back. Its own process group, so pausing (``hold``) and killing
(``stop``) reach whatever it started; it ends with the server however the server ends (the
child's side: ``nearline.index.process``)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

STOP_WAIT_S = 0.5
"""How long a killed child is waited for (to reap it)."""


class Child:
    """Runs one child at a time; ``hold`` pauses it (and the next one, from its start)."""

    def __init__(self, module: str, pause: signal.Signals = signal.SIGSTOP) -> None:
        self.module = module
        self.pause = pause
        """What ``hold`` sends: SIGSTOP, or SIGTSTP to a child that stops itself where it may
        (not while it holds a database's lock)."""
        self.process: subprocess.Popen[bytes] | None = None
        self.stopped = threading.Event()
        self._held = False
        self._lock = threading.Lock()

    def run(self, job: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        """Start the child with ``job`` and yield each JSON object it prints, until it ends.
        Call it on a thread that lives as long as the child (Linux sends the parent-death
        signal when the thread that started a child ends)."""
        if self.stopped.is_set():
            return
        process = subprocess.Popen(
            [sys.executable, "-m", self.module],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=child_env(),
            start_new_session=True,  # its group: the child and its own, signalled at once
        )
        with self._lock:
            self.process = process
            if self.stopped.is_set():
                signal_group(process, signal.SIGKILL)
            elif self._held:
                signal_group(process, self.pause)
        assert process.stdin is not None and process.stdout is not None
        with contextlib.suppress(OSError):
            process.stdin.write(json.dumps(dict(job)).encode() + b"\n")
            process.stdin.flush()  # stdin stays open: its end tells the child we are gone
        for line in process.stdout:
            with contextlib.suppress(ValueError):
                found = json.loads(line)
                if isinstance(found, dict):
                    yield found
        process.wait()
        with contextlib.suppress(OSError):
            process.stdin.close()

    def stop(self) -> None:
        """End the child now (its process group is killed), and any started later."""
        with self._lock:
            self.stopped.set()
            process = self.process
        if process is None or process.poll() is not None:
            return
        signal_group(process, signal.SIGKILL)
        with contextlib.suppress(OSError):
            process.kill()  # where it could not have a group of its own
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(STOP_WAIT_S)

    def hold(self, busy: bool) -> None:
        """Pause the child while the engine works (SIGSTOP to its group), and let it go on
        after (SIGCONT). Any other process on the cores slows llama.cpp's threads several
        times over, whatever its priority (measured on 2 cores: keystroke p50 200 ms alone,
        600-1200 ms beside a build at SCHED_IDLE, nice 19 or normal priority), so children
        run only while the engine rests."""
        with self._lock:
            self._held = busy
            process = self.process
            if process is not None and process.poll() is None and not self.stopped.is_set():
                signal_group(process, self.pause if busy else signal.SIGCONT)


def signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(OSError):
        os.killpg(process.pid, sig)


def child_env() -> dict[str, str]:
    """The server's environment, with this ``nearline`` importable in the child."""
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[2])
    paths = [package_root, *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env
