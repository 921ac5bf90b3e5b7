"""Which tier and providers serve an escalated request, and why: the tier's chain less the
providers the project's data policy excludes. No network; the only file it reads is the price
table."""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePath

from nearline.accounting.prices import Tokens, provider_price, table_for
from nearline.config import LOCAL_PROVIDER, ProviderSettings, RuleSettings, Settings
from nearline.escalation import policy
from nearline.tasks import TASKS, TaskKind

CHARS_PER_TOKEN = 3.5
SYSTEM_TOKENS = 350
"""The system prompt and framing, in tokens, added to every estimate."""


@dataclass(frozen=True)
class RouteRequest:
    task: str
    files: tuple[str, ...]
    """Paths; the first holds the selection or cursor."""
    selection_lines: int = 0
    est_tokens: int = 0
    language: str = ""
    map_tokens: int = 0
    """The project map's tokens, for the tiers whose prompts carry it (``project_map.tiers``):
    priced as cache reads, what it costs once the team has it in the provider's cache."""
    pointed_tokens: int = 0
    """A long selection's tokens, left out of ``est_tokens`` because the prompt points at it
    in its file; sent again (and counted) when the first provider bills nothing for input."""


@dataclass(frozen=True)
class Decision:
    task: str
    tier: str
    providers: tuple[str, ...]
    reason: str
    """Which rule (or default, or policy) chose the tier."""
    est_tokens: int
    est_output_tokens: int
    est_cost_usd: float
    cloud: bool
    """Whether the first provider is off this machine."""
    refused: str | None = None
    """Why the request cannot be served; None when it can."""
    private: bool = False
    """Refused because the content must stay on this machine."""
    over_budget: bool = False
    """Refused because a budget is spent."""
    warnings: tuple[tuple[str, str], ...] = ()
    """(key, message) for budgets past their soft threshold; shown once per key."""
    team_left: str = ""
    """What is left of the tightest team budget ("" without team caps)."""
    skipped: tuple[tuple[str, str], ...] = ()
    """(provider, why) for the tier's providers ``privacy.providers`` excludes: never sent
    anything."""
    excluded: bool = False
    bills_input: bool = False
    """Whether the first provider charges for input tokens: only then is a long selection
    pointed at rather than sent again (``prompts.POINT_AT_LINES``)."""
    """Refused because no provider of the tier meets ``privacy.providers``."""

    @property
    def provider(self) -> str | None:
        return self.providers[0] if self.providers else None


def estimate_tokens(texts: Sequence[str]) -> int:
    return SYSTEM_TOKENS + int(sum(len(t) for t in texts) / CHARS_PER_TOKEN)


def estimate_output(task: str, selection_lines: int) -> int:
    """Expected answer size: the task's own, else a diff about the selection's size."""
    expected = TASKS[TaskKind(task)].output_tokens
    return expected if expected is not None else max(200, selection_lines * 14)


def _in_range(value: int, low: int | None, high: int | None) -> bool:
    return (low is None or value >= low) and (high is None or value <= high)


def _path_matches(path: str, globs: Sequence[str]) -> bool:
    pure = PurePath(path)
    return any(pure.match(g) or fnmatch.fnmatch(path, g) for g in globs)


def rule_matches(rule: RuleSettings, req: RouteRequest) -> bool:
    return (
        (not rule.task or req.task in rule.task)
        and (not rule.language or req.language in rule.language)
        and (not rule.paths or any(_path_matches(f, rule.paths) for f in req.files))
        and _in_range(len(req.files), rule.min_files, rule.max_files)
        and _in_range(req.selection_lines, rule.min_selection_lines, rule.max_selection_lines)
        and _in_range(req.est_tokens, rule.min_tokens, rule.max_tokens)
    )


def describe_rule(index: int, rule: RuleSettings) -> str:
    parts = []
    for key in ("task", "language", "paths"):
        values = getattr(rule, key)
        if values:
            parts.append(f"{key} in [{', '.join(values)}]")
    for key in ("files", "selection_lines", "tokens"):
        low, high = getattr(rule, f"min_{key}"), getattr(rule, f"max_{key}")
        if low is not None:
            parts.append(f"{key} >= {low}")
        if high is not None:
            parts.append(f"{key} <= {high}")
    label = f' "{rule.name}"' if rule.name else ""
    return f"rule {index + 1}{label}: " + (", ".join(parts) or "always")


