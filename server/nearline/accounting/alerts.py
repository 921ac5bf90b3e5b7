"""Alerts: spending spikes against the trailing week, and runaway loops. Pure rules over numbers
the ledger gives."""

from __future__ import annotations

import collections
import datetime as dt
import time
from collections.abc import Hashable, Mapping
from dataclasses import dataclass

from nearline.config import AlertSettings

WINDOW_DAYS = 7
"""The trailing days a spike is measured against."""


@dataclass(frozen=True)
class Spike:
    day: str
    unit: str
    """"usd" or "tokens"."""
    value: float
    average: float
    """The trailing daily average (days without requests count as 0)."""
    days: int = WINDOW_DAYS
    """How many days before ``day`` it averages: 7, or fewer in the ledger's first week."""

    def describe(self) -> str:
        if self.unit == "usd":
            now, then = f"spend on {self.day} is ${self.value:,.2f}", f"${self.average:,.2f}"
        else:
            now = f"cloud tokens on {self.day} are {int(self.value):,}"
            then = f"{self.average:,.0f}"
        if not self.average:
            before = "the day before" if self.days == 1 else f"the {self.days} days before"
            return f"{now}; {before} had none"
        span = "the day before's" if self.days == 1 else f"the {self.days}-day average of"
        return f"{now}, {self.value / self.average:.1f}x {span} {then}"


def spike(
    day: str,
    daily: Mapping[str, tuple[float, int]],
    settings: AlertSettings,
    first_day: str | None = None,
    *,
    window: int = WINDOW_DAYS,
) -> Spike | None:
    """Whether ``day`` spent (or sent) more than ``spike_factor`` times the average of the
    ``window`` days before it, and at least the minimum. ``daily``: day → (USD, cloud tokens).
    ``first_day``: the ledger's first day; the days before it are no history (a first day is
    never a spike, a second one is measured against the first)."""
    date = dt.date.fromisoformat(day)
    before = [(date - dt.timedelta(days=i)).isoformat() for i in range(1, window + 1)]
    if first_day is not None:
        before = [d for d in before if d >= first_day]
    if not before:
        return None
    usd, tokens = daily.get(day, (0.0, 0))
    avg_usd = sum(daily.get(d, (0.0, 0))[0] for d in before) / len(before)
    avg_tokens = sum(daily.get(d, (0.0, 0))[1] for d in before) / len(before)
    if usd >= settings.spike_min_usd and usd > settings.spike_factor * avg_usd:
        return Spike(day, "usd", usd, avg_usd, len(before))
    if tokens >= settings.spike_min_tokens and tokens > settings.spike_factor * avg_tokens:
        return Spike(day, "tokens", float(tokens), avg_tokens, len(before))
    return None


class LoopGuard:
    """Stops a runaway loop: the same request more than ``loop_max_requests`` times within
    ``loop_window_minutes``."""

    def __init__(self) -> None:
        self._seen: dict[Hashable, collections.deque[float]] = {}

    def check(self, key: Hashable, settings: AlertSettings, now: float | None = None) -> str | None:
        """Note one more request for ``key``; a message when it is one too many, else None."""
        now = time.monotonic() if now is None else now
        window = settings.loop_window_minutes * 60
        times = self._seen.setdefault(key, collections.deque())
        while times and now - times[0] > window:
            times.popleft()
        if len(times) >= settings.loop_max_requests:
            wait = window - (now - times[0])
            return (
                f"the same request was made {len(times)} times in the last "
                f"{settings.loop_window_minutes:g} minutes; stopped as a runaway loop "
                f"(try again in {max(1, round(wait / 60))} min, or change "
                "alerts.loop_max_requests)"
            )
        times.append(now)
        if len(self._seen) > 1024:  # forget keys idle for a whole window
            for k in [k for k, t in self._seen.items() if not t or now - t[-1] > window]:
                del self._seen[k]
        return None
