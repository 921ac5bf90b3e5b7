"""The dashboard's figures from the team database beyond the report (``report.read_report``):
spend per day and tier or tool, sums per model for the levers, the month's billed spend per
developer and project for the budgets, the newest requests, and each filter's values. Every
query is narrowed as the report is (``report.where_of``)."""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from nearline.accounting.report.dashboard import Slice
from nearline.accounting.team.report import COMPLETION_COLUMN, FILTERS, Conn, Params, where_of

_TOKENS = "input_tokens + cache_read_tokens + cache_write_tokens + output_tokens"
_BUCKET_TOKENS = "input_tokens + cache_read_tokens + output_tokens"
Spent = dict[tuple[str, str], tuple[float, float]]
"""(scope, name) → (the month's billed USD so far, that of its last day); scope "team",
"developer" or "project"."""


def read_slices(conn: Conn, params: Params, stack: str) -> list[Slice]:
    """Tokens and USD per day and tier or client (``stack``)."""
    bucket_part = COMPLETION_COLUMN.get(stack, stack)
    rows = conn.execute(
        f"""
        SELECT day, part, sum(tokens), sum(usd) FROM (
            SELECT day, {stack} AS part, sum({_TOKENS}) AS tokens, sum(cost_usd) AS usd
            FROM nearline_requests_daily WHERE {where_of(params)} GROUP BY 1, 2
            UNION ALL
            SELECT day, {bucket_part}, sum({_BUCKET_TOKENS}), sum(cost_usd)
            FROM nearline_completions WHERE {where_of(params, completions=True)} GROUP BY 1, 2
        ) AS t GROUP BY 1, 2 ORDER BY 1, 2
        """,
        params,
    ).fetchall()
    return [Slice(day.isoformat(), str(part), int(n), float(usd)) for day, part, n, usd in rows]


def read_spent(conn: Conn, asof: dt.date) -> Spent:
    """The billed spend of ``asof``'s month up to it, and of ``asof`` itself, for the team,
    each developer and each project (what team budgets count)."""
    rows = conn.execute(
        """
        SELECT GROUPING(developer), GROUPING(project), developer, project,
            coalesce(sum(cost_usd), 0), coalesce(sum(cost_usd) FILTER (WHERE day = %(asof)s), 0)
        FROM nearline_requests_daily
        WHERE day BETWEEN %(first)s AND %(asof)s AND billed
        GROUP BY GROUPING SETS ((developer), (project), ())
        """,
        {"first": asof.replace(day=1), "asof": asof},
    ).fetchall()
    out: Spent = {}
    for no_developer, no_project, developer, project, month, day in rows:
        if not no_developer:
            key = ("developer", str(developer))
        elif not no_project:
            key = ("project", str(project))
        else:
            key = ("team", "")
        out[key] = (float(month), float(day))
    return out


def read_requests(conn: Conn, params: Params, limit: int) -> tuple[list[tuple[Any, ...]], bool]:
    """The newest ``limit`` request rows and completion buckets (a bucket: an hour's
    completions of one developer, project, tool and model), and whether there are more."""
    rows = conn.execute(
        f"""
        (SELECT ts, developer, project, client, task, tier, model, outcome, 1,
            (accepted IS NOT NULL)::int, coalesce(accepted::int, 0), input_tokens,
            cache_read_tokens, cache_write_tokens, output_tokens, cost_usd
        FROM nearline_requests WHERE {where_of(params)} ORDER BY day DESC, ts DESC
        LIMIT %(limit)s)
        UNION ALL
        (SELECT hour, developer, project, client, {COMPLETION_COLUMN["task"]}, 'local', model,
            'completions', requests, shown, accepted, input_tokens, cache_read_tokens, 0,
            output_tokens, cost_usd
        FROM nearline_completions WHERE {where_of(params, completions=True)}
        ORDER BY day DESC, hour DESC LIMIT %(limit)s)
        ORDER BY 1 DESC LIMIT %(limit)s + 1
        """,
        {**params, "limit": limit},
    ).fetchall()
    out = [(ts.isoformat(timespec="seconds"), *rest) for ts, *rest in rows]
    return out[:limit], len(out) > limit


def read_choices(conn: Conn, params: Params) -> dict[str, tuple[str, ...]]:
    """Each filter's values in the window (whatever the other filters): the distinct
    combinations (a few hundred), then each column's values."""
    rows = conn.execute(
        f"""
        SELECT DISTINCT {", ".join(FILTERS)} FROM nearline_requests_daily
        WHERE day BETWEEN %(first)s AND %(last)s
        UNION
        SELECT DISTINCT developer, project, client, model, 'local' FROM nearline_completions
        WHERE day BETWEEN %(first)s AND %(last)s
        """,
        {"first": params["first"], "last": params["last"]},
    ).fetchall()
    return {name: tuple(sorted({str(r[i]) for r in rows})) for i, name in enumerate(FILTERS)}


@dataclass(frozen=True)
class Extras:
    """Everything the dashboard reads beside the report."""

    slices: list[Slice]
    spent: Spent
    requests: list[tuple[Any, ...]]
    more_requests: bool
    choices: dict[str, tuple[str, ...]]


def read_extras(
    conns: tuple[Conn, Conn], params: Params, stack: str, asof: dt.date, limit: int
) -> Extras:
    """The dashboard's figures beyond the report, on two connections at once (beside the
    report's): the days and the requests on one, the budgets and choices on the other."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        other = pool.submit(lambda: (read_spent(conns[1], asof), read_choices(conns[1], params)))
        slices = read_slices(conns[0], params, stack)
        requests, more = read_requests(conns[0], params, limit)
        spent, choices = other.result()
    return Extras(slices, spent, requests, more, choices)
