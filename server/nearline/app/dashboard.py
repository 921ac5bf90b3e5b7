"""``nearline dashboard``'s use cases: the filters a page asks with (they are its URL's query),
and the dashboard of this machine's ledger; ``app.team_dashboard`` reads the team database's."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from nearline.accounting.alerts import WINDOW_DAYS
from nearline.accounting.ledger import ledger_path
from nearline.accounting.ledger.queries import read_first_day, read_rows, read_tool_days
from nearline.accounting.prices import Price, Tokens, flagship, table_for
from nearline.accounting.report import dashboard as board
from nearline.accounting.report.export import report_dict
from nearline.accounting.report.model import (
    PERIODS,
    PriceFor,
    build_report,
    parse_day,
    prices_for,
    window,
)
from nearline.app.project import project_at
from nearline.config import Caps, Settings
from nearline.errors import ConfigError
from nearline.tasks import AUTOCOMPLETE, IMPORTED

NARROW = ("developer", "project", "client", "model", "tier")
"""The filters that narrow which requests count (each a column's value)."""
REQUEST_LIMIT = 200
"""The newest requests the table shows."""
MAX_VALUE = 200

Row = Mapping[str, Any]


@dataclass(frozen=True)
class Filters:
    """What the page shows; every field is a query parameter of its URL."""

    period: str = "day"
    since: str | None = None
    until: str | None = None
    developer: str | None = None
    project: str | None = None
    client: str | None = None
    model: str | None = None
    tier: str | None = None
    stack: str = "tier"

    def narrow(self) -> dict[str, str]:
        return {k: v for k in NARROW if (v := getattr(self, k))}

    def query(self, **changes: str | None) -> dict[str, str]:
        """The URL query of these filters with ``changes``; defaults left out."""
        merged = replace(self, **changes) if changes else self  # type: ignore[arg-type]
        default = Filters()
        return {
            f.name: str(value)
            for f in fields(self)
            if (value := getattr(merged, f.name)) and value != getattr(default, f.name)
        }

    def window(self, today: dt.date) -> tuple[dt.date, dt.date]:
        return window(self.since, self.until, today, self.period)


def parse_filters(query: Mapping[str, str]) -> Filters:
    """The filters of a page's query (other parameters are not ours: left alone);
    ``ConfigError`` names a bad one."""
    period = query.get("period") or "day"
    if period not in PERIODS:
        raise ConfigError(f"period: expected one of {', '.join(PERIODS)}, got {period!r}")
    stack = query.get("stack") or "tier"
    if stack not in board.STACKS:
        raise ConfigError(f"stack: expected one of {', '.join(board.STACKS)}, got {stack!r}")
    days = {k: query.get(k) or None for k in ("since", "until")}
    for name, day in days.items():
        if day is not None:
            parse_day(day, name)
    values: dict[str, str | None] = {}
    for name in NARROW:
        value = (query.get(name) or "").strip() or None
        if value is not None and (len(value) > MAX_VALUE or not value.isprintable()):
            raise ConfigError(f"{name}: expected a name of at most {MAX_VALUE} characters")
        values[name] = value
    found = Filters(period=period, stack=stack, **days, **values)
    found.window(dt.date.today())  # since after until
    return found


# -- this machine's ledger ---------------------------------------------------------------------


def matches(row: Row, narrow: Mapping[str, str]) -> bool:
    for name, value in narrow.items():
        if name == "project":
            if value not in (row.get("project"), row.get("project_root")):
                return False
        elif str(row.get(name) or "") != value:
            return False
    return True


def model_sums(rows: Iterable[Row]) -> list[board.ModelSums]:
    out: dict[tuple[str, str, str, bool, bool], list[Row]] = {}
    for r in rows:
        key = (str(r.get("tier") or ""), str(r.get("provider") or ""), str(r.get("model") or ""))
        out.setdefault((*key, bool(r.get("cloud")), r.get("task") == IMPORTED), []).append(r)
    return [
        board.ModelSums(
            tier,
            provider,
            model,
            cloud,
            Tokens(
                sum(int(r["input_tokens"] or 0) for r in rs),
                sum(int(r["cache_read_tokens"] or 0) for r in rs),
                sum(int(r["cache_write_tokens"] or 0) for r in rs),
                sum(int(r["output_tokens"] or 0) for r in rs),
            ),
            math.fsum(float(r["cost_usd"] or 0) for r in rs),
            imported,
        )
        for (tier, provider, model, cloud, imported), rs in out.items()
    ]


def slices(rows: Iterable[Row], stack: str) -> list[board.Slice]:
    out: dict[tuple[str, str], tuple[int, float]] = {}
    for r in rows:
        key = (str(r["day"]), str(r.get(stack) or ""))
        n, usd = out.get(key, (0, 0.0))
        tokens = sum(int(r.get(c) or 0) for c in board.TOKEN_KEYS)
        out[key] = (n + tokens, usd + float(r.get("cost_usd") or 0))
    return [board.Slice(d, p, n, usd) for (d, p), (n, usd) in sorted(out.items())]


def suggestions_by_model(rows: Iterable[Row]) -> tuple[board.Suggestions, ...]:
    per: dict[str, list[Row]] = {}
    for r in rows:
        per.setdefault(str(r.get("model") or ""), []).append(r)
    found = []
    for model, rs in per.items():
        shown = [r for r in rs if r.get("task") == AUTOCOMPLETE and r.get("accepted") is not None]
        if shown:
            taken = [r for r in shown if r["accepted"]]
            cost = math.fsum(float(r.get("cost_usd") or 0) for r in rs)
            chars = sum(int(r.get("chars") or 0) for r in taken)
            found.append(board.Suggestions(model, len(shown), len(taken), chars, cost))
    return board.ranked(found)


def request_row(r: Row) -> tuple[Any, ...]:
    ts = dt.datetime.fromtimestamp(float(r["ts"]), dt.timezone.utc)
    accepted = r.get("accepted")
    return (
        ts.isoformat(timespec="seconds"),
        "",
        r.get("project") or "",
        r.get("client") or "",
        r.get("task") or "",
        r.get("tier") or "",
        r.get("model") or "",
        r.get("outcome") or "",
        1,
        int(accepted is not None),
        int(bool(accepted)),
        int(r.get("input_tokens") or 0),
        int(r.get("cache_read_tokens") or 0),
        int(r.get("cache_write_tokens") or 0),
        int(r.get("output_tokens") or 0),
        float(r.get("cost_usd") or 0),
    )


def cap_lines(
    scope: str, name: str, caps: Caps, month: float, day: float, asof: dt.date
) -> list[board.Budget]:
    out = []
    if caps.monthly_usd is not None:
        out.append(board.budget(scope, name, "monthly", caps.monthly_usd, month, asof))
    if caps.daily_usd is not None:
        out.append(board.budget(scope, name, "daily", caps.daily_usd, day, asof))
    return out


def local_budgets(
    rows: Sequence[Row], settings: Settings, asof: dt.date, root: str | None, name: str
) -> list[board.Budget]:
    """Your caps and this project's (the folder the dashboard runs in) against the month's and
    ``asof``'s spend sent off this machine."""
    month = asof.replace(day=1).isoformat()
    billed = [r for r in rows if r.get("cloud") and month <= str(r["day"]) <= asof.isoformat()]

    def spent(rs: Iterable[Row]) -> tuple[float, float]:
        items = list(rs)
        today = [r for r in items if str(r["day"]) == asof.isoformat()]
        return math.fsum(float(r["cost_usd"] or 0) for r in items), math.fsum(
            float(r["cost_usd"] or 0) for r in today
        )

    out = cap_lines("you", "", settings.budget.user, *spent(billed), asof)
    if root is not None:
        mine = [r for r in billed if r.get("project_root") == root]
        out += cap_lines("this project", name, settings.budget.project, *spent(mine), asof)
    return out


def price_lookup(settings: Settings) -> tuple[Price, PriceFor]:
    """The flagship's prices, and every other model's (as ``usage`` prices them)."""
    table = table_for(settings)
    return flagship(settings, table)[1], prices_for(settings, table)


def local_dashboard(
    settings: Settings, filters: Filters, *, root: Path | None = None, today: dt.date | None = None
) -> board.Dashboard:
    """This machine's ledger, narrowed by ``filters`` (``developer`` needs the team's:
    ``ConfigError``); ``root``: the project whose budget is shown."""
    if filters.developer:
        raise ConfigError("developer: this machine's ledger is one developer's (use --team)")
    today = today or dt.date.today()
    first, last = filters.window(today)
    asof = min(last, today)
    start = min(first - dt.timedelta(days=WINDOW_DAYS), asof.replace(day=1))
    path = ledger_path()
    every = read_rows(path, start.isoformat(), last.isoformat())
    narrow = filters.narrow()
    rows = [r for r in every if matches(r, narrow)]
    report = build_report(
        rows,
        settings,
        period=filters.period,
        since=first.isoformat(),
        until=last.isoformat(),
        today=today,
        project=filters.project,
        first_day=read_first_day(path) if rows else None,
        tool_days=read_tool_days(path, first.isoformat(), last.isoformat()),
    )
    lo, hi = first.isoformat(), last.isoformat()
    inside = [r for r in rows if lo <= str(r["day"]) <= hi]
    price, price_for = price_lookup(settings)
    sums = model_sums(inside)
    naive, levers = board.levers(sums, price, price_for)
    project = project_at(root, settings) if root is not None else None
    newest = sorted(inside, key=lambda r: -float(r["ts"]))
    window_rows = [r for r in every if lo <= str(r["day"]) <= hi]
    return board.Dashboard(
        source="local",
        filters=filters.query(),
        since=first.isoformat(),
        until=last.isoformat(),
        report=report_dict(report),
        stack=filters.stack,
        slices=tuple(slices(inside, filters.stack)),
        budgets=tuple(
            local_budgets(
                every,
                settings,
                asof,
                project.root if project else None,
                project.name if project else "",
            )
        ),
        levers=tuple(levers),
        naive_usd=naive,
        cost_usd=report.total.cost_usd,
        cache_hit_share=board.cloud_cache_share(sums),
        by_model=suggestions_by_model(inside),
        by_developer=(),
        flags=tuple(board.Flag(a.day, a.message) for a in report.anomalies),
        requests=tuple(request_row(r) for r in newest[:REQUEST_LIMIT]),
        more_requests=len(newest) > REQUEST_LIMIT,
        choices={
            "developer": (),
            "project": values(window_rows, "project"),
            "client": values(window_rows, "client"),
            "model": values(window_rows, "model"),
            "tier": values(window_rows, "tier"),
        },
    )


def values(rows: Iterable[Row], column: str) -> tuple[str, ...]:
    return tuple(sorted({str(r.get(column)) for r in rows if r.get(column)}))
