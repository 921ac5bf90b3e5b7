"""The usage report's model: ledger rows grouped per day, week, month, model, tier, project or
task, with what the same requests would have cost on the flagship and the days that spiked.

``build_report`` is pure over ledger rows; ``text``, ``export`` and ``html`` only format the
``Report`` it returns. "Saved" prices every request's tokens (local ones too) at the configured
flagship model; another tool's imported request saved nothing (nearline did not route it).
"""

from __future__ import annotations

import collections
import datetime as dt
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from nearline.accounting.alerts import spike
from nearline.accounting.prices import (
    Price,
    PriceTable,
    Tokens,
    as_cloud_request,
    flagship,
    provider_price,
    table_for,
)
from nearline.config import Settings
from nearline.errors import ConfigError
from nearline.tasks import AUTOCOMPLETE, IMPORTED

T = TypeVar("T")

Row = Mapping[str, Any]
PERIODS = ("day", "week", "month")
GROUPINGS = ("model", "tier", "project", "task", "client")
DEFAULT_DAYS = 30
FROM_CACHE = ("served-from-cache", "typed-through")
"""Completion outcomes that ran no model."""
NONE = "(none)"
TOKEN_COLUMNS = ("input_tokens", "cache_read_tokens", "cache_write_tokens", "output_tokens")
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


class AcceptanceFigures:
    """Acceptance and what each accepted suggestion cost, for a record with these fields."""

    shown: int
    accepted: int
    cost_usd: float

    @property
    def acceptance_rate(self) -> float | None:
        return ratio(self.accepted, self.shown)

    @property
    def cost_per_accepted(self) -> float | None:
        return ratio(self.cost_usd, self.accepted)


@dataclass(frozen=True)
class Group(AcceptanceFigures):
    """The requests of one day, week, month, model, tier, project or task."""

    key: str
    requests: int
    input_tokens: int
    """Uncached input."""
    output_tokens: int
    cache_write_tokens: int
    cache_read_tokens: int
    cost_usd: float
    flagship_cost_usd: float
    """What the same tokens cost at the flagship's prices."""
    shown: int
    """Completions shown to the person."""
    accepted: int
    completions: int
    from_cache: int
    """Completions served from the cache or typed through (no model ran)."""
    cost_by_tier: Mapping[str, float]
    anomaly: str | None = None
    cache_by_tier: Mapping[str, float | None] = field(default_factory=dict)
    """Tier → share of its input tokens read from a cache (the provider's; for the local tier,
    llama.cpp's KV cache)."""
    cache_saved_usd: float = 0.0
    """What provider prompt caching saved: cache reads at the full input price minus what they
    cost, minus the premium paid for cache writes (each at its model's prices)."""
    cache_write_1h_tokens: int = 0
    """The part of ``cache_write_tokens`` kept an hour (priced at its own rate)."""

    @property
    def total_tokens(self) -> int:
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_write_tokens
            + self.cache_read_tokens
        )

    @property
    def saved_usd(self) -> float:
        return self.flagship_cost_usd - self.cost_usd

    @property
    def cache_hit_share(self) -> float | None:
        """Share of input tokens read from the provider's cache."""
        return cache_read_share(self.input_tokens, self.cache_read_tokens, self.cache_write_tokens)

    @property
    def completion_cache_share(self) -> float | None:
        return ratio(self.from_cache, self.completions)


@dataclass(frozen=True)
class Anomaly:
    day: str
    message: str


@dataclass(frozen=True)
class ToolTotals:
    """A tool that reports daily aggregates, not requests (Copilot), summed over the window;
    kept apart from nearline's own suggestions."""

    source: str
    days: int
    suggestions: int
    acceptances: int
    lines_suggested: int
    lines_accepted: int
    chats: int

    @property
    def acceptance_rate(self) -> float | None:
        return ratio(self.acceptances, self.suggestions)


def one_view(days: Sequence[Row]) -> list[Row]:
    """A tool's day as one report tells it: the organisation's (rows of no user) where there
    is one, else its users' (both are of the same work: added up, it would count twice)."""
    org = {(d["source"], d["day"]) for d in days if not d.get("user")}
    return [d for d in days if not d.get("user") or (d["source"], d["day"]) not in org]


