"""The team's usage report read from the team database: every figure aggregated in SQL (a
year of a 50-person team is ~700k rows; only sums per key and per day come back).

A completion bucket counts as ``requests`` requests of tier "local" and task ``AUTOCOMPLETE``,
with its tokens and cost; request rows count one each. Cache hits are the billed request rows'
(as are the anomalies' spend: what the team budgets count, as ``figures.read`` reads it).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from nearline.accounting.prices import Tokens
from nearline.accounting.report.dashboard import ModelSums
from nearline.accounting.report.model import PERIODS
from nearline.accounting.report.team_model import (
    TEAM_GROUPINGS,
    Acceptance,
    CacheShare,
    TeamAnomaly,
    TeamGroup,
    TeamReport,
    build_team_report,
    total_of,
)
from nearline.accounting.team import figures
from nearline.accounting.team.connection import TeamTarget
from nearline.accounting.team.schema import check_tables, check_version, found_version
from nearline.config import TeamSettings
from nearline.errors import ConfigError, TeamError
from nearline.tasks import AUTOCOMPLETE, IMPORTED

Conn = psycopg.Connection[Any]

PERIOD_KEYS = {
    "day": "to_char(day, 'YYYY-MM-DD')",
    "week": "to_char(day, 'IYYY-\"W\"IW')",
    "month": "to_char(day, 'YYYY-MM')",
}
"""A period's key as ``report.model.period_key`` writes it."""
COMPLETION_COLUMN = {"tier": "'local'", "task": f"'{AUTOCOMPLETE}'"}
"""What a completion bucket has instead of the request rows' column."""
WORK_MEM = "64MB"
"""Room for the per-day sums' hash tables (a year: ~50k groups) so none spills to disk."""
SUMS = "sum(n), sum(i), sum(cr), sum(cw), sum(o), sum(usd)"
REQUEST_SUMS = (
    "sum(requests) AS n, sum(input_tokens) AS i, sum(cache_read_tokens) AS cr, "
    "sum(cache_write_tokens) AS cw, sum(output_tokens) AS o, sum(cost_usd) AS usd"
)
COMPLETION_SUMS = (
    "sum(requests), sum(input_tokens), sum(cache_read_tokens), 0, sum(output_tokens), sum(cost_usd)"
)
Params = dict[str, Any]


FILTERS = ("developer", "project", "client", "model", "tier")
"""What a report may be narrowed to (each a column's value)."""


def where_of(params: Params, start: str = "first", *, completions: bool = False) -> str:
    """The days from ``%(start)s`` to ``%(last)s``, and each of ``FILTERS`` given in
    ``params``; ``completions``: for the completion buckets (whose tier is "local")."""
    parts = [f"day BETWEEN %({start})s AND %(last)s"]
    for name in FILTERS:
        if params.get(name):
            column = COMPLETION_COLUMN.get(name, name) if completions else name
            parts.append(f"{column} = %({name})s")
    return " AND ".join(parts)


def _group(key: Any, n: Any, i: Any, cr: Any, cw: Any, o: Any, usd: Any) -> TeamGroup:
    return TeamGroup(str(key), int(n), int(i), int(cr), int(cw), int(o), float(usd))


def read_periods(conn: Conn, params: Params, period: str) -> list[TeamGroup]:
    """Requests, tokens and cost per day, ISO week or month (summed per day first: a date
    groups faster than text)."""
    where, done = where_of(params), where_of(params, completions=True)
    rows = conn.execute(
        f"""
        SELECT {PERIOD_KEYS[period]}, {SUMS} FROM (
            SELECT day, {REQUEST_SUMS} FROM nearline_requests_daily WHERE {where} GROUP BY day
            UNION ALL
            SELECT day, {COMPLETION_SUMS} FROM nearline_completions WHERE {done} GROUP BY day
        ) AS t GROUP BY 1
        """,
        params,
    ).fetchall()
    return [_group(*row) for row in rows]


IMPORTED_TIER = "(imported)"
"""Another tool's rows, told apart in the sums per tier (nearline routed none of them)."""


@dataclass(frozen=True)
class Sums:
    """What one pass over the window found: groups per key (none when grouped by period),
    acceptance per developer and model, cache reads per provider, sums per tier, provider,
    model and billed."""

    groups: list[TeamGroup]
    acceptance: list[Acceptance]
    cache: list[CacheShare]
    models: list[ModelSums]