def choose_tier(req: RouteRequest, settings: Settings) -> tuple[str, str]:
    for i, rule in enumerate(settings.routing.rules):
        if rule_matches(rule, req):
            return rule.tier, describe_rule(i, rule)
    return settings.routing.default_tier, "routing.default_tier (no rule matched)"


def route_for(
    req: RouteRequest,
    settings: Settings,
    *,
    private: str | None = None,
    tier: str | None = None,
    reason: str = "",
) -> Decision:
    """The decision for ``req``. ``private`` is the privacy verdict (why content must stay
    local) or None. ``tier`` forces a tier (a budget's downgrade), ``reason`` says why."""
    if tier is None:
        tier, reason = choose_tier(req, settings)
    chain = settings.routing.tiers.get(tier, ())
    refused = None
    local_tier = next(
        (t for t, c in settings.routing.tiers.items() if c == (LOCAL_PROVIDER,)), None
    )
    goes_out = any(p != LOCAL_PROVIDER for p in chain)
    if goes_out and not settings.cloud:
        if local_tier is not None:
            tier, chain, reason = local_tier, (LOCAL_PROVIDER,), f"cloud = false ({reason})"
        else:
            refused = "cloud = false for this project and no tier is the local model"
    elif goes_out and private is not None:
        if settings.privacy.on_private == "local" and local_tier is not None:
            tier, chain = local_tier, (LOCAL_PROVIDER,)
            reason = f"privacy: kept local ({private})"
        else:
            refused = private
    chain, skipped = policy.split_chain(chain, settings)
    excluded = bool(skipped) and not chain and refused is None
    if excluded:
        refused = policy.refusal(tier, settings, skipped)
    if not chain and refused is None:
        refused = (
            f"tier '{tier}' has no providers; add one under [providers] and list it in "
            f"routing.tiers.{tier} in .nearline.toml (or route this task to 'local')"
        )
    output = estimate_output(req.task, req.selection_lines)
    first = settings.providers.get(chain[0]) if chain else None
    cost, bills_input, est_tokens = 0.0, False, req.est_tokens
    if first is not None:
        price = provider_price(first, table_for(settings))
        bills_input = price.input_cost_per_token > 0
        mapped = req.map_tokens if tier in settings.project_map.tiers else 0
        cost = price.cost(Tokens(input=req.est_tokens, cache_read=mapped, output=output))
    if not bills_input:
        est_tokens += req.pointed_tokens
    return Decision(
        task=req.task,
        tier=tier,
        providers=tuple(chain),
        reason=reason,
        est_tokens=est_tokens,
        est_output_tokens=output,
        est_cost_usd=cost,
        cloud=bool(chain) and chain[0] != LOCAL_PROVIDER,
        refused=refused,
        private=refused is not None and refused == private,
        skipped=skipped,
        excluded=excluded,
        bills_input=bills_input,
    )


def model_of(provider: str, settings: Settings) -> str:
    if provider == LOCAL_PROVIDER:
        return "the local model"
    p = settings.providers.get(provider)
    return p.model if p and p.model else provider


def describe_endpoint(p: ProviderSettings) -> str:
    """Where a provider's requests, and its key, go: never the key itself."""
    key = f"key from ${p.api_key_env}" if p.api_key_env else "no key"
    return f"{p.name} → {p.base_url} ({p.kind}, {key})"


def title_for(decision: Decision, settings: Settings, label: str) -> str:
    """A code action title that says who answers and the estimated cost."""
    if decision.refused:
        return f"nearline: {label} (unavailable: {decision.refused[:80]})"
    who = model_of(decision.providers[0], settings)
    cost = f", ~${decision.est_cost_usd:.3f}" if decision.cloud else ", free"
    left = f"; {decision.team_left}" if decision.team_left and decision.cloud else ""
    names = ", ".join(name for name, _ in decision.skipped)
    skipped = f"; {names} skipped: privacy.providers" if names else ""
    return f"nearline: {label} → {decision.tier} ({who}{cost}{left}{skipped})"
