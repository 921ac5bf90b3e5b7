"""The usage dashboard's model (``nearline dashboard``): besides the report ``usage --json``
prints, spend per day stacked by tier or tool, each monthly budget with the day it runs out at
the current rate, what each lever saved, acceptance per model and per developer, the anomalies
and the requests behind the figures.

Pure: the local ledger's rows (``app.dashboard``) and the team database's sums
(``accounting.team.views``) are turned into these by the functions here.
"""

from __future__ import annotations

import calendar
import datetime as dt
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nearline.accounting.prices import Price, Tokens
from nearline.accounting.report.model import AcceptanceFigures, PriceFor, ratio

TOKEN_KEYS = ("input_tokens", "cache_read_tokens", "cache_write_tokens", "output_tokens")
STACKS = ("tier", "client")
"""What the daily bars are stacked by: tier, or tool (the ``client`` column)."""
REQUEST_COLUMNS = (
    "time",
    "developer",
    "project",
    "tool",
    "task",
    "tier",
    "model",
    "outcome",
    "requests",
    "shown",
    "accepted",
    "input",
    "cache read",
    "cache write",
    "output",
    "cost usd",
)
"""The requests table's columns, as shown and as its CSV has them."""


@dataclass(frozen=True)
class Slice:
    """One day's requests of one tier or tool."""

    day: str
    part: str
    tokens: int
    cost_usd: float


@dataclass(frozen=True)
class ModelSums:
    """Tokens and cost of the requests of one tier, provider and model (``cloud``: sent off
    the machine)."""

    tier: str
    provider: str
    model: str
    cloud: bool
    tokens: Tokens
    cost_usd: float
    imported: bool = False
    """Another tool's requests (``nearline usage import``): no lever of nearline's."""

    @property
    def uncached(self) -> Tokens:
        t = self.tokens
        return Tokens(input=t.input + t.cache_read + t.cache_write, output=t.output)


@dataclass(frozen=True)
class Lever:
    name: str
    saved_usd: float | None
    """None: the ledger cannot tell (``note`` says why)."""
    note: str


@dataclass(frozen=True)
class Budget:
    """A cap against what was spent in its period (a month: with the run-out day)."""

    scope: str
    """"you", "this project", "team", "developer" or "project"."""
    name: str
    period: str
    """"daily" or "monthly"."""
    cap_usd: float
    spent_usd: float
    run_out: str | None
    """The day the cap is reached at the month's rate so far (a day already past: it was);
    None when that is after the month ends (or for a daily cap)."""

    @property
    def share(self) -> float:
        return self.spent_usd / self.cap_usd if self.cap_usd else math.inf


@dataclass(frozen=True)
class Suggestions(AcceptanceFigures):
    """Suggestions shown and taken, for one model or one developer."""

    key: str
    shown: int
    accepted: int
    chars_accepted: int
    cost_usd: float


@dataclass(frozen=True)
class Flag:
    """An anomaly, with the filters that show the requests behind it."""

    day: str
    message: str
    narrow: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Dashboard:
    source: str
    """"local" (this machine's ledger) or "team" (the team database)."""
    filters: Mapping[str, str]
    """The page's query (``app.dashboard.Filters.query``)."""
    since: str
    until: str
    report: Mapping[str, Any]
    """What ``nearline usage --json`` prints for the same window and filters."""
    stack: str
    slices: tuple[Slice, ...]
    budgets: tuple[Budget, ...]
    levers: tuple[Lever, ...]
    naive_usd: float
    """Every request at the flagship's price, nothing cached: where the levers start."""
    cost_usd: float
    cache_hit_share: float | None
    """The cloud requests' input read from the provider's cache."""
    by_model: tuple[Suggestions, ...]
    by_developer: tuple[Suggestions, ...]
    flags: tuple[Flag, ...]
    requests: tuple[tuple[Any, ...], ...]
    """The newest requests (``REQUEST_COLUMNS``); completion buckets count theirs."""
    more_requests: bool
    choices: Mapping[str, tuple[str, ...]]
    """Each filter's values seen in the window."""

    @property
    def total(self) -> Mapping[str, Any]:
        """The report's total (``total`` in this machine's, ``totals`` in the team's)."""
        found = self.report.get("total") or self.report.get("totals") or {}
        return dict(found)


# -- levers -----------------------------------------------------------------------------------


def levers(
    sums: Iterable[ModelSums], flag: Price, price_for: PriceFor
) -> tuple[float, list[Lever]]:
    """The naive bill (every request on the flagship, nothing cached) and the steps from it to
    what was paid: the local model (local requests at their cost), routing (each cloud request
    on its own model, uncached) and provider caching (what it was billed). They add up to the
    naive bill less the actual one. Other tools' requests enter the naive bill at their cost."""
    naive = local = routing = caching = 0.0
    for s in sums:
        if s.imported:
            naive += s.cost_usd
            continue
        at_flagship = flag.cost(s.uncached)
        naive += at_flagship
        if not s.cloud:
            local += at_flagship - s.cost_usd
            continue
        own = price_for(s.provider, s.model)
        uncached = own.cost(s.uncached) if own is not None else s.cost_usd
        routing += at_flagship - uncached
        caching += uncached - s.cost_usd
    return naive, [
        Lever("local model", local, "local requests instead of the flagship"),
        Lever("routing", routing, "cloud requests on the model their rule chose"),
        Lever("provider caching", caching, "cache reads and writes as billed"),
        Lever(
            "diffs",
            None,
            "not in the ledger (it records the diff's tokens, not the whole files an answer "
            "without diffs would have written): scripts/bench_costs.py measures it",
        ),
    ]


