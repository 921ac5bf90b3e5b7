"""A year of the team's data in a database of its own, loaded with COPY, and ``usage --team``
timed over it; that database's size."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import time
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg

from costbench.workload import PROJECT
from nearline.accounting.team.schema import (
    COMPLETION_COLUMNS,
    REQUEST_COLUMNS,
    TABLES,
    migrate,
    rebuild_daily,
)
from teambench import developer, log

YEAR_ENV = "NEARLINE_BENCH_YEAR_URL"
YEAR_MONTHS = 12
YEAR_DEVELOPERS = 50
YEAR_PROJECTS = 8
YEAR_DATABASE = "nearline_bench_year"
REPORTS = {"by developer": "developer", "by project": "project", "by day": None}
"""``usage --team``'s reports timed: ``--by`` of each (by day: ``--period day``)."""
REPORT_GOAL_MS = 500.0


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def year_database(server: Any, url: str) -> str:
    """A new, empty database beside the team's, with nearline's tables; its URL."""
    name = YEAR_DATABASE
    if server is not None:
        server.sql(f"CREATE DATABASE {name} OWNER nearline")
        year_url = str(server.url(database=name))
    else:
        with psycopg.connect(url, autocommit=True) as pg:
            pg.execute(f"CREATE DATABASE {name}")
        year_url = psycopg.conninfo.make_conninfo(url, dbname=name)
    with psycopg.connect(year_url, autocommit=True) as pg:
        migrate(pg)
    return year_url


def load_year(url: str, year_url: str, developers: int) -> tuple[dt.date, dt.date]:
    """Each of 50 developers' month (developer ``d`` has month ``d % developers``'s rows) 12
    times, a twelfth of a year apart in whole weeks, projects shared by teams of 7."""
    with psycopg.connect(url) as pg:
        requests = pg.execute(f"SELECT {', '.join(REQUEST_COLUMNS)} FROM nearline_requests")
        request_rows = requests.fetchall()
        buckets = pg.execute(f"SELECT {', '.join(COMPLETION_COLUMNS)} FROM nearline_completions")
        bucket_rows = buckets.fetchall()
    by_dev: dict[str, tuple[list[Any], list[Any]]] = {}
    for row in request_rows:
        by_dev.setdefault(row[3], ([], []))[0].append(row)
    for row in bucket_rows:
        by_dev.setdefault(row[3], ([], []))[1].append(row)
    with psycopg.connect(year_url, autocommit=True) as pg:
        for table, columns, which in (
            ("nearline_requests", REQUEST_COLUMNS, 0),
            ("nearline_completions", COMPLETION_COLUMNS, 1),
        ):
            with (
                pg.cursor() as cur,
                cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy,
            ):
                for row in year_rows(by_dev, developers, which):
                    copy.write_row(row)
        rebuild_daily(pg)  # what the syncers keep: the request rows' daily sums
        for table in TABLES:
            pg.execute(f"VACUUM ANALYZE {table}")
        first, last = pg.execute(
            "SELECT min(day), max(day) FROM (SELECT day FROM nearline_requests UNION ALL "
            "SELECT day FROM nearline_completions) AS t"
        ).fetchone() or (None, None)
    return first, last


def year_rows(
    by_dev: dict[str, tuple[list[Any], list[Any]]], developers: int, which: int
) -> Iterator[tuple[Any, ...]]:
    for d in range(YEAR_DEVELOPERS):
        who = developer(d)
        source = by_dev.get(developer(d % developers).developer, ([], []))[which]
        for m in range(YEAR_MONTHS):
            back = dt.timedelta(weeks=round(m * 52 / YEAR_MONTHS))
            project = f"{PROJECT}-{(d // 7 + m // 6) % YEAR_PROJECTS}"
            for row in source:
                out = list(row)
                out[0] = f"{row[0]}-{d}-{m}"
                out[1], out[2] = row[1] - back, row[2] - back
                out[3], out[4], out[5] = who.developer, who.device, project
                yield tuple(out)


def year_reports(args: argparse.Namespace, server: Any, url: str) -> dict[str, Any]:
    """The year loaded and ``usage --team`` timed; ``{"skipped": why}`` when the database
    cannot be made (``--url`` without the right to create one)."""
    log("loading a year for usage --team")
    try:
        year_url = year_database(server, url)
    except psycopg.Error as exc:
        return {"skipped": f"cannot create a database beside --url's: {exc}"}
    try:
        first, last = load_year(url, year_url, args.developers)
        found = {"first": first, "last": last, **time_reports(year_url, first, last, args)}
        if getattr(args, "dashboard", False):
            from teambench.dashboard import time_dashboard

            who, project = developer(0).developer, f"{PROJECT}-0"
            found["dashboard"] = time_dashboard(year_url, first, last, args, who, project)
        return found
    finally:
        if server is None:
            with psycopg.connect(url, autocommit=True) as pg:
                pg.execute(f"DROP DATABASE IF EXISTS {YEAR_DATABASE}")


def time_reports(
    year_url: str, first: dt.date, last: dt.date, args: argparse.Namespace
) -> dict[str, Any]:
    """``usage --team`` by developer, by project and by day over the year: p50/p95 in ms."""
    from nearline.app.team_report import team_report
    from nearline.config import parse_settings

    os.environ[YEAR_ENV] = year_url
    settings = parse_settings({"team": {"url_env": YEAR_ENV}}, "the benchmark")
    out: dict[str, Any] = {}
    for label, by in REPORTS.items():
        team_report(settings, first, last, period="day", by=by, project=None)  # warm-up
        times = []
        for _ in range(args.report_runs):
            t0 = time.perf_counter()
            team_report(settings, first, last, period="day", by=by, project=None)
            times.append((time.perf_counter() - t0) * 1000)
        out[label] = (percentile(times, 0.5), percentile(times, 0.95))
    with psycopg.connect(year_url) as pg:
        row = pg.execute(
            "SELECT pg_total_relation_size('nearline_requests') "
            "+ pg_total_relation_size('nearline_requests_daily'), "
            "pg_total_relation_size('nearline_completions'), "
            "(SELECT count(*) FROM nearline_requests), (SELECT count(*) FROM nearline_completions)"
        ).fetchone()
    assert row is not None
    out["bytes"], out["bucket_bytes"] = row[0] + row[1], row[1]
    out["request_rows"], out["bucket_rows"] = row[2], row[3]
    return out
