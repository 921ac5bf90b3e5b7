"""Budgets (soft warning, refusal, downgrade), the spending-spike rule on synthetic histories,
and the runaway-loop guard."""

from __future__ import annotations

import datetime as dt
import re
import time
from pathlib import Path

import pytest

from nearline.accounting.alerts import LoopGuard, spike
from nearline.accounting.budget import Spend, Spending, check, reset_time
from nearline.config import AlertSettings, BudgetSettings, Caps, parse_settings
from nearline.escalation.escalator import Document, Escalator, Task
from nearline.escalation.results import RefusalKind, Refused

NOW = time.mktime((2026, 11, 23, 15, 30, 0, 0, 0, -1))


def spent(project_day: float = 0.0, project_month: float = 0.0, tokens: int = 0) -> Spending:
    return Spending(
        project_day=Spend(project_day, tokens),
        project_month=Spend(max(project_month, project_day), tokens),
        user_day=Spend(project_day, tokens),
        user_month=Spend(max(project_month, project_day), tokens),
    )


def test_a_request_within_every_budget_passes_without_warning() -> None:
    budget = BudgetSettings(project=Caps(daily_usd=10.0, monthly_usd=100.0))
    verdict = check(budget, spent(2.0, 20.0), est_usd=0.5, est_tokens=1000, now=NOW)
    assert verdict.exceeded is None and verdict.warnings == ()


def test_past_the_soft_threshold_the_editor_is_warned_once_per_period() -> None:
    budget = BudgetSettings(project=Caps(daily_usd=10.0))
    verdict = check(budget, spent(8.5), est_usd=0.5, est_tokens=1000, now=NOW)
    assert verdict.exceeded is None
    [(key, message)] = verdict.warnings
    assert key == "budget:project:daily:usd:2026-11-23"
    assert "85% of this project's daily budget" in message and "$8.50 of $10.00" in message
    tomorrow = check(budget, spent(8.5), est_usd=0.5, est_tokens=0, now=NOW + 86_400)
    assert tomorrow.warnings[0][0] != key


def test_at_the_cap_it_says_which_budget_and_when_it_resets() -> None:
    budget = BudgetSettings(user=Caps(monthly_usd=50.0))
    verdict = check(budget, spent(1.0, 50.0), est_usd=0.2, est_tokens=100, now=NOW)
    assert verdict.exceeded is not None
    assert verdict.exceeded.scope == "user" and verdict.exceeded.period == "monthly"
    assert "your monthly budget of $50.00 is spent" in verdict.message
    assert "resets 2026-12-01 00:00" in verdict.message


def test_a_request_that_would_pass_the_cap_is_stopped_before_it() -> None:
    budget = BudgetSettings(project=Caps(daily_usd=1.0))
    verdict = check(budget, spent(0.9), est_usd=0.25, est_tokens=0, now=NOW)
    assert verdict.exceeded is not None and "nearly spent" in verdict.message


def test_token_caps_count_tokens_sent_off_the_machine() -> None:
    budget = BudgetSettings(project=Caps(daily_tokens=100_000))
    over = check(budget, spent(tokens=99_000), est_usd=0.0, est_tokens=5_000, now=NOW)
    assert over.exceeded is not None and over.exceeded.unit == "tokens"
    assert "token budget of 100,000 tokens" in over.message


def test_resets() -> None:
    assert reset_time("daily", NOW) == dt.datetime(2026, 11, 24)
    assert reset_time("monthly", NOW) == dt.datetime(2026, 12, 1)
    december = time.mktime((2026, 12, 31, 23, 0, 0, 0, 0, -1))
    assert reset_time("monthly", december) == dt.datetime(2027, 1, 1)


def history(values: list[float], day: str = "2026-11-23") -> dict[str, tuple[float, int]]:
    """``values``: the 7 days before ``day``, oldest first, then ``day`` itself."""
    d = dt.date.fromisoformat(day)
    days = [(d - dt.timedelta(days=7 - i)).isoformat() for i in range(8)]
    return {k: (v, int(v * 100_000)) for k, v in zip(days, values, strict=True)}


ALERTS = AlertSettings(spike_factor=3.0, spike_min_usd=1.0, spike_min_tokens=10_000_000)


def test_a_day_past_three_times_the_weekly_average_is_an_anomaly() -> None:
    found = spike("2026-11-23", history([2, 2, 2, 2, 2, 2, 2, 6.5]), ALERTS)
    assert found is not None and found.unit == "usd"
    assert found.average == pytest.approx(2.0)
    assert "3.2x the 7-day average of $2.00" in found.describe()


def test_no_anomaly_at_or_below_three_times() -> None:
    assert spike("2026-11-23", history([2, 2, 2, 2, 2, 2, 2, 6.0]), ALERTS) is None


def test_small_amounts_are_no_anomaly() -> None:
    assert spike("2026-11-23", history([0, 0, 0, 0, 0, 0, 0.01, 0.5]), ALERTS) is None


def test_days_without_requests_count_as_zero() -> None:
    sparse = {"2026-11-20": (1.4, 0), "2026-11-23": (2.0, 0)}
    found = spike("2026-11-23", sparse, ALERTS)
    assert found is not None and found.average == pytest.approx(0.2)