def cloud_cache_share(sums: Iterable[ModelSums]) -> float | None:
    cloud = [s.tokens for s in sums if s.cloud and not s.imported]
    read = sum(t.cache_read for t in cloud)
    return ratio(read, sum(t.input + t.cache_read + t.cache_write for t in cloud))


# -- budgets ----------------------------------------------------------------------------------


def month_of(day: dt.date) -> tuple[dt.date, dt.date]:
    """The month's first and last day."""
    last = calendar.monthrange(day.year, day.month)[1]
    return day.replace(day=1), day.replace(day=last)


def run_out(spent: float, cap: float, asof: dt.date) -> str | None:
    """The day a monthly ``cap`` is reached at the rate spent from the 1st to ``asof``; None
    when that is after the month's end (or nothing was spent)."""
    first, last = month_of(asof)
    if spent >= cap:
        return asof.isoformat()
    days = (asof - first).days + 1
    rate = spent / days
    if rate <= 0:
        return None
    day = asof + dt.timedelta(days=math.ceil((cap - spent) / rate - 1e-9))
    return day.isoformat() if day <= last else None


def budget(scope: str, name: str, period: str, cap: float, spent: float, asof: dt.date) -> Budget:
    found = run_out(spent, cap, asof) if period == "monthly" else None
    return Budget(scope, name, period, cap, spent, found)


# -- suggestions ------------------------------------------------------------------------------


def add_suggestions(key: str, parts: Iterable[Suggestions]) -> Suggestions:
    items = list(parts)
    return Suggestions(
        key,
        sum(p.shown for p in items),
        sum(p.accepted for p in items),
        sum(p.chars_accepted for p in items),
        math.fsum(p.cost_usd for p in items),
    )


def ranked(items: Iterable[Suggestions]) -> tuple[Suggestions, ...]:
    """Most shown first."""
    return tuple(sorted(items, key=lambda s: (-s.shown, -s.cost_usd, s.key)))


def cell_text(value: Any) -> str:
    """A requests table cell as the page and its CSV both show it."""
    return f"{value:.6f}" if isinstance(value, float) else str(value)


# -- the filters of a link --------------------------------------------------------------------


def day_link(day: str, narrow: Mapping[str, str] | None = None) -> dict[str, str]:
    """The filters that show one day's requests (and ``narrow``'s)."""
    return {**(narrow or {}), "since": day, "until": day, "period": "day"}


def stacked_days(slices: Sequence[Slice]) -> list[tuple[str, list[Slice]]]:
    """The slices per day, days in order."""
    out: dict[str, list[Slice]] = {}
    for s in slices:
        out.setdefault(s.day, []).append(s)
    return sorted(out.items())


# -- JSON -------------------------------------------------------------------------------------


def _suggestions_dict(s: Suggestions) -> dict[str, Any]:
    return {
        "key": s.key,
        "shown": s.shown,
        "accepted": s.accepted,
        "acceptance_rate": _r(s.acceptance_rate),
        "chars_accepted": s.chars_accepted,
        "cost_usd": _r(s.cost_usd),
        "cost_per_accepted_usd": _r(s.cost_per_accepted),
    }


def dashboard_dict(d: Dashboard) -> dict[str, Any]:
    """The page's figures as JSON (``report``: what ``usage --json`` prints)."""
    return {
        "source": d.source,
        "filters": dict(d.filters),
        "since": d.since,
        "until": d.until,
        "report": d.report,
        "stack": d.stack,
        "days": [
            {"day": s.day, d.stack: s.part, "tokens": s.tokens, "cost_usd": _r(s.cost_usd)}
            for s in d.slices
        ],
        "budgets": [
            {
                "scope": b.scope,
                "name": b.name,
                "period": b.period,
                "cap_usd": b.cap_usd,
                "spent_usd": _r(b.spent_usd),
                "share": _r(b.share),
                "run_out": b.run_out,
            }
            for b in d.budgets
        ],
        "savings": {
            "naive_usd": _r(d.naive_usd),
            "cost_usd": _r(d.cost_usd),
            "levers": [
                {"name": v.name, "saved_usd": _r(v.saved_usd), "note": v.note} for v in d.levers
            ],
            "cache_hit_share": _r(d.cache_hit_share),
        },
        "suggestions": {
            "by_model": [_suggestions_dict(s) for s in d.by_model],
            "by_developer": [_suggestions_dict(s) for s in d.by_developer],
        },
        "anomalies": [
            {"day": f.day, "message": f.message, "filters": dict(f.narrow)} for f in d.flags
        ],
        "requests": {
            "columns": list(REQUEST_COLUMNS),
            "rows": [list(r) for r in d.requests],
            "more": d.more_requests,
        },
        "choices": {k: list(v) for k, v in d.choices.items()},
    }


def _r(value: float | None) -> float | None:
    return None if value is None or math.isinf(value) else round(value, 6)
