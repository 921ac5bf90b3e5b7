"""``nearline dashboard --team``'s figures over a real PostgreSQL: each filter narrows every
figure to the right sums, the budgets' run-out days, the anomalies' links, the requests."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from nearline.accounting.report.dashboard import dashboard_dict
from nearline.accounting.team import views
from nearline.app.dashboard import Filters
from nearline.app.team_dashboard import team_dashboard
from nearline.config import parse_settings
from test_team_report import FIRST, LAST, SETTINGS, Conn, db, team  # noqa: F401

WINDOW = {"since": FIRST.isoformat(), "until": LAST.isoformat()}


def board(settings: Any = SETTINGS, **filters: str) -> Any:
    return team_dashboard(settings, Filters(**{**WINDOW, **filters}), today=dt.date(2026, 6, 1))


def test_whole_team_and_each_filter(team: Conn) -> None:  # noqa: F811
    every = board()
    assert every.cost_usd == pytest.approx(4.55)
    assert sum(s.cost_usd for s in every.slices) == pytest.approx(4.55)
    assert every.choices["developer"] == ("alice", "bob", "carol")
    assert every.choices["tier"] == ("flagship", "local", "value")
    assert every.choices["client"] == ("complete", "eval", "lsp")
    for filters, cost, requests in (
        ({"developer": "bob"}, 2.75, 12),
        ({"project": "api"}, 2.75, 12),
        ({"client": "complete"}, 0.75, 1),
        ({"model": "claude-sonnet"}, 3.25, 2),
        ({"tier": "flagship"}, 3.25, 2),
        ({"tier": "local"}, 0.05, 76),
        ({"developer": "alice", "model": "qwen-coder"}, 0.0, 60),
    ):
        d = board(**filters)
        assert d.cost_usd == pytest.approx(cost), filters
        assert d.total["requests"] == requests, filters
        assert sum(s.cost_usd for s in d.slices) == pytest.approx(cost), filters
        rows = d.requests
        assert sum(r[8] for r in rows) == requests, filters
        for name, value in filters.items():
            column = {"developer": 1, "project": 2, "client": 3, "tier": 5, "model": 6}[name]
            assert {r[column] for r in rows} == {value}, filters
        assert d.choices == every.choices  # the choices are the window's, whatever the filters


def test_stacked_by_tool_and_suggestions(team: Conn) -> None:  # noqa: F811
    d = board(stack="client")
    per = {}
    for s in d.slices:
        per[s.part] = per.get(s.part, 0.0) + s.cost_usd
    assert per == pytest.approx({"lsp": 3.8, "complete": 0.75, "eval": 0.0})
    models = {s.key: (s.shown, s.accepted, s.chars_accepted) for s in d.by_model}
    assert models == {"qwen-coder": (48, 15, 700), "codestral": (5, 5, 100)}
    developers = {s.key: (s.shown, s.accepted) for s in d.by_developer}
    assert developers == {"alice": (45, 20), "bob": (8, 0)}


def test_budgets_and_the_day_each_runs_out(team: Conn) -> None:  # noqa: F811
    settings = parse_settings(
        {
            "budget": {
                "team": {
                    "total": {"monthly_usd": 10.0},
                    "developer": {"monthly_usd": 2.0, "daily_usd": 5.0},
                }
            }
        }
    )
    d = board(settings)  # as of 2026-05-10, the window's last day
    lines = {(b.scope, b.name, b.period): b for b in d.budgets}
    total = lines[("team", "", "monthly")]
    assert total.spent_usd == pytest.approx(3.25)  # billed requests of May 1..10
    assert total.run_out == "2026-05-31"  # $0.325 a day: $6.75 more in 21 days
    assert lines[("developer", "bob", "monthly")].run_out == "2026-05-10"  # reached
    assert lines[("developer", "alice", "monthly")].run_out == "2026-05-16"
    assert lines[("developer", "alice", "daily")].spent_usd == 0.0
    narrowed = {(b.scope, b.name) for b in board(settings, developer="bob").budgets}
    assert narrowed == {("team", ""), ("developer", "bob")}


def test_anomalies_link_to_their_requests(team: Conn) -> None:  # noqa: F811
    d = board()
    assert d.flags
    for flag in d.flags:
        ((kind, name),) = flag.narrow.items()
        assert kind in ("developer", "project", "client")
        behind = board(since=flag.day, until=flag.day, **{kind: name})
        assert behind.requests and behind.cost_usd > 0


def test_levers_and_json(team: Conn) -> None:  # noqa: F811
    d = board()
    known = sum(v.saved_usd for v in d.levers if v.saved_usd is not None)
    assert known == pytest.approx(d.naive_usd - d.cost_usd)
    data = dashboard_dict(d)
    assert data["report"]["totals"]["cost_usd"] == pytest.approx(4.55)
    assert d.total["total_tokens"] > 0
    assert data["filters"] == WINDOW and data["source"] == "team"


def test_newest_requests_first_and_more(team: Conn) -> None:  # noqa: F811
    params = {"first": FIRST, "last": LAST}
    rows, more = views.read_requests(team, params, 3)
    assert more and len(rows) == 3
    assert [r[0] for r in rows] == sorted((r[0] for r in rows), reverse=True)
    everything, more = views.read_requests(team, params, 100)
    assert not more and sum(r[8] for r in everything) == 80
