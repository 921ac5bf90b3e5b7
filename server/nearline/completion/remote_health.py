"""Whether to ask the completion server at all: a circuit breaker over its recent answers.

It opens after ``failures`` errors in a row, or when most of the last ``window`` requests
missed the keystroke's budget (a server too slow to help is as good as down); while it is open
only the local model answers, and one probe at a time (after ``cooldown_s``) may close it. A
server that says it is busy (503, no free slot) is not down: it is skipped for ``busy_s``
without counting as a failure."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from nearline.vocab import StrEnum


class RemoteState(StrEnum):
    CLOSED = "closed"
    """Asked on every keystroke."""
    OPEN = "open"
    """Not asked: it failed or was too slow; a probe may close it after the cooldown."""
    BUSY = "busy"
    """Not asked for a moment: it said it has no free slot."""


@dataclass
class RemoteBreaker:
    failures: int = 3
    window: int = 20
    missed_share: float = 0.5
    """Open when more than this share of the last ``window`` answers missed the budget."""
    cooldown_s: float = 10.0
    busy_s: float = 2.0
    clock: Callable[[], float] = time.monotonic
    _errors: int = 0
    _recent: deque[bool] = field(default_factory=deque)
    """True for each recent answer that came within the budget."""
    _opened_at: float | None = None
    _busy_until: float = 0.0
    _probing: bool = False
    reason: str = ""
    """Why it is open (for ``nearline/stats`` and the status line)."""

    @property
    def state(self) -> RemoteState:
        if self._opened_at is not None:
            return RemoteState.OPEN
        if self.clock() < self._busy_until:
            return RemoteState.BUSY
        return RemoteState.CLOSED

    def allow(self) -> bool:
        """Ask the server for this keystroke?"""
        return self.state is RemoteState.CLOSED

    def probe_due(self) -> bool:
        """Open, cooled down, and no probe out: the caller probes and reports it."""
        if self._opened_at is None or self._probing:
            return False
        if self.clock() - self._opened_at < self.cooldown_s:
            return False
        self._probing = True
        return True

    def probed(self, ok: bool) -> None:
        self._probing = False
        if ok:
            self._close()
        else:
            self._opened_at = self.clock()  # another cooldown

    def answered(self, in_budget: bool) -> None:
        self._errors = 0
        self._recent.append(in_budget)
        while len(self._recent) > self.window:
            self._recent.popleft()
        missed = sum(1 for ok in self._recent if not ok)
        if len(self._recent) >= self.window and missed > self.missed_share * self.window:
            self._open(f"{missed} of its last {self.window} answers missed the budget")

    def failed(self, message: str, *, busy: bool = False) -> None:
        if busy:
            self._busy_until = self.clock() + self.busy_s
            return
        self._errors += 1
        if self._errors >= self.failures:
            self._open(f"{self._errors} errors in a row: {message}")

    def _open(self, reason: str) -> None:
        if self._opened_at is None:
            self._opened_at = self.clock()
            self.reason = reason

    def _close(self) -> None:
        self._opened_at = None
        self._errors = 0
        self._recent.clear()
        self.reason = ""