def test_the_ledgers_first_day_is_no_spike() -> None:
    assert spike("2026-11-23", {"2026-11-23": (9.5, 0)}, ALERTS, "2026-11-23") is None


def test_in_the_first_week_only_the_days_recorded_are_averaged() -> None:
    daily = {"2026-11-21": (2.0, 0), "2026-11-22": (1.0, 0), "2026-11-23": (4.0, 0)}
    assert spike("2026-11-23", daily, ALERTS, "2026-11-21") is None  # 2.7x of $1.50
    found = spike("2026-11-23", daily, ALERTS, "2026-11-22")
    assert found is not None and found.days == 1
    assert found.describe() == "spend on 2026-11-23 is $4.00, 4.0x the day before's $1.00"


def test_a_history_without_spend_is_described_plainly() -> None:
    # A week of local completions (no spend), then the first escalations.
    found = spike("2026-11-23", {"2026-11-23": (5.0, 0)}, ALERTS, "2026-11-10")
    assert found is not None
    assert found.describe() == "spend on 2026-11-23 is $5.00; the 7 days before had none"


def test_a_token_spike_is_found_when_spend_is_flat() -> None:
    alerts = AlertSettings(spike_min_usd=1000.0, spike_min_tokens=1000)
    daily = {"2026-11-22": (1.0, 1000), "2026-11-23": (1.0, 50_000)}
    found = spike("2026-11-23", daily, alerts)
    assert found is not None and found.unit == "tokens"


def test_the_loop_guard_stops_the_same_request_repeated() -> None:
    guard = LoopGuard()
    alerts = AlertSettings(loop_max_requests=3, loop_window_minutes=1)
    key = ("fix", "file:///a.py", 3, 9)
    assert [guard.check(key, alerts, now=t) for t in (0, 1, 2)] == [None, None, None]
    message = guard.check(key, alerts, now=3)
    assert message is not None and "3 times in the last 1 minutes" in message
    assert guard.check(("fix", "file:///b.py", 3, 9), alerts, now=3) is None
    assert guard.check(key, alerts, now=70) is None  # the window has passed


# -- through the escalator's decision ----------------------------------------------------------

PROVIDERS = {
    "big": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "claude-sonnet-4-5"},
    "small": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "gpt-4.1-mini"},
}


def escalator(tmp_path: Path, spending: Spending, **budget: object) -> Escalator:
    settings = parse_settings(
        {
            "providers": PROVIDERS,
            "routing": {
                "tiers": {"value": ["small"], "flagship": ["big"]},
                "rules": [],
                "default_tier": "flagship",
            },
            "budget": budget,
        }
    )
    return Escalator(settings, tmp_path, lambda: Path("model.gguf"), lambda: spending)


def job(tmp_path: Path) -> tuple[Task, list[Document]]:
    path = tmp_path / "a.py"
    text = "def f(x):\n    return x + 1\n" * 20
    return Task("refactor", path.as_uri(), 0, 10), [Document(path.as_uri(), str(path), text)]


def test_a_spent_budget_refuses_the_escalation(tmp_path: Path) -> None:
    esc = escalator(tmp_path, spent(5.0), project={"daily_usd": 5.0})
    decision = esc.decide(*job(tmp_path))
    assert decision.refused and decision.over_budget and not decision.private
    assert "this project's daily budget of $5.00 is spent" in decision.refused


async def test_run_is_refused_over_budget_before_any_network(tmp_path: Path) -> None:
    esc = escalator(tmp_path, spent(5.0), project={"daily_usd": 5.0})
    result = await esc.run(*job(tmp_path))
    assert isinstance(result, Refused) and result.kind is RefusalKind.BUDGET
    assert re.search("resets", result.reason)


def test_a_project_that_says_so_is_downgraded_to_a_cheaper_tier(tmp_path: Path) -> None:
    esc = escalator(
        tmp_path,
        spent(4.999),
        project={"daily_usd": 5.0},
        on_exceeded="downgrade",
        downgrade_to="value",
    )
    decision = esc.decide(*job(tmp_path))
    assert decision.refused is None and decision.tier == "value"
    assert decision.providers == ("small",)
    assert decision.reason.startswith("budget: this project's daily budget")


def test_downgrade_to_local_when_even_the_value_tier_does_not_fit(tmp_path: Path) -> None:
    esc = escalator(tmp_path, spent(5.0), project={"daily_usd": 5.0}, on_exceeded="downgrade")
    decision = esc.decide(*job(tmp_path))
    assert decision.tier == "local" and not decision.cloud and decision.refused is None
    value_only = escalator(
        tmp_path,
        spent(5.0),
        project={"daily_usd": 5.0},
        on_exceeded="downgrade",
        downgrade_to="value",
    )
    assert value_only.decide(*job(tmp_path)).over_budget


def test_no_budgets_without_a_ledger(tmp_path: Path) -> None:
    settings = parse_settings({"budget": {"project": {"daily_usd": 0.0}}})
    esc = Escalator(settings, tmp_path, lambda: Path("m.gguf"))
    assert not esc.decide(*job(tmp_path)).over_budget
