"""``nearline usage``: tokens, cost and savings from the ledger per day, week, month, model, tier,
project or task, as a terminal table, JSON, CSV or one self-contained HTML file.

``build_report`` is pure over ledger rows; the renderers only format the ``Report`` it returns.
"Saved" prices every request's tokens (local ones too) at the configured flagship model.
"""

from __future__ import annotations

import argparse
import collections
import csv
import datetime as dt
import io
import json
import math
import re
import sqlite3
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from nearline.accounting.budget import WINDOW_DAYS, spike
from nearline.accounting.ledger import (
    connect_read_only,
    ledger_path,
    select_first_day,
    select_rows,
)
from nearline.accounting.prices import (
    PRICE_FIELDS,
    Price,
    Tokens,
    as_cloud_request,
    flagship,
    table_for,
)
from nearline.config import Settings
from nearline.errors import ConfigError, NearlineError
from nearline.tasks import AUTOCOMPLETE

T = TypeVar("T")

Row = Mapping[str, Any]
PERIODS = ("day", "week", "month")
GROUPINGS = ("model", "tier", "project", "task")
DEFAULT_DAYS = 30
FROM_CACHE = ("served-from-cache", "typed-through")
"""Completion outcomes that ran no model."""
NONE = "(none)"
TOKEN_COLUMNS = ("input_tokens", "cache_read_tokens", "cache_write_tokens", "output_tokens")
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True)
class Group:
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
    def acceptance_rate(self) -> float | None:
        return self.accepted / self.shown if self.shown else None

    @property
    def cost_per_accepted(self) -> float | None:
        return self.cost_usd / self.accepted if self.accepted else None

    @property
    def cache_hit_share(self) -> float | None:
        """Share of input tokens read from the provider's cache."""
        sent = self.input_tokens + self.cache_read_tokens + self.cache_write_tokens
        return self.cache_read_tokens / sent if sent else None

    @property
    def completion_cache_share(self) -> float | None:
        return self.from_cache / self.completions if self.completions else None


@dataclass(frozen=True)
class Anomaly:
    day: str
    message: str


@dataclass(frozen=True)
class Report:
    since: str
    until: str
    period: str
    """"day", "week" or "month"; ignored when ``by`` is set."""
    by: str | None
    """"model", "tier", "project" or "task"; None: group by ``period``."""
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
    )


def bucket(rows: Iterable[Row], key: Callable[[Row], str]) -> dict[str, list[Row]]:
    out: dict[str, list[Row]] = {}
    for row in rows:
        out.setdefault(key(row), []).append(row)
    return out


def summarize(key: str, rows: Sequence[Row], price: Price, anomaly: str | None = None) -> Group:
    tokens = Tokens(
        input=_sum(rows, "input_tokens"),
        cache_read=_sum(rows, "cache_read_tokens"),
        cache_write=_sum(rows, "cache_write_tokens"),
        output=_sum(rows, "output_tokens"),
    )
    completions = [r for r in rows if r.get("task") == AUTOCOMPLETE]
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
        flagship_cost_usd=price.cost(_sum_tokens(as_cloud_request(r) for r in rows)),
        shown=len(shown),
        accepted=sum(1 for r in shown if r["accepted"]),
        completions=len(completions),
        from_cache=sum(1 for r in completions if r.get("outcome") in FROM_CACHE),
        cost_by_tier={t: _usd(rs) for t, rs in sorted(tiers.items())},
        anomaly=anomaly,
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
) -> Report:
    """Group ``rows`` (ledger rows, oldest first) that fall in the window; earlier rows only
    serve as the history anomalies are measured against (``first_day``: where the ledger's
    history begins, when ``rows`` do not reach it)."""
    if period not in PERIODS or by not in (None, *GROUPINGS):
        raise ConfigError(f"cannot group usage by {by or period!r}")
    first, last = window(since, until, today or dt.date.today(), period)
    lo, hi = first.isoformat(), last.isoformat()
    model, price = flagship(settings, table_for(settings))
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
        grouped = [summarize(k, buckets[k], price, flag(k)) for k in sorted(buckets)]
    else:
        grouped = [summarize(k, rs, price) for k, rs in buckets.items()]
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
        total=summarize("total", inside, price),
        days=tuple(summarize(d, days[d], price, flag_day.get(d)) for d in sorted(days)),
        tokens_by_model=tuple(
            sorted(
                ((m, _all_tokens(rs)) for m, rs in models.items()), key=lambda kv: (-kv[1], kv[0])
            )
        ),
        anomalies=tuple(anomalies),
        warnings=unpriced(model, price),
    )


def unpriced(model: str, price: Price) -> tuple[str, ...]:
    if price.input_cost_per_token or price.output_cost_per_token:
        return ()
    return (
        f'{model} has no price, so "saved" compares with nothing: add [prices."{model}"] to '
        ".nearline.toml, run `nearline prices import FILE`, or set usage.flagship_model",
    )


# -- numbers as text -----------------------------------------------------------------------