def tool_totals(days: Sequence[Row], since: str, until: str) -> tuple[ToolTotals, ...]:
    inside = one_view([d for d in days if since <= str(d["day"]) <= until])
    return tuple(
        ToolTotals(
            source,
            days=len({d["day"] for d in ds}),
            suggestions=_sum(ds, "suggestions"),
            acceptances=_sum(ds, "acceptances"),
            lines_suggested=_sum(ds, "lines_suggested"),
            lines_accepted=_sum(ds, "lines_accepted"),
            chats=_sum(ds, "chats"),
        )
        for source, ds in sorted(bucket(inside, lambda d: str(d["source"])).items())
    )


@dataclass(frozen=True)
class Report:
    since: str
    until: str
    period: str
    """"day", "week" or "month"; ignored when ``by`` is set."""
    by: str | None
    """One of ``GROUPINGS``; None: group by ``period``."""
    project: str | None
    flagship_model: str
    flagship_price: Price
    groups: tuple[Group, ...]
    total: Group
    days: tuple[Group, ...]
    """Per day whatever the grouping, for the charts."""
    tokens_by_model: tuple[tuple[str, int], ...]
    anomalies: tuple[Anomaly, ...]
    warnings: tuple[str, ...] = ()
    """What makes a figure doubtful (a flagship without a price)."""
    tools: tuple[ToolTotals, ...] = ()
    """Other tools' daily aggregates (``nearline usage import copilot``)."""


# -- the report ----------------------------------------------------------------------------


def parse_day(text: str, flag: str) -> dt.date:
    try:
        if _DAY.fullmatch(text):
            return dt.date.fromisoformat(text)
    except ValueError:
        pass
    raise ConfigError(f"{flag}: expected a date as YYYY-MM-DD, got {text!r}")


def window(
    since: str | None, until: str | None, today: dt.date, period: str = "day"
) -> tuple[dt.date, dt.date]:
    """The days reported: ``until`` (default today) back to ``since``; by default
    ``DEFAULT_DAYS`` days, or, by week or month, from the start of the week or month that
    began ``DEFAULT_DAYS`` days ago (no week or month shown in part but the current one)."""
    last = parse_day(until, "--until") if until else today
    if since:
        first = parse_day(since, "--since")
    else:
        first = last - dt.timedelta(days=DEFAULT_DAYS - 1)
        if period == "week":
            first -= dt.timedelta(days=first.weekday())
        elif period == "month":
            first = first.replace(day=1)
    if first > last:
        raise ConfigError(f"--since {first} is after --until {last}")
    return first, last


def period_key(day: str, period: str) -> str:
    """``2026-11-23``, its ISO week ``2026-W48``, or its month ``2026-11``."""
    if period == "week":
        year, week, _ = dt.date.fromisoformat(day).isocalendar()
        return f"{year}-W{week:02d}"
    return day[:7] if period == "month" else day


def key_of(row: Row, period: str, by: str | None) -> str:
    if by == "project":
        return str(row.get("project_root") or row.get("project") or NONE)
    if by is not None:
        return str(row.get(by) or NONE)
    return period_key(str(row["day"]), period)


def project_labels(rows: Iterable[Row]) -> dict[str, str]:
    """Project root → its name, or, where two roots share a name, the root itself."""
    names = {key_of(r, "day", "project"): str(r.get("project") or "") for r in rows}
    taken = collections.Counter(names.values())
    return {root: name if name and taken[name] == 1 else root for root, name in names.items()}


def _sum(rows: Iterable[Row], column: str) -> int:
    return sum(int(r.get(column) or 0) for r in rows)


def _all_tokens(rows: Sequence[Row]) -> int:
    return sum(_sum(rows, c) for c in TOKEN_COLUMNS)


def _usd(rows: Iterable[Row]) -> float:
    return math.fsum(float(r.get("cost_usd") or 0) for r in rows)


def _sum_tokens(items: Iterable[Tokens]) -> Tokens:
    parts = list(items)
    return Tokens(
        input=sum(t.input for t in parts),
        cache_read=sum(t.cache_read for t in parts),
        cache_write=sum(t.cache_write for t in parts),
        output=sum(t.output for t in parts),
        cache_write_1h=sum(t.cache_write_1h for t in parts),
    )


