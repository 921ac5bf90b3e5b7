"""Team budgets: the team's last figure plus this machine's unsent rows plus the request, the
caps per developer, per project and in total, a figure that is unknown (open or closed), the
budget left shown beside the estimate, and the developer's anomaly shown once."""

from __future__ import annotations

import time
from pathlib import Path

from nearline.accounting.budget import Spend, Spending, TeamSpending, check, team_left
from nearline.accounting.entries import day_of
from nearline.accounting.ledger import Ledger
from nearline.accounting.team import figures
from nearline.app.team import TeamLink
from nearline.config import BudgetSettings, Caps, TeamCaps, TeamSettings, parse_settings

NOW = time.mktime((2026, 11, 23, 15, 30, 0, 0, 0, -1))
TODAY = day_of(NOW)


def team_budget(**caps: Caps) -> BudgetSettings:
    return BudgetSettings(team=TeamCaps(**caps))


def with_team(**spends: Spend) -> Spending:
    return Spending(team=TeamSpending(**spends))


def test_a_team_cap_counts_every_machine_and_names_itself() -> None:
    budget = team_budget(total=Caps(daily_usd=10.0))
    fits = check(budget, with_team(total_day=Spend(9.0)), est_usd=0.5, est_tokens=0, now=NOW)
    assert fits.exceeded is None
    over = check(budget, with_team(total_day=Spend(9.8)), est_usd=0.5, est_tokens=0, now=NOW)
    assert over.exceeded is not None and over.exceeded.scope == "team"
    assert "the team's total daily budget (budget.team.total) of $10.00" in over.message
    per_dev = team_budget(developer=Caps(monthly_usd=50.0))
    over = check(
        per_dev, with_team(developer_month=Spend(49.9)), est_usd=0.2, est_tokens=0, now=NOW
    )
    assert "per developer (budget.team.developer)" in over.message


def test_an_unknown_team_figure_is_open_by_default_and_closed_when_asked() -> None:
    budget = team_budget(project=Caps(daily_usd=5.0))
    unknown = Spending(team_unknown="cannot connect to the team database db:5432/team")
    verdict = check(budget, unknown, est_usd=0.5, est_tokens=0, now=NOW)
    assert verdict.exceeded is None
    assert any("not checked" in message for _, message in verdict.warnings)
    closed = check(budget, unknown, est_usd=0.5, est_tokens=0, now=NOW, team_closed=True)
    assert closed.exceeded is not None and "when_unreachable" in closed.message
    # without team caps, an unknown figure changes nothing
    assert check(BudgetSettings(), unknown, est_usd=0.5, est_tokens=0, now=NOW).warnings == ()


def test_the_budget_left_beside_the_estimate() -> None:
    budget = team_budget(developer=Caps(daily_usd=20.0), total=Caps(daily_usd=100.0))
    spending = with_team(developer_day=Spend(17.5), total_day=Spend(40.0))
    assert team_left(budget, spending) == "team budget left $2.50 daily (yours)"
    assert team_left(BudgetSettings(), spending) == ""


def test_the_team_figure_plus_what_this_machine_has_not_sent() -> None:
    found = figures.TeamFigures(
        taken_at=NOW,
        through_round=7,
        month_start=TODAY[:8] + "01",
        developer={TODAY: (1.0, 100)},
        projects={("shop", TODAY): (3.0, 300), ("blog", TODAY): (2.0, 200)},
        total={TODAY: (5.0, 500)},
    )
    unsent = [("shop", TODAY, 0.5, 50)]
    spent = figures.spending(found, unsent, "shop", TODAY)
    assert spent.developer_day == Spend(1.5, 150)
    assert spent.project_day == Spend(3.5, 350)
    assert spent.total_day == Spend(5.5, 550)
    assert spent.total_month == Spend(5.5, 550)


def test_the_anomaly_rule_flags_a_3x_day_and_not_noise() -> None:
    team = TeamSettings()
    steady = {f"2026-11-{d:02d}": (2.0 + (d % 3) * 0.3, 0) for d in range(1, 23)}
    assert figures.anomaly({**steady, "2026-11-23": (3.5, 0)}, "2026-11-23", team) is None
    found = figures.anomaly({**steady, "2026-11-23": (9.0, 0)}, "2026-11-23", team)
    assert found is not None and found.value == 9.0


def test_the_developer_is_told_of_their_anomaly_once(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "usage.db")
    told: list[str] = []
    link = TeamLink(ledger, told.append)
    link.team = TeamSettings()
    today = day_of(time.time())
    import datetime as dt

    days = {
        (dt.date.fromisoformat(today) - dt.timedelta(days=i)).isoformat(): (1.0, 0)
        for i in range(1, 15)
    }
    found = figures.TeamFigures(
        taken_at=time.time(),
        through_round=0,
        month_start=today[:8] + "01",
        developer={**days, today: (8.0, 0)},
    )
    link._anomaly(found)
    link._anomaly(found)
    ledger.close()
    assert len(told) == 1 and "unusual spending" in told[0] and "$8.00" in told[0]


def test_team_settings_are_checked() -> None:
    import pytest

    from nearline.errors import ConfigError

    with pytest.raises(ConfigError, match="team.when_unreachable"):
        parse_settings({"team": {"when_unreachable": "maybe"}})
    with pytest.raises(ConfigError) as err:
        parse_settings({"team": {"url_env": "postgresql://u:hunter2@db/team"}})
    assert "hunter2" not in str(err.value) and "environment variable" in str(err.value)
    assert parse_settings({}).team is None
    assert parse_settings({"team": {}}).team == TeamSettings()
