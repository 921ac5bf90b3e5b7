"""One worker thread runs engine jobs one at a time, newest work first.

- A foreground job for a document supersedes that document's earlier foreground jobs: queued
  ones are dropped unrun, a running one sees its cancel flag within one engine step.
- Background jobs (warm-up, carrying a suggestion on) run only when no foreground job waits,
  and any foreground job cancels them.
- ``cancel_background`` (a new rest of the cursor) cancels them too, but for those it is told to
  keep (the carry-on of the suggestion shown where the cursor rests).
"""

from __future__ import annotations

import enum
import itertools
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


class Priority(enum.IntEnum):
    LOAD = -1
    FOREGROUND = 0
    BACKGROUND = 1


class CancelFlag(threading.Event):
    """A job's cancel flag. ``set`` also runs the hooks an engine added while a job runs, so
    that work inside a C call (llama.cpp's decode) can stop too."""

    def __init__(self) -> None:
        super().__init__()
        self.hooks: list[Callable[[], None]] = []

    def set(self) -> None:
        super().set()
        for hook in list(self.hooks):
            hook()


@dataclass(eq=False)
class Job:
    run: Callable[[threading.Event], Any]
    """Called on the worker thread with the job's cancel flag; its result resolves ``future``."""
    key: str = ""
    priority: Priority = Priority.FOREGROUND
    cancel_event: threading.Event = field(default_factory=CancelFlag)
    future: Future[Any] = field(default_factory=Future)
    seq: int = 0
    place: tuple[int, int] | None = None
    """A carry-on's cursor (line, code point): a rest there keeps it."""

    def cancel(self) -> None:
        self.cancel_event.set()
        self.future.cancel()  # no-op once running; the flag stops it


class Scheduler:
    def __init__(self, name: str = "nearline-engine") -> None:
        self._pending: list[Job] = []
        self._running: Job | None = None
        self._cv = threading.Condition()
        self._seq = itertools.count()
        self._closed = False
        self._busy = False
        self.on_busy: Callable[[bool], None] | None = None
        """Called on the engine thread when it starts working (True) and when it has nothing
        left to do (False)."""
        self.dropped = 0
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> Future[Any]:
        with self._cv:
            if self._closed:
                job.future.cancel()
                return job.future
            job.seq = next(self._seq)
            if job.priority is Priority.FOREGROUND:
                for other in [*self._pending, self._running]:
                    if other is None:
                        continue
                    if other.priority is Priority.BACKGROUND or (
                        other.priority is Priority.FOREGROUND and other.key == job.key
                    ):
                        other.cancel()
            self._pending.append(job)
            self._cv.notify()
        return job.future

    def _next(self) -> Job | None:
        with self._cv:
            while True:
                live = [j for j in self._pending if not j.cancel_event.is_set()]
                self.dropped += len(self._pending) - len(live)
                for job in self._pending:
                    if job.cancel_event.is_set():
                        job.future.cancel()
                self._pending = live
                if self._closed:
                    return None
                if live:
                    job = min(live, key=lambda j: (j.priority, -j.seq))
                    self._pending.remove(job)
                    self._running = job
                    self._set_busy(True)
                    return job
                self._set_busy(False)
                self._cv.wait()

    def _set_busy(self, busy: bool) -> None:
        if busy != self._busy:
            self._busy = busy
            if self.on_busy is not None:
                try:
                    self.on_busy(busy)
                except Exception:  # a hook's failure is not the engine's
                    log.exception("scheduler busy hook failed")

    def _loop(self) -> None:
        while (job := self._next()) is not None:
            if job.future.set_running_or_notify_cancel():
                try:
                    job.future.set_result(job.run(job.cancel_event))
                except BaseException as exc:  # the job's own error goes to its caller
                    job.future.set_exception(exc)
            with self._cv:
                self._running = None

    def cancel_background(self, keep: Callable[[Job], bool] | None = None) -> None:
        """Cancel every background job, queued or running, but those ``keep`` says to keep."""
        with self._cv:
            for job in [*self._pending, self._running]:
                if job is None or job.priority is not Priority.BACKGROUND:
                    continue
                if keep is None or not keep(job):
                    job.cancel()
            self._cv.notify()

    @property
    def busy(self) -> bool:
        """Whether the engine thread is working (what ``on_busy`` said last)."""
        return self._busy

    def idle(self) -> bool:
        with self._cv:
            return self._running is None and not self._pending

    def close(self) -> None:
        with self._cv:
            self._closed = True
            for job in self._pending:
                job.cancel()
            if self._running is not None:
                self._running.cancel()
            self._cv.notify()
        self._thread.join(timeout=5)
