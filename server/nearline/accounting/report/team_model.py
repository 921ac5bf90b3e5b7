"""The team's usage report (``nearline usage --team``) as plain data: what the team database's
aggregate queries found, grouped by developer, project, client, model, tier, task or period,
with acceptance per developer and model, provider cache hits and the anomalous days.

No database here: ``nearline.accounting.team.report`` fills these from SQL; ``team_render``
formats them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from nearline.accounting.alerts import Spike
from nearline.accounting.report.dashboard import ModelSums
from nearline.accounting.report.model import AcceptanceFigures, cache_read_share, period_key

TEAM_GROUPINGS = ("developer", "project", "client", "model", "tier", "task")
ANOMALY_KINDS = ("developer", "project", "tool")
"""What an anomaly is about; "tool" is the ``client`` column (lsp, complete, eval, ...)."""
ALL_MODELS = None
"""``Acceptance.model`` of a developer's row over all their models."""


@dataclass(frozen=True)
class TeamGroup:
    """The requests (completion buckets count their ``requests``) of one key."""

    key: str
    requests: int
    input_tokens: int
    """Uncached input."""
    cache_read_tokens: int
    cache_write_tokens: int
    output_tokens: int
    cost_usd: float
    anomaly: str | None = None
    """The anomalies of this developer, project, tool or period, said in words."""

    @property
    def total_tokens(self) -> int:
        return (
            self.input_tokens
            + self.cache_read_tokens
            + self.cache_write_tokens
            + self.output_tokens
        )


@dataclass(frozen=True)
class Acceptance(AcceptanceFigures):
    """A developer's completions on one model (``model`` None: all their models)."""

    developer: str
    model: str | None
    shown: int
    accepted: int
    chars_accepted: int
    cost_usd: float
    """The developer's whole spend on that model (all models: all of it) in the window,
    escalations included: what each accepted suggestion costs the team."""


@dataclass(frozen=True)
class CacheShare:
    """One provider's billed requests: how much of their input came from its cache."""

    provider: str
    input_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int

    @property
    def share(self) -> float | None:
        return cache_read_share(self.input_tokens, self.cache_read_tokens, self.cache_write_tokens)


@dataclass(frozen=True)
class TeamAnomaly:
    """A day whose spend (billed requests, as team budgets count it) passed the team's rule
    against its own trailing average."""

    kind: str
    """One of ``ANOMALY_KINDS``."""
    name: str
    day: str
    spend_usd: float
    average_usd: float
    baseline_days: int
    """How many days before ``day`` the average covers (fewer for a newcomer)."""

    @property
    def message(self) -> str:
        spike = Spike(self.day, "usd", self.spend_usd, self.average_usd, self.baseline_days)
        return f"{self.kind} {self.name}: {spike.describe()}"


@dataclass(frozen=True)
class TeamReport:
    since: str
    until: str
    period: str
    """"day", "week" or "month"; ignored when ``by`` is set."""
    by: str | None
    """One of ``TEAM_GROUPINGS``; None: group by ``period``."""
    project: str | None
    groups: tuple[TeamGroup, ...]
    total: TeamGroup
    acceptance: tuple[Acceptance, ...]
    """Per developer: first their row over all models, then one per model."""
    cache: tuple[CacheShare, ...]
    anomalies: tuple[TeamAnomaly, ...]
    models: tuple[ModelSums, ...] = ()
    """Sums per tier, provider, model and billed (the dashboard's levers)."""

    @property
    def grouped_by(self) -> str:
        return self.by or self.period


# -- assembling (pure) -----------------------------------------------------------------------


def total_of(groups: Iterable[TeamGroup], key: str = "total") -> TeamGroup:
    parts = list(groups)
    return TeamGroup(
        key=key,
        requests=sum(g.requests for g in parts),
        input_tokens=sum(g.input_tokens for g in parts),
        cache_read_tokens=sum(g.cache_read_tokens for g in parts),
        cache_write_tokens=sum(g.cache_write_tokens for g in parts),
        output_tokens=sum(g.output_tokens for g in parts),
        cost_usd=math.fsum(g.cost_usd for g in parts),
    )


def order_groups(groups: Iterable[TeamGroup], by: str | None) -> list[TeamGroup]:
    """Periods in time order; anything else by spend, then tokens, then name."""
    if by is None:
        return sorted(groups, key=lambda g: g.key)
    return sorted(groups, key=lambda g: (-g.cost_usd, -g.total_tokens, g.key))


def flag_groups(
    groups: Sequence[TeamGroup], anomalies: Sequence[TeamAnomaly], period: str, by: str | None
) -> list[TeamGroup]:
    """Each group with the anomalies that are about it: a period's days, or the developer,
    project or tool it is (other groupings are flagged by none)."""
    kind = {"developer": "developer", "project": "project", "client": "tool"}.get(by or "")

    def about(g: TeamGroup, a: TeamAnomaly) -> bool:
        if by is None:
            return period_key(a.day, period) == g.key
        return a.kind == kind and a.name == g.key

    out = []
    for g in groups:
        said = "; ".join(a.message for a in anomalies if about(g, a))
        out.append(replace(g, anomaly=said or None))
    return out


def acceptance_rows(rows: Iterable[Acceptance]) -> list[Acceptance]:
    """Per developer with suggestions shown: their row over all models (spend summed over every
    model, those without suggestions too), then their models with suggestions shown."""
    by_developer: dict[str, list[Acceptance]] = {}
    for row in rows:
        by_developer.setdefault(row.developer, []).append(row)
    out: list[Acceptance] = []
    for developer in sorted(by_developer):
        models = by_developer[developer]
        if not any(m.shown for m in models):
            continue
        out.append(
            Acceptance(
                developer=developer,
                model=ALL_MODELS,
                shown=sum(m.shown for m in models),
                accepted=sum(m.accepted for m in models),
                chars_accepted=sum(m.chars_accepted for m in models),
                cost_usd=math.fsum(m.cost_usd for m in models),
            )
        )
        out += sorted((m for m in models if m.shown), key=lambda m: (-m.shown, m.model or ""))
    return out


def build_team_report(
    *,
    since: str,
    until: str,
    period: str,
    by: str | None,
    project: str | None,
    groups: Iterable[TeamGroup],
    acceptance: Iterable[Acceptance],
    cache: Iterable[CacheShare],
    anomalies: Iterable[TeamAnomaly],
    models: Iterable[ModelSums] = (),
) -> TeamReport:
    """The report from what the queries found (in any order)."""
    found = sorted(anomalies, key=lambda a: (a.day, ANOMALY_KINDS.index(a.kind), a.name))
    ordered = order_groups(groups, by)
    return TeamReport(
        since=since,
        until=until,
        period=period,
        by=by,
        project=project,
        groups=tuple(flag_groups(ordered, found, period, by)),
        total=total_of(ordered),
        acceptance=tuple(acceptance_rows(acceptance)),
        cache=tuple(sorted(cache, key=lambda c: c.provider)),
        anomalies=tuple(found),
        models=tuple(models),
    )