def tokens_short(n: int) -> str:
    """``999``, ``34.5k``, ``1.2M``: at most 6 characters below a trillion."""
    if n < 1000:
        return str(n)
    for divisor, suffix in ((1e3, "k"), (1e6, "M"), (1e9, "G")):
        if round(n / divisor, 1) < 1000:
            return f"{n / divisor:.1f}{suffix}"
    return f"{n / 1e12:.1f}T"


def usd(value: float | None) -> str:
    """``$0.0123`` below a dollar, ``$12.34`` below a thousand, ``$1,234`` above; ``-`` for
    None."""
    if value is None:
        return "-"
    size = abs(value)
    text = f"{size:.4f}" if size < 1 else f"{size:.2f}" if size < 1000 else f"{size:,.0f}"
    negative = value < 0 and text.strip("0.") != ""
    return f"{'-' if negative else ''}${text}"


def percent(share: float | None) -> str:
    return "-" if share is None else f"{share:.0%}"


def per_million(value: float | None) -> str:
    return "-" if value is None else f"${value * 1e6:,.2f}"


# -- JSON and CSV --------------------------------------------------------------------------


def _r(value: float | None) -> float | None:
    """Costs to 10 decimals: float sums' last bits are noise."""
    return None if value is None else round(value, 10)


def group_dict(g: Group) -> dict[str, Any]:
    return {
        "key": g.key,
        "requests": g.requests,
        "input_tokens": g.input_tokens,
        "output_tokens": g.output_tokens,
        "cache_write_tokens": g.cache_write_tokens,
        "cache_read_tokens": g.cache_read_tokens,
        "total_tokens": g.total_tokens,
        "cost_usd": _r(g.cost_usd),
        "flagship_cost_usd": _r(g.flagship_cost_usd),
        "saved_usd": _r(g.saved_usd),
        "suggestions_shown": g.shown,
        "accepted": g.accepted,
        "acceptance_rate": _r(g.acceptance_rate),
        "cost_per_accepted_usd": _r(g.cost_per_accepted),
        "cache_hit_share": _r(g.cache_hit_share),
        "completions": g.completions,
        "completions_from_cache": g.from_cache,
        "completion_cache_share": _r(g.completion_cache_share),
        "cost_by_tier": {tier: _r(cost) for tier, cost in g.cost_by_tier.items()},
        "anomaly": g.anomaly,
    }


def report_dict(report: Report) -> dict[str, Any]:
    price = report.flagship_price
    return {
        "since": report.since,
        "until": report.until,
        "period": report.period,
        "by": report.by,
        "project": report.project,
        "flagship": {"model": report.flagship_model} | {f: getattr(price, f) for f in PRICE_FIELDS},
        "groups": [group_dict(g) for g in report.groups],
        "total": group_dict(report.total),
        "days": [group_dict(g) for g in report.days],
        "tokens_by_model": dict(report.tokens_by_model),
        "anomalies": [{"day": a.day, "message": a.message} for a in report.anomalies],
        "warnings": list(report.warnings),
    }


def to_json(report: Report) -> str:
    return json.dumps(report_dict(report), indent=2)


CSV_FIELDS = tuple(k for k in group_dict(summarize("", [], Price())) if k != "cost_by_tier")