def bucket(rows: Iterable[Row], key: Callable[[Row], str]) -> dict[str, list[Row]]:
    out: dict[str, list[Row]] = {}
    for row in rows:
        out.setdefault(key(row), []).append(row)
    return out


def ratio(part: float, whole: float) -> float | None:
    """``part / whole``; None when ``whole`` is 0 (a share of nothing is no figure)."""
    return part / whole if whole else None


def cache_read_share(input_tokens: int, cache_read: int, cache_write: int) -> float | None:
    """The share of input tokens read from a cache."""
    return ratio(cache_read, input_tokens + cache_read + cache_write)


def hit_share(rows: Sequence[Row]) -> float | None:
    return cache_read_share(
        _sum(rows, "input_tokens"),
        _sum(rows, "cache_read_tokens"),
        _sum(rows, "cache_write_tokens"),
    )


PriceOf = Callable[[Row], "Price | None"]
"""A row's prices (its provider's, else its model's), None when unknown."""
PriceFor = Callable[[str, str], "Price | None"]
"""(provider, model) → its prices: the configured provider's, else the model's in the table;
None when unknown."""


def prices_for(settings: Settings, table: PriceTable) -> PriceFor:
    def price_for(provider: str, model: str) -> Price | None:
        found = settings.providers.get(provider)
        return provider_price(found, table) if found is not None else table.get(model)

    return price_for


def cache_saved(rows: Iterable[Row], price_of: PriceOf) -> float:
    """USD provider caching saved on the cloud rows: reads at the full input price minus
    their price, minus the write premium (writes at their price minus the input price)."""
    saved = 0.0
    for r in rows:
        p = price_of(r) if r.get("cloud") else None
        if p is None:
            continue
        read = p.cache_read_input_token_cost
        write = p.cache_creation_input_token_cost
        hour = p.cache_creation_input_token_cost_above_1hr
        full = p.input_cost_per_token
        hours = int(r.get("cache_write_1h_tokens") or 0)
        saved += int(r.get("cache_read_tokens") or 0) * (full - (full if read is None else read))
        saved -= (int(r.get("cache_write_tokens") or 0) - hours) * (
            (full if write is None else write) - full
        )
        saved -= hours * ((2 * full if hour is None else hour) - full)
    return saved


def summarize(
    key: str,
    rows: Sequence[Row],
    price: Price,
    anomaly: str | None = None,
    price_of: PriceOf | None = None,
) -> Group:
    tokens = Tokens(
        input=_sum(rows, "input_tokens"),
        cache_read=_sum(rows, "cache_read_tokens"),
        cache_write=_sum(rows, "cache_write_tokens"),
        output=_sum(rows, "output_tokens"),
    )
    completions = [r for r in rows if r.get("task") == AUTOCOMPLETE]
    own = [r for r in rows if r.get("task") != IMPORTED]
    shown = [r for r in completions if r.get("accepted") is not None]
    tiers = bucket(rows, lambda r: str(r.get("tier") or NONE))
    return Group(
        key=key,
        requests=len(rows),
        input_tokens=tokens.input,
        output_tokens=tokens.output,
        cache_write_tokens=tokens.cache_write,
        cache_read_tokens=tokens.cache_read,
        cost_usd=_usd(rows),
        # Prices are linear: the sum of the rows' flagship costs is the cost of their sum.
        # Other tools' rows are compared with themselves: nearline did not route them.
        flagship_cost_usd=price.cost(_sum_tokens(as_cloud_request(r) for r in own))
        + _usd(r for r in rows if r.get("task") == IMPORTED),
        shown=len(shown),
        accepted=sum(1 for r in shown if r["accepted"]),
        completions=len(completions),
        from_cache=sum(1 for r in completions if r.get("outcome") in FROM_CACHE),
        cost_by_tier={t: _usd(rs) for t, rs in sorted(tiers.items())},
        anomaly=anomaly,
        cache_by_tier={t: hit_share(rs) for t, rs in sorted(tiers.items())},
        cache_saved_usd=cache_saved(rows, price_of) if price_of is not None else 0.0,
        cache_write_1h_tokens=_sum(rows, "cache_write_1h_tokens"),
    )


