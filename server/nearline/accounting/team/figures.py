"""The team's spend as team budgets need it: read from the team database after a sync round,
then added to what this machine has not sent yet (``spending``)."""

from __future__ import annotations

import datetime as dt
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import psycopg

from nearline.accounting.alerts import Spike, spike
from nearline.accounting.budget import Spend, TeamSpending
from nearline.accounting.entries import day_of
from nearline.config import AlertSettings, TeamSettings

Figure = tuple[float, int]
"""(USD, tokens sent off a machine)."""


@dataclass(frozen=True)
class TeamFigures:
    taken_at: float
    through_round: int
    """Every row this machine sent in this round or before is in these figures."""
    month_start: str
    developer: dict[str, Figure] = field(default_factory=dict)
    """Day → this developer's spend (over all their machines), this month and the trailing
    days anomalies are measured against."""
    projects: dict[tuple[str, str], Figure] = field(default_factory=dict)
    """(project, day) → spend, this month."""
    total: dict[str, Figure] = field(default_factory=dict)
    """Day → the team's spend, this month."""


def read(
    pg: psycopg.Connection[Any],
    developer: str,
    through_round: int,
    baseline_days: int = 14,
    now: float | None = None,
) -> TeamFigures:
    now = time.time() if now is None else now
    today = dt.date.fromisoformat(day_of(now))
    month_start = today.replace(day=1)
    since = min(month_start, today - dt.timedelta(days=baseline_days))
    tokens = "input_tokens + cache_read_tokens + cache_write_tokens + output_tokens"
    base = "FROM nearline_requests_daily WHERE billed AND day >= %s"
    mine = pg.execute(
        f"SELECT day, sum(cost_usd), sum({tokens}) {base} AND developer = %s GROUP BY day",
        (since, developer),
    ).fetchall()
    projects = pg.execute(
        f"SELECT project, day, sum(cost_usd), sum({tokens}) {base} GROUP BY project, day",
        (month_start,),
    ).fetchall()
    return TeamFigures(
        taken_at=now,
        through_round=through_round,
        month_start=month_start.isoformat(),
        developer={str(d): (float(u or 0), int(t or 0)) for d, u, t in mine},
        projects={(str(p), str(d)): (float(u or 0), int(t or 0)) for p, d, u, t in projects},
        total=_by_day((str(d), float(u or 0), int(t or 0)) for _, d, u, t in projects),
    )


def _by_day(rows: Iterable[tuple[str, float, int]]) -> dict[str, Figure]:
    out: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    for day, usd, tokens in rows:
        out[day][0] += usd
        out[day][1] += tokens
    return {d: (u, int(t)) for d, (u, t) in out.items()}


def spending(
    found: TeamFigures,
    unsent: Iterable[tuple[str, str, float, int]],
    project: str,
    today: str,
) -> TeamSpending:
    """The team's figures plus this machine's rows they do not hold yet (``unsent``:
    (project, day, USD, tokens), from ``outbox.unsent_spend``)."""
    mine = dict(found.developer)
    projects = dict(found.projects)
    total = dict(found.total)
    for p, day, usd, tokens in unsent:
        for table, key in ((mine, day), (projects, (p, day)), (total, day)):
            u, t = table.get(key, (0.0, 0))  # type: ignore[attr-defined, arg-type]
            table[key] = (u + usd, t + tokens)  # type: ignore[index]
    month = today[:8] + "01"

    def spend(table: dict[Any, Figure], days: Iterable[Any]) -> Spend:
        parts = [table.get(d, (0.0, 0)) for d in days]
        return Spend(sum(p[0] for p in parts), sum(p[1] for p in parts))

    month_days = sorted({d for d in total if month <= d <= today})
    return TeamSpending(
        developer_day=spend(mine, [today]),
        developer_month=spend(mine, [d for d in mine if month <= d <= today]),
        project_day=spend(projects, [(project, today)]),
        project_month=spend(projects, [(project, d) for d in month_days]),
        total_day=spend(total, [today]),
        total_month=spend(total, month_days),
    )


def anomaly(
    daily: dict[str, Figure], day: str, settings: TeamSettings, first_day: str | None = None
) -> Spike | None:
    """Whether ``day``'s spend passes ``anomaly_factor`` times the trailing average of the
    ``anomaly_baseline_days`` before it (and ``anomaly_min_usd``): the team's rule, for a
    developer, a project or a tool alike."""
    rule = AlertSettings(
        spike_factor=settings.anomaly_factor,
        spike_min_usd=settings.anomaly_min_usd,
        spike_min_tokens=2**62,  # the team's rule is about money
    )
    return spike(day, daily, rule, first_day, window=settings.anomaly_baseline_days)