def to_csv(report: Report) -> str:
    """A header, one line per group, then the ``total`` line; empty cells for None."""
    out = io.StringIO()
    writer = csv.DictWriter(out, CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for g in (*report.groups, report.total):
        writer.writerow({k: "" if v is None else v for k, v in group_dict(g).items()})
    return out.getvalue()


# -- the terminal table --------------------------------------------------------------------


def _row(g: Group) -> list[Text]:
    key = Text(g.key)
    if g.anomaly:
        key.append(" !", style="bold red")
    numbers = [
        tokens_short(g.input_tokens),
        tokens_short(g.output_tokens),
        tokens_short(g.cache_write_tokens),
        tokens_short(g.cache_read_tokens),
        tokens_short(g.total_tokens),
        usd(g.cost_usd),
        usd(g.saved_usd),
        percent(g.acceptance_rate),
        usd(g.cost_per_accepted),
    ]
    return [key, *(Text(n) for n in numbers)]


def render_table(report: Report) -> Table:
    """Fits 80 columns: token counts abbreviated, one space between columns; a long key (a
    model's name) folds onto more lines while the numbers keep their width."""
    table = Table(box=box.SIMPLE_HEAD, padding=(0, 0), pad_edge=False, show_edge=False)
    table.add_column(report.by or report.period, overflow="fold")
    for header in ("input", "output", "cache\nwrite", "cache\nread", "total"):
        table.add_column(header, justify="right", no_wrap=True)
    for header in ("cost", "saved", "acc", "$/acc"):
        table.add_column(header, justify="right", no_wrap=True)
    for g in report.groups:
        table.add_row(*_row(g))
    table.add_section()
    table.add_row(*_row(report.total), style="bold")
    return table


def notes(report: Report) -> list[str]:
    """The lines under the table: what "saved" compares with, acceptance, cache, anomalies."""
    t, price = report.total, report.flagship_price
    lines = [
        f"{t.requests:,} requests from {report.since} to {report.until}"
        + (f" in {report.project}" if report.project else ""),
        f"saved: vs. every request on {report.flagship_model} "
        f"({per_million(price.input_cost_per_token)}/M in, "
        f"{per_million(price.output_cost_per_token)}/M out)",
        f"acceptance: {t.accepted:,} of {t.shown:,} suggestions ({percent(t.acceptance_rate)}), "
        f"{usd(t.cost_per_accepted)} per accepted",
        f"cache hits: {percent(t.cache_hit_share)} of input tokens; "
        f"{percent(t.completion_cache_share)} of completions (cached or typed through)",
    ]
    return (
        lines + [f"! {w}" for w in report.warnings] + [f"! {a.message}" for a in report.anomalies]
    )


def empty_message(report: Report) -> str:
    where = f" for {report.project}" if report.project else ""
    return f"no requests recorded between {report.since} and {report.until}{where}"


def render(report: Report, console: Console) -> None:
    if not report.groups:
        console.print(empty_message(report), markup=False, highlight=False)
        return
    console.print(render_table(report))
    for line in notes(report):
        style = "red" if line.startswith("!") else None
        console.print(line, markup=False, highlight=False, style=style)


# -- the command ---------------------------------------------------------------------------


def project_filter(value: str | None) -> str | None:
    """A project name as given; a path (``.``, ``~/src/x``, ``a/b``) as the project's root:
    the folder of the nearest ``.nearline.toml`` at or above it, as the server records it,
    else the path itself."""
    from nearline.config import find_project_file

    if not value:
        return None
    if value in (".", "..") or "/" in value or value.startswith("~"):
        path = Path(value).expanduser().resolve()
        found = find_project_file(path) if path.is_dir() else None
        return str(found.parent if found else path)
    return value


def _read(path: Path, query: Callable[[sqlite3.Connection], T], empty: T) -> T:
    """``query`` over the ledger, read-only: a report never creates, migrates or moves the
    ledger aside (``Ledger`` may). No ledger yet, or never written: ``empty``."""
    if not path.exists():
        return empty
    try:
        conn = connect_read_only(path)
        try:
            if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'requests'").fetchone():
                return empty
            return query(conn)
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise NearlineError(
            f"cannot read the usage ledger {path}: {exc} (NEARLINE_LEDGER names another file)"
        ) from None


def read_rows(path: Path, since: str, until: str, project: str | None = None) -> list[Row]:
    """Ledger rows from ``since`` to ``until``, oldest first."""
    return _read(path, lambda conn: list(select_rows(conn, since, until, project)), [])


def first_day(path: Path, project: str | None = None) -> str | None:
    """The ledger's first day (``project``'s, when given); None without rows."""
    return _read(path, lambda conn: select_first_day(conn, project), None)


def ledger_report(
    settings: Settings,
    first: dt.date,
    last: dt.date,
    *,
    period: str,
    by: str | None,
    project: str | None,
) -> Report:
    """The report of the ledger from ``first`` to ``last``; the week before ``first`` is read
    too, as what anomalies are measured against."""
    history = first - dt.timedelta(days=WINDOW_DAYS)
    path = ledger_path()
    rows = read_rows(path, history.isoformat(), last.isoformat(), project)
    return build_report(
        rows,
        settings,
        period=period,
        by=by,
        since=first.isoformat(),
        until=last.isoformat(),
        project=project,
        first_day=first_day(path, project) if rows else None,
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    """``nearline usage``: the table, or JSON, CSV or an HTML file."""
    today = dt.date.today()
    if getattr(args, "by", None) and getattr(args, "period", None) in ("week", "month"):
        raise ConfigError(
            f"--by {args.by} groups the whole window; leave out --{args.period}ly, or use "
            "--since/--until to choose the window"
        )
    if getattr(args, "html", None) == "":
        raise ConfigError("--html needs a file name")
    period = getattr(args, "period", None) or "day"
    first, last = window(getattr(args, "since", None), getattr(args, "until", None), today, period)
    report = ledger_report(
        settings,
        first,
        last,
        period=period,
        by=getattr(args, "by", None),
        project=project_filter(getattr(args, "project", None)),
    )
    if getattr(args, "json", False):
        print(to_json(report))
    elif getattr(args, "csv", False):
        sys.stdout.write(to_csv(report))
    elif getattr(args, "html", None):
        target = Path(args.html).expanduser()
        try:
            from nearline.accounting.usage_html import to_html

            target.write_text(to_html(report), encoding="utf-8")
        except OSError as exc:
            raise NearlineError(f"cannot write {target}: {exc.strerror or exc}") from None
        print(f"wrote the usage report to {target}")
    else:
        render(report, Console())
    return 0


def text_report(
    settings: Settings,
    *,
    days: int = 7,
    period: str = "day",
    by: str | None = None,
    project: str | None = None,
    today: dt.date | None = None,
) -> str:
    """The terminal report as plain text, 80 columns wide (the editors' "show usage")."""
    today = today or dt.date.today()
    first = today - dt.timedelta(days=max(1, days) - 1)
    report = ledger_report(settings, first, today, period=period, by=by, project=project)
    console = Console(width=80, record=True, file=io.StringIO(), color_system=None)
    render(report, console)
    return console.export_text()