def daily_totals(rows: Iterable[Row]) -> dict[str, tuple[float, int]]:
    """Day → (USD, tokens sent off this machine), as ``Ledger.daily`` gives."""
    out: dict[str, tuple[float, int]] = {}
    for day, rs in bucket(rows, lambda r: str(r["day"])).items():
        out[day] = (_usd(rs), _all_tokens([r for r in rs if r.get("cloud")]))
    return out


def find_anomalies(
    rows: Sequence[Row],
    settings: Settings,
    since: str,
    until: str,
    first_day: str | None = None,
) -> list[Anomaly]:
    """Spending spikes on the days from ``since`` to ``until``; ``rows`` should reach
    ``WINDOW_DAYS`` before ``since`` so the first days have their trailing average.
    ``first_day``: the ledger's first day (default: the first of ``rows``); it is no spike."""
    daily = daily_totals(rows)
    first = first_day or min(daily, default=None)
    found = [(day, spike(day, daily, settings.alerts, first)) for day in sorted(daily)]
    return [Anomaly(day, s.describe()) for day, s in found if s and since <= day <= until]


def build_report(
    rows: Sequence[Row],
    settings: Settings,
    *,
    period: str = "day",
    by: str | None = None,
    since: str | None = None,
    until: str | None = None,
    today: dt.date | None = None,
    project: str | None = None,
    first_day: str | None = None,
    tool_days: Sequence[Row] = (),
) -> Report:
    """Group ``rows`` (ledger rows, oldest first) that fall in the window; earlier rows only
    serve as the history anomalies are measured against (``first_day``: where the ledger's
    history begins, when ``rows`` do not reach it)."""
    if period not in PERIODS or by not in (None, *GROUPINGS):
        raise ConfigError(f"cannot group usage by {by or period!r}")
    first, last = window(since, until, today or dt.date.today(), period)
    lo, hi = first.isoformat(), last.isoformat()
    table = table_for(settings)
    model, price = flagship(settings, table)

    price_for = prices_for(settings, table)

    def price_of(row: Row) -> Price | None:
        return price_for(str(row.get("provider") or ""), str(row.get("model") or ""))

    inside = [r for r in rows if lo <= str(r["day"]) <= hi]
    anomalies = find_anomalies(rows, settings, lo, hi, first_day)
    flag_day = {a.day: a.message for a in anomalies}

    def flag(key: str) -> str | None:
        return "; ".join(a.message for a in anomalies if period_key(a.day, period) == key) or None

    buckets = bucket(inside, lambda r: key_of(r, period, by))
    if by == "project":
        labels = project_labels(inside)
        buckets = {labels[k]: rs for k, rs in buckets.items()}
    if by is None:
        grouped = [summarize(k, buckets[k], price, flag(k), price_of) for k in sorted(buckets)]
    else:
        grouped = [summarize(k, rs, price, price_of=price_of) for k, rs in buckets.items()]
        grouped.sort(key=lambda g: (-g.cost_usd, -g.total_tokens, g.key))
    days = bucket(inside, lambda r: str(r["day"]))
    models = bucket(inside, lambda r: str(r.get("model") or NONE))
    return Report(
        since=lo,
        until=hi,
        period=period,
        by=by,
        project=project,
        flagship_model=model,
        flagship_price=price,
        groups=tuple(grouped),
        total=summarize("total", inside, price, price_of=price_of),
        days=tuple(summarize(d, days[d], price, flag_day.get(d)) for d in sorted(days)),
        tokens_by_model=tuple(
            sorted(
                ((m, _all_tokens(rs)) for m, rs in models.items()), key=lambda kv: (-kv[1], kv[0])
            )
        ),
        anomalies=tuple(anomalies),
        warnings=unpriced(model, price),
        tools=tool_totals(tool_days, lo, hi) if project is None else (),
    )


def unpriced(model: str, price: Price) -> tuple[str, ...]:
    if price.input_cost_per_token or price.output_cost_per_token:
        return ()
    return (
        f'{model} has no price, so "saved" compares with nothing: add [prices."{model}"] to '
        ".nearline.toml, run `nearline prices import FILE`, or set usage.flagship_model",
    )
