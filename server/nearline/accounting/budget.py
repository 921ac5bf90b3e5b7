"""Budgets: what was spent (``Spending``, which the ledger reads) against the caps. Pure rules
over numbers; nothing here reads the database or talks to the editor.

Budgets apply to escalations sent off this machine: autocomplete is never blocked."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from nearline.config import BudgetSettings, Caps


@dataclass(frozen=True)
class Spend:
    """What was spent in one period, for budgets and the status bar."""

    usd: float = 0.0
    cloud_tokens: int = 0


@dataclass(frozen=True)
class TeamSpending:
    """The team's spend (its database's last figure plus this machine's unsent rows)."""

    developer_day: Spend = Spend()
    developer_month: Spend = Spend()
    project_day: Spend = Spend()
    project_month: Spend = Spend()
    total_day: Spend = Spend()
    total_month: Spend = Spend()


@dataclass(frozen=True)
class Spending:
    project_day: Spend = Spend()
    project_month: Spend = Spend()
    user_day: Spend = Spend()
    user_month: Spend = Spend()
    team: TeamSpending | None = None
    """None: no team caps apply, or the team's figure is unknown (``team_unknown`` says why)."""
    team_unknown: str = ""


@dataclass(frozen=True)
class Limit:
    scope: str
    """"project" or "user"; "team-developer", "team-project" or "team" for team caps."""
    period: str
    """"daily" or "monthly"."""
    unit: str
    """"usd" or "tokens"."""
    cap: float
    used: float

    def describe(self) -> str:
        kind = f"{self.period} {'budget' if self.unit == 'usd' else 'token budget'}"
        return {
            "project": f"this project's {kind}",
            "user": f"your {kind}",
            "team-developer": f"the team's {kind} per developer (budget.team.developer)",
            "team-project": f"the team's {kind} for this project (budget.team.project)",
            "team": f"the team's total {kind} (budget.team.total)",
        }[self.scope]

    def amount(self, value: float) -> str:
        return f"${value:,.2f}" if self.unit == "usd" else f"{int(value):,} tokens"


@dataclass(frozen=True)
class Verdict:
    exceeded: Limit | None = None
    """The first budget this request would pass; None when it fits."""
    message: str = ""
    """Why the request is refused or downgraded, and when the budget resets."""
    warnings: tuple[tuple[str, str], ...] = ()
    """(key, message) for budgets past the soft threshold; the key names the period, so the
    editor is warned once per budget and period."""


def reset_time(period: str, now: float) -> dt.datetime:
    today = dt.datetime.fromtimestamp(now).date()
    if period == "daily":
        day = today + dt.timedelta(days=1)
    else:
        day = (today.replace(day=1) + dt.timedelta(days=32)).replace(day=1)
    return dt.datetime.combine(day, dt.time())


def _period_key(period: str, now: float) -> str:
    today = dt.datetime.fromtimestamp(now).date()
    return today.isoformat() if period == "daily" else today.isoformat()[:7]


def _limits(settings: BudgetSettings, spending: Spending) -> Iterator[Limit]:
    spends: Mapping[tuple[str, str], Spend] = {
        ("project", "daily"): spending.project_day,
        ("project", "monthly"): spending.project_month,
        ("user", "daily"): spending.user_day,
        ("user", "monthly"): spending.user_month,
    }
    scopes = [("project", settings.project), ("user", settings.user)]
    if spending.team is not None:
        t = spending.team
        spends = {
            **spends,
            ("team-developer", "daily"): t.developer_day,
            ("team-developer", "monthly"): t.developer_month,
            ("team-project", "daily"): t.project_day,
            ("team-project", "monthly"): t.project_month,
            ("team", "daily"): t.total_day,
            ("team", "monthly"): t.total_month,
        }
        team = settings.team
        scopes += [("team-developer", team.developer), ("team-project", team.project)]
        scopes.append(("team", team.total))
    for scope, caps in scopes:
        for period in ("daily", "monthly"):
            spend = spends[(scope, period)]
            usd, tokens = _caps(caps, period)
            if usd is not None:
                yield Limit(scope, period, "usd", usd, spend.usd)
            if tokens is not None:
                yield Limit(scope, period, "tokens", tokens, spend.cloud_tokens)


def _caps(caps: Caps, period: str) -> tuple[float | None, int | None]:
    if period == "daily":
        return caps.daily_usd, caps.daily_tokens
    return caps.monthly_usd, caps.monthly_tokens


def team_left(settings: BudgetSettings, spending: Spending) -> str:
    """What is left of the tightest team budget in USD ("" without team caps or figures),
    for the code actions beside the estimate."""
    team = [
        limit
        for limit in _limits(settings, spending)
        if limit.scope.startswith("team") and limit.unit == "usd"
    ]
    if not team:
        return ""
    tight = min(team, key=lambda limit: limit.cap - limit.used)
    left = max(0.0, tight.cap - tight.used)
    whose = {"team-developer": "yours", "team-project": "this project's", "team": "the team's"}
    return f"team budget left ${left:,.2f} {tight.period} ({whose[tight.scope]})"


def check(
    settings: BudgetSettings,
    spending: Spending,
    *,
    est_usd: float,
    est_tokens: int,
    now: float | None = None,
    team_closed: bool = False,
) -> Verdict:
    """Whether a cloud request estimated at ``est_usd`` and ``est_tokens`` fits the budgets.
    Team caps whose figure is unknown (``spending.team_unknown``) refuse the request when
    ``team_closed`` (``team.when_unreachable = "closed"``), else warn once a day."""
    now = time.time() if now is None else now
    warnings = []
    if spending.team_unknown and settings.team.any():
        if team_closed:
            return Verdict(
                exceeded=Limit("team", "daily", "usd", 0.0, 0.0),
                message=(
                    f"team budgets cannot be checked ({spending.team_unknown}), and "
                    'team.when_unreachable = "closed" refuses escalations until they can'
                ),
            )
        warnings.append(
            (
                f"team-unknown:{_period_key('daily', now)}",
                f"nearline: team budgets are not checked for now: {spending.team_unknown}",
            )
        )
    for limit in _limits(settings, spending):
        estimate = est_usd if limit.unit == "usd" else est_tokens
        if limit.used + estimate > limit.cap:
            when = reset_time(limit.period, now)
            spent = "spent" if limit.used >= limit.cap else "nearly spent"
            return Verdict(
                exceeded=limit,
                message=(
                    f"{limit.describe()} of {limit.amount(limit.cap)} is {spent} "
                    f"({limit.amount(limit.used)} used, this request ~{limit.amount(estimate)}); "
                    f"it resets {when:%Y-%m-%d %H:%M}"
                ),
            )
        if limit.used >= settings.soft_threshold * limit.cap:
            period = _period_key(limit.period, now)
            key = f"budget:{limit.scope}:{limit.period}:{limit.unit}:{period}"
            share = limit.used / limit.cap if limit.cap else 1.0
            warnings.append(
                (
                    key,
                    f"nearline: {share:.0%} of {limit.describe()} is used "
                    f"({limit.amount(limit.used)} of {limit.amount(limit.cap)}); it resets "
                    f"{reset_time(limit.period, now):%Y-%m-%d %H:%M}",
                )
            )
    return Verdict(warnings=tuple(warnings))