def read_sums(conn: Conn, params: Params, by: str | None) -> Sums:
    """Each table summed per (key, developer, model, provider, billed) on its own (in
    parallel), then those few sums regrouped per key, per developer and model, and per
    provider. Grouped by developer or model, the groups are the (developer, model) sums added
    up (a key hashed twice costs a year's report ~15%); by period, ``read_periods`` gives
    them."""
    own_key = by if by not in (None, "developer", "model") else None
    request_key = own_key or "NULL::text"
    completion_key = COMPLETION_COLUMN.get(own_key, own_key) if own_key else "NULL::text"
    where, done = where_of(params), where_of(params, completions=True)
    rows = conn.execute(
        f"""
        SELECT GROUPING(key), GROUPING(developer), GROUPING(tier), key, developer, model,
            provider, billed, tier, {SUMS}, sum(shown), sum(accepted), sum(chars)
        FROM (
            SELECT {request_key} AS key, developer, model, provider, billed,
                CASE WHEN task = '{IMPORTED}' THEN '{IMPORTED_TIER}' ELSE tier END,
                {REQUEST_SUMS}, 0 AS shown, 0 AS accepted, 0 AS chars
            FROM nearline_requests_daily WHERE {where} GROUP BY 1, 2, 3, 4, 5, 6
            UNION ALL
            SELECT {completion_key}, developer, model, 'local', false, 'local',
                {COMPLETION_SUMS}, sum(shown), sum(accepted), sum(chars_accepted)
            FROM nearline_completions WHERE {done} GROUP BY 1, 2, 3
        ) AS t GROUP BY GROUPING SETS (
            (key), (developer, model), (provider, billed), (tier, provider, model, billed)
        )
        """,
        params,
    ).fetchall()
    found = Sums([], [], [], [])
    pairs: dict[tuple[str, str], TeamGroup] = {}
    for no_key, no_developer, no_tier, key, developer, model, provider, billed, tier, *sums in rows:
        n, i, cr, cw, o, usd, shown, accepted, chars = sums
        if not no_key:
            if own_key is not None:
                found.groups.append(_group(key, n, i, cr, cw, o, usd))
        elif not no_developer:
            pairs[str(developer), str(model)] = _group("", n, i, cr, cw, o, usd)
            found.acceptance.append(
                Acceptance(
                    str(developer), str(model), int(shown), int(accepted), int(chars), float(usd)
                )
            )
        elif not no_tier:
            tokens = Tokens(int(i), int(cr), int(cw), int(o))
            imported = tier == IMPORTED_TIER
            found.models.append(
                ModelSums(
                    "" if imported else str(tier),
                    str(provider),
                    str(model),
                    bool(billed),
                    tokens,
                    float(usd),
                    imported,
                )
            )
        elif billed:
            found.cache.append(CacheShare(str(provider), int(i), int(cr), int(cw)))
    if by in ("developer", "model"):
        keys = {pair: pair[0 if by == "developer" else 1] for pair in pairs}
        for key in sorted(set(keys.values())):
            found.groups.append(total_of((g for p, g in pairs.items() if keys[p] == key), key))
    return found


DailySpend = dict[tuple[str, str], dict[str, float]]
"""(kind, name) → day → USD."""


def read_daily_spend(conn: Conn, params: Params) -> DailySpend:
    """The billed requests' spend per day of each developer, project and tool from
    ``%(history)s`` to ``%(last)s``: the team budgets' figure (``figures.read``)."""
    rows = conn.execute(
        f"""
        SELECT GROUPING(developer), GROUPING(project), developer, project, client, day,
            sum(usd)
        FROM (
            SELECT developer, project, client, day, sum(cost_usd) AS usd
            FROM nearline_requests_daily
            WHERE {where_of(params, start="history")} AND billed
            GROUP BY 1, 2, 3, 4
        ) AS t
        GROUP BY GROUPING SETS ((developer, day), (project, day), (client, day))
        """,
        params,
    ).fetchall()
    out: DailySpend = {}
    for no_developer, no_project, developer, project, client, day, usd in rows:
        if not no_developer:
            key = ("developer", str(developer))
        elif not no_project:
            key = ("project", str(project))
        else:
            key = ("tool", str(client))
        out.setdefault(key, {})[day.isoformat()] = float(usd)
    return out


def maybe_spikes(days: dict[str, float], first: str, last: str, rule: TeamSettings) -> list[str]:
    """The days from ``first`` to ``last`` that may pass the rule: over its floor and over
    ``anomaly_factor`` times the trailing days' sum over a whole baseline (the least
    average the rule can measure against); ``figures.anomaly`` decides. One sliding sum per
    name, so a year of days costs no more than reading it."""
    window = rule.anomaly_baseline_days
    ordinal = {dt.date.fromisoformat(d).toordinal(): usd for d, usd in days.items()}
    lo, hi = dt.date.fromisoformat(first).toordinal(), dt.date.fromisoformat(last).toordinal()
    start = min(ordinal)
    trailing = sum(ordinal.get(o, 0.0) for o in range(max(start, lo - window), lo))
    found = []
    for o in range(max(lo, start), hi + 1):
        usd = ordinal.get(o, 0.0)
        # (1 + 1e-9): the sliding sum's rounding never hides a day on the rule's edge
        if (
            usd >= rule.anomaly_min_usd
            and usd * (1 + 1e-9) > rule.anomaly_factor * trailing / window
        ):
            found.append(dt.date.fromordinal(o).isoformat())
        trailing += usd - ordinal.get(o - window, 0.0)
    return found


