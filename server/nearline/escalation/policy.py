"""The project's data policy (``privacy.providers``) against what the team knows of each
provider (``retention``, ``trains_on_data``, ``region``): which providers of a chain may be
sent a request, and why the others may not. Pure functions of the settings."""

from __future__ import annotations

from collections.abc import Sequence

from nearline.config import LOCAL_PROVIDER, ProviderPolicy, ProviderSettings, Settings
from nearline.config.policy import retention_days


def why_not(provider: ProviderSettings, policy: ProviderPolicy) -> str | None:
    """Why ``provider`` does not meet ``policy`` (each requirement it misses), or None when
    it does. A fact the provider does not state meets no requirement."""
    missed = []
    limit = policy.max_days
    if limit is not None:
        days = retention_days(provider.retention)
        if days is None:
            missed.append(f'its retention is unknown, the policy needs "{policy.retention}"')
        elif days > limit:
            missed.append(
                f'it keeps data ({provider.retention}), the policy needs "{policy.retention}"'
            )
    if policy.trains_on_data is False and provider.trains_on_data is not False:
        missed.append(
            "it trains on data"
            if provider.trains_on_data
            else "whether it trains on data is unknown"
        )
    allowed = {r.casefold() for r in policy.region}
    if allowed and provider.region.casefold() not in allowed:
        where = f"region {provider.region}" if provider.region else "its region is unknown"
        missed.append(f"{where}, the policy needs {' or '.join(policy.region)}")
    return "; ".join(missed) or None


def describe(policy: ProviderPolicy) -> str:
    """The policy as its settings say it, e.g. ``retention "zero", region eu``."""
    parts = []
    if policy.max_days is not None:
        parts.append(f'retention "{policy.retention}"')
    if policy.trains_on_data is False:
        parts.append("trains_on_data = false")
    if policy.region:
        parts.append(f"region {' or '.join(policy.region)}")
    return ", ".join(parts) or "no requirement"


def split_chain(
    chain: Sequence[str], settings: Settings
) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """The providers of ``chain`` that may be sent a request, in order, and (name, why not)
    for the others. The embedded model always qualifies: nothing leaves the machine."""
    policy = settings.privacy.providers
    allowed: list[str] = []
    skipped: list[tuple[str, str]] = []
    for name in chain:
        provider = settings.providers.get(name)
        if name == LOCAL_PROVIDER:
            why = None
        elif provider is None:
            why = "not defined under [providers]"
        else:
            why = why_not(provider, policy)
        if why is None:
            allowed.append(name)
        else:
            skipped.append((name, why))
    return tuple(allowed), tuple(skipped)


FIX = (
    "add a provider that meets it to the tier, or state what is known of one under "
    "[providers.NAME] (retention, trains_on_data, region)"
)


def each_skipped(skipped: Sequence[tuple[str, str]]) -> str:
    return "; ".join(f"{name}: {why}" for name, why in skipped)


def refusal(tier: str, settings: Settings, skipped: Sequence[tuple[str, str]]) -> str:
    """Why a tier whose every provider was skipped serves nothing, and what to do."""
    policy = describe(settings.privacy.providers)
    return (
        f"no provider of tier '{tier}' meets privacy.providers ({policy}): "
        f"{each_skipped(skipped)}. Nothing was sent; {FIX}"
    )
