"""Ledger entries: one row per request, and one builder per kind of row (a completion, an
escalation a provider answered, a request that got no answer)."""

from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from nearline.accounting.prices import Tokens
from nearline.config import LOCAL_PROVIDER
from nearline.tasks import AUTOCOMPLETE, IMPORTED
from nearline.vocab import StrEnum

LOCAL_TIER = "local"


class Outcome(StrEnum):
    OK = "ok"
    ERROR = "error"
    CANCELLED = "cancelled"
    FROM_CACHE = "served-from-cache"
    TYPED_THROUGH = "typed-through"


class CostSource(StrEnum):
    """Where a row's cost came from."""

    METERED = ""
    """nearline's own request, priced as it was made."""
    TOOL = "tool"
    """Another tool's own figure, read from its log or export."""
    PRICE_TABLE = "price-table"
    """Another tool's tokens priced from the price table (its log has no cost)."""
    UNPRICED = "unpriced"
    """Another tool's tokens on a model the price table does not know: cost 0."""


def day_of(ts: float) -> str:
    return time.strftime("%Y-%m-%d", time.localtime(ts))


@dataclass(frozen=True)
class Entry:
    """One request."""

    task: str
    outcome: str
    tier: str = "local"
    provider: str = "local"
    model: str = ""
    tokens: Tokens = field(default_factory=Tokens)
    latency_ms: float = 0.0
    cost_usd: float = 0.0
    project_root: str = ""
    project: str = ""
    language: str = ""
    client: str = "lsp"
    """"lsp" or the CLI command ("complete", "eval", ...)."""
    cloud: bool = False
    """Sent off this machine (what token budgets count)."""
    accepted: bool | None = None
    """For completions shown to the person: whether they took it (None: not a suggestion)."""
    chars: int = 0
    """A shown suggestion's length in characters (what Tab writes when it is taken)."""
    cost_source: CostSource = CostSource.METERED
    uid: str = field(default_factory=lambda: uuid.uuid4().hex)
    ts: float = field(default_factory=time.time)

    def row(self) -> tuple[Any, ...]:
        return (
            self.uid,
            self.ts,
            day_of(self.ts),
            self.project_root,
            self.project,
            self.language,
            self.task,
            self.tier,
            self.provider,
            self.model,
            self.tokens.input,
            self.tokens.cache_read,
            self.tokens.cache_write,
            self.tokens.output,
            round(self.latency_ms, 2),
            self.cost_usd,
            self.outcome,
            None if self.accepted is None else int(self.accepted),
            self.client,
            int(self.cloud),
            self.chars,
            str(self.cost_source),
            self.tokens.cache_write_1h,
        )


@dataclass(frozen=True)
class Project:
    """Whose request: the project's root folder and its name in the ledger ("" outside one)."""

    root: str = ""
    name: str = ""


def completion_entry(
    *,
    outcome: Outcome,
    model: str,
    tokens: Tokens,
    latency_ms: float,
    project: Project,
    language: str,
    client: str = "lsp",
    shown: bool = False,
    chars: int = 0,
    provider: str = LOCAL_PROVIDER,
) -> Entry:
    """An autocomplete request on the local model (or the team's completion server, which
    ``provider`` names: local-network traffic, no cost): the tokens it evaluated (``input``),
    reused from its cache (``cache_read``) and generated. ``shown``: a suggestion went to an
    editor, which may accept it, ``chars`` long."""
    return Entry(
        task=AUTOCOMPLETE,
        outcome=outcome,
        tier=LOCAL_TIER,
        provider=provider,
        model=model,
        tokens=tokens,
        latency_ms=latency_ms,
        project_root=project.root,
        project=project.name,
        language=language,
        client=client,
        accepted=False if shown else None,
        chars=chars if shown else 0,
    )


def escalation_entry(
    *,
    task: str,
    outcome: Outcome,
    tier: str,
    provider: str,
    model: str,
    tokens: Tokens,
    latency_ms: float,
    cost_usd: float,
    project: Project,
    language: str,
    client: str = "lsp",
    ts: float | None = None,
) -> Entry:
    """An escalation a provider answered (and billed), whatever became of the answer."""
    return Entry(
        task=task,
        outcome=outcome,
        tier=tier,
        provider=provider,
        model=model,
        tokens=tokens,
        latency_ms=latency_ms,
        cost_usd=cost_usd,
        project_root=project.root,
        project=project.name,
        language=language,
        client=client,
        cloud=provider != LOCAL_PROVIDER,
        ts=time.time() if ts is None else ts,
    )


def unanswered_entry(
    *,
    task: str,
    outcome: Outcome,
    latency_ms: float,
    project: Project,
    language: str,
    model: str = "",
    client: str = "lsp",
    ts: float | None = None,
) -> Entry:
    """A request no model answered (refused, failed, cancelled): no tokens, no cost."""
    return Entry(
        task=task,
        outcome=outcome,
        tier="" if task != AUTOCOMPLETE else LOCAL_TIER,
        provider="" if task != AUTOCOMPLETE else LOCAL_PROVIDER,
        model=model,
        latency_ms=latency_ms,
        project_root=project.root,
        project=project.name,
        language=language,
        client=client,
        ts=time.time() if ts is None else ts,
    )


def imported_uid(source: str, key: str) -> str:
    """An imported record's row id: the same record, however often and from whichever copy
    of its file it is read, is one row."""
    return "i-" + hashlib.sha256(f"{source}\x1f{key}".encode()).hexdigest()[:32]


def imported_entry(
    *,
    source: str,
    key: str,
    ts: float,
    provider: str,
    model: str,
    tokens: Tokens,
    cost_usd: float,
    cost_source: CostSource,
    project: str,
) -> Entry:
    """A request another tool made (``source``: its name, the row's client), read from its
    log or export. Not ``cloud``: nearline's budgets govern nearline's own requests."""
    return Entry(
        task=IMPORTED,
        outcome=Outcome.OK,
        tier="",
        provider=provider,
        model=model,
        tokens=tokens,
        cost_usd=cost_usd,
        project=project,
        client=source,
        cost_source=cost_source,
        uid=imported_uid(source, key),
        ts=ts,
    )