def find_anomalies(
    daily: DailySpend, first: str, last: str, rule: TeamSettings
) -> list[TeamAnomaly]:
    """The days from ``first`` to ``last`` whose spend passes the team's rule against the
    trailing ``anomaly_baseline_days``. Days before a name's first billed request in
    ``daily`` are no history: a newcomer's first day (or one's back after the whole
    baseline away) is none."""
    found = []
    for (kind, name), days in daily.items():
        figures_of = {d: (usd, 0) for d, usd in days.items()}
        for day in maybe_spikes(days, first, last, rule):
            spike = figures.anomaly(figures_of, day, rule, min(days))
            if spike is not None:
                found.append(TeamAnomaly(kind, name, day, spike.value, spike.average, spike.days))
    return found


def read_report(
    conn: Conn,
    first: dt.date,
    last: dt.date,
    *,
    side: Conn | None = None,
    period: str = "day",
    by: str | None = None,
    project: str | None = None,
    rule: TeamSettings | None = None,
    narrow: Mapping[str, str | None] | None = None,
) -> TeamReport:
    """The report of ``first``..``last`` (and the baseline days before ``first`` for the
    anomalies), ``project`` (a project's name) only when given, and narrowed to the
    ``FILTERS`` in ``narrow`` (a name → its value). ``side``: a second
    connection on the same snapshot (``reading``), where the anomalies' pass runs beside the
    others (a year's report a fifth to a third sooner on two cores)."""
    if period not in PERIODS or by not in (None, *TEAM_GROUPINGS):
        raise ConfigError(f"cannot group the team's usage by {by or period!r}")
    rule = rule or TeamSettings()
    history = first - dt.timedelta(days=rule.anomaly_baseline_days)
    params = {
        **{k: v for k, v in (narrow or {}).items() if k in FILTERS},
        "first": first,
        "last": last,
        "history": history,
        "project": project,
    }
    lo, hi = first.isoformat(), last.isoformat()
    with ThreadPoolExecutor(max_workers=1) as pool:
        beside = pool.submit(read_daily_spend, side, params) if side is not None else None
        sums = read_sums(conn, params, by)
        groups = sums.groups if by is not None else read_periods(conn, params, period)
        daily = beside.result() if beside is not None else read_daily_spend(conn, params)
    return build_team_report(
        since=lo,
        until=hi,
        period=period,
        by=by,
        project=project,
        groups=groups,
        acceptance=sums.acceptance,
        cache=sums.cache,
        models=sums.models,
        anomalies=find_anomalies(daily, lo, hi, rule),
    )


def check_readable(conn: Conn) -> None:
    """``TeamError`` unless the tables are there, at a version this nearline reads."""
    version = found_version(conn)
    if version is None or version == 0:
        raise TeamError(
            "the team database has no nearline tables yet: run `nearline team sync` on a "
            "machine with [team] in its config to make them (and send its usage)"
        )
    check_version(version)
    check_tables(conn)


@dataclass(frozen=True)
class Readers:
    """Connections on one read-only snapshot: ``side`` runs one pass beside ``main``'s;
    ``more``, others (the dashboard's)."""

    main: Conn
    side: Conn
    more: tuple[Conn, ...] = ()


def _read_only(conn: Conn) -> Conn:
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    conn.read_only = True
    return conn


@contextmanager
def reading(target: TeamTarget, more: int = 0) -> Iterator[Readers]:
    """Read-only connections (two, and ``more``) whose queries all see one snapshot
    (``main``'s, exported to the others): a sync landing halfway through never splits the
    report. psycopg's errors leave as ``TeamError``."""
    opened = [target.connect()]
    main = _read_only(opened[0])
    try:
        with main.transaction(), ExitStack() as stack:
            main.execute(f"SET LOCAL work_mem = '{WORK_MEM}'")
            check_readable(main)
            row = main.execute("SELECT pg_export_snapshot()").fetchone()
            others = []
            for _ in range(1 + more):
                opened.append(target.connect())
                conn = _read_only(opened[-1])
                stack.enter_context(conn.transaction())
                conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(row[0] if row else None))
                conn.execute(f"SET LOCAL work_mem = '{WORK_MEM}'")
                others.append(conn)
            yield Readers(main, others[0], tuple(others[1:]))
    except psycopg.Error as exc:
        raise target.error(exc, "cannot read") from None
    finally:
        for conn in opened:
            conn.close()
