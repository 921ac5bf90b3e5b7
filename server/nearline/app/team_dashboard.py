"""``nearline dashboard --team``: the dashboard of the team database (every figure summed in
SQL, on one snapshot)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor

from nearline.accounting.report import dashboard as board
from nearline.accounting.report.team_model import ALL_MODELS, TeamReport
from nearline.accounting.report.team_render import report_dict
from nearline.accounting.team import views
from nearline.accounting.team.connection import TeamTarget
from nearline.accounting.team.report import read_report, reading
from nearline.app.dashboard import REQUEST_LIMIT, Filters, cap_lines, price_lookup
from nearline.config import Settings, TeamSettings

KIND_FILTER = {"developer": "developer", "project": "project", "tool": "client"}
"""An anomaly's kind → the filter that shows its requests."""
MOST_BUDGETS = 20
"""Developers' and projects' budget lines shown: the nearest to their cap first."""


def suggestions(
    report: TeamReport,
) -> tuple[tuple[board.Suggestions, ...], tuple[board.Suggestions, ...]]:
    """Per model (over developers) and per developer (over models)."""
    models: dict[str, list[board.Suggestions]] = {}
    developers = []
    for a in report.acceptance:
        item = board.Suggestions(a.model or "", a.shown, a.accepted, a.chars_accepted, a.cost_usd)
        if a.model is ALL_MODELS:
            developers.append(dataclasses.replace(item, key=a.developer))
        else:
            models.setdefault(a.model, []).append(item)
    by_model = [board.add_suggestions(m, parts) for m, parts in models.items()]
    return board.ranked(by_model), board.ranked(developers)


def team_budgets(
    settings: Settings, spent: views.Spent, asof: dt.date, narrow: Mapping[str, str]
) -> list[board.Budget]:
    """The team's caps against its spend; each developer's and project's (those of the filter,
    else the nearest to their cap)."""
    caps = settings.budget.team
    out = cap_lines("team", "", caps.total, *spent.get(("team", ""), (0.0, 0.0)), asof)
    for scope, scope_caps in (("developer", caps.developer), ("project", caps.project)):
        lines: list[board.Budget] = []
        for (kind, name), (month, day) in spent.items():
            if kind == scope and narrow.get(scope, name) == name:
                lines += cap_lines(scope, name, scope_caps, month, day, asof)
        lines.sort(key=lambda b: (-b.share, b.name, b.period))
        out += lines[:MOST_BUDGETS]
    return out


def flags(report: TeamReport) -> Iterable[board.Flag]:
    for a in report.anomalies:
        yield board.Flag(a.day, a.message, {KIND_FILTER[a.kind]: a.name})


def team_dashboard(
    settings: Settings, filters: Filters, *, today: dt.date | None = None
) -> board.Dashboard:
    """The team's dashboard, read from the database ``team.url_env`` names; ``TeamError`` when
    it is unset, unreachable or holds no nearline tables."""
    team = settings.team or TeamSettings()
    today = today or dt.date.today()
    first, last = filters.window(today)
    asof = min(last, today)
    narrow = filters.narrow()
    params = {**narrow, "first": first, "last": last}
    price, price_for = price_lookup(settings)
    target = TeamTarget.from_env(team.url_env)
    with reading(target, more=2) as db, ThreadPoolExecutor(max_workers=1) as pool:
        extra = (db.more[0], db.more[1])
        beside = pool.submit(views.read_extras, extra, params, filters.stack, asof, REQUEST_LIMIT)
        report = read_report(
            db.main,
            first,
            last,
            side=db.side,
            period=filters.period,
            project=filters.project,
            rule=team,
            narrow=narrow,
        )
        extras = beside.result()
    sums = report.models
    naive, levers = board.levers(sums, price, price_for)
    by_model, by_developer = suggestions(report)
    return board.Dashboard(
        source="team",
        filters=filters.query(),
        since=first.isoformat(),
        until=last.isoformat(),
        report=report_dict(report),
        stack=filters.stack,
        slices=tuple(extras.slices),
        budgets=tuple(team_budgets(settings, extras.spent, asof, narrow)),
        levers=tuple(levers),
        naive_usd=naive,
        cost_usd=report.total.cost_usd,
        cache_hit_share=board.cloud_cache_share(sums),
        by_model=by_model,
        by_developer=by_developer,
        flags=tuple(flags(report)),
        requests=tuple(extras.requests),
        more_requests=extras.more_requests,
        choices=extras.choices,
    )
