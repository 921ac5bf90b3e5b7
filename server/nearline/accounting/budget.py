"""Budgets, spending anomalies and runaway loops. Pure rules over numbers the ledger gives;
nothing here reads the database or talks to the editor.

Budgets apply to escalations sent off this machine: autocomplete is never blocked."""

from __future__ import annotations

import collections
import datetime as dt
import time
from collections.abc import Hashable, Iterator, Mapping
from dataclasses import dataclass

from nearline.accounting.ledger import Spend, Spending
from nearline.config import AlertSettings, BudgetSettings, Caps

WINDOW_DAYS = 7


@dataclass(frozen=True)
class Limit:
    scope: str
    """"project" or "user"."""
    period: str
    """"daily" or "monthly"."""
    unit: str
    """"usd" or "tokens"."""
    cap: float
    used: float

    def describe(self) -> str:
        whose = "this project's" if self.scope == "project" else "your"
        return f"{whose} {self.period} {'budget' if self.unit == 'usd' else 'token budget'}"

    def amount(self, value: float) -> str:
        return f"${value:,.2f}" if self.unit == "usd" else f"{int(value):,} tokens"


@dataclass(frozen=True)
class Verdict:
    exceeded: Limit | None = None
    """The first budget this request would pass; None when it fits."""
    message: str = ""
    """Why the request is refused or downgraded, and when the budget resets."""
    warnings: tuple[tuple[str, str], ...] = ()
    """(key, message) for budgets past the soft threshold; the key names the period, so the
    editor is warned once per budget and period."""


def reset_time(period: str, now: float) -> dt.datetime:
    today = dt.datetime.fromtimestamp(now).date()
    if period == "daily":
        day = today + dt.timedelta(days=1)
    else:
        day = (today.replace(day=1) + dt.timedelta(days=32)).replace(day=1)
    return dt.datetime.combine(day, dt.time())


def _period_key(period: str, now: float) -> str:
    today = dt.datetime.fromtimestamp(now).date()
    return today.isoformat() if period == "daily" else today.isoformat()[:7]


def _limits(settings: BudgetSettings, spending: Spending) -> Iterator[Limit]:
    spends: Mapping[tuple[str, str], Spend] = {
        ("project", "daily"): spending.project_day,
        ("project", "monthly"): spending.project_month,
        ("user", "daily"): spending.user_day,
        ("user", "monthly"): spending.user_month,
    }
    for scope, caps in (("project", settings.project), ("user", settings.user)):
        for period in ("daily", "monthly"):
            spend = spends[(scope, period)]
            usd, tokens = _caps(caps, period)
            if usd is not None:
                yield Limit(scope, period, "usd", usd, spend.usd)
            if tokens is not None:
                yield Limit(scope, period, "tokens", tokens, spend.cloud_tokens)


def _caps(caps: Caps, period: str) -> tuple[float | None, int | None]:
    if period == "daily":
        return caps.daily_usd, caps.daily_tokens
    return caps.monthly_usd, caps.monthly_tokens


def check(
    settings: BudgetSettings,
    spending: Spending,
    *,
    est_usd: float,
    est_tokens: int,
    now: float | None = None,
) -> Verdict:
    """Whether a cloud request estimated at ``est_usd`` and ``est_tokens`` fits the budgets."""
    now = time.time() if now is None else now
    warnings = []
    for limit in _limits(settings, spending):
        estimate = est_usd if limit.unit == "usd" else est_tokens
        if limit.used + estimate > limit.cap:
            when = reset_time(limit.period, now)
            spent = "spent" if limit.used >= limit.cap else "nearly spent"
            return Verdict(
                exceeded=limit,
                message=(
                    f"{limit.describe()} of {limit.amount(limit.cap)} is {spent} "
                    f"({limit.amount(limit.used)} used, this request ~{limit.amount(estimate)}); "
                    f"it resets {when:%Y-%m-%d %H:%M}"
                ),
            )
        if limit.used >= settings.soft_threshold * limit.cap:
            period = _period_key(limit.period, now)
            key = f"budget:{limit.scope}:{limit.period}:{limit.unit}:{period}"
            share = limit.used / limit.cap if limit.cap else 1.0
            warnings.append(
                (
                    key,
                    f"nearline: {share:.0%} of {limit.describe()} is used "
                    f"({limit.amount(limit.used)} of {limit.amount(limit.cap)}); it resets "
                    f"{reset_time(limit.period, now):%Y-%m-%d %H:%M}",
                )
            )
    return Verdict(warnings=tuple(warnings))


# -- anomalies -----------------------------------------------------------------------------


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
) -> Spike | None:
    """Whether ``day`` spent (or sent) more than ``spike_factor`` times the average of the 7
    days before it, and at least the minimum. ``daily``: day → (USD, cloud tokens).
    ``first_day``: the ledger's first day; the days before it are no history (a first day is
    never a spike, a second one is measured against the first)."""
    date = dt.date.fromisoformat(day)
    before = [(date - dt.timedelta(days=i)).isoformat() for i in range(1, WINDOW_DAYS + 1)]
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
