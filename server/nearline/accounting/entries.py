"""Ledger entries: one row per request, and one builder per kind of row (a completion, an
escalation a provider answered, a request that got no answer)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from nearline.accounting.prices import Tokens
from nearline.vocab import StrEnum


class Outcome(StrEnum):
    OK = "ok"
    ERROR = "error"
    CANCELLED = "cancelled"
    FROM_CACHE = "served-from-cache"
    TYPED_THROUGH = "typed-through"


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
    """"lsp" or the CLI command ("complete", ...)."""
    cloud: bool = False
    """Sent off this machine (what token budgets count)."""
    accepted: bool | None = None
    """For completions shown to the person: whether they took it (None: not a suggestion)."""
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
        )
