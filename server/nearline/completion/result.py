"""What a completion request gives back, and the service's counters (``nearline/stats``)."""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Any

from nearline.completion.engine.base import Generation
from nearline.completion.hedge import Engine
from nearline.completion.remote import RemoteAnswer
from nearline.vocab import StrEnum

RECENT = 512
"""Request records kept for ``nearline/stats`` (the latency benchmark reads them)."""


class Source(StrEnum):
    """How a completion was served."""

    MODEL = "model"
    TYPING_THROUGH = "typing-through"
    """The person typed what was shown: the rest of it, no model call."""
    CACHE = "cache"
    SUPERSEDED = "superseded"
    """A newer request for the document took the engine; nothing to show."""
    NONE = "none"
    """The model ran and had nothing worth showing."""


@dataclass(frozen=True)
class CompletionResult:
    text: str
    source: Source
    model_id: str
    latency_ms: float
    line: int
    character: int
    """Cursor position in code points."""
    generation: Generation | None = None
    uid: str = ""
    """The request's id in the usage ledger (the client sends it back on accept)."""
    engine: Engine = Engine.LOCAL
    """Which engine wrote ``text``: the local model or the team's completion server."""
    remote: RemoteAnswer | None = None
    """The completion server's usage, when this request is the one to account for it."""


@dataclass
class Stats:
    requests: int = 0
    model_calls: int = 0
    typed_through: int = 0
    cache_hits: int = 0
    superseded: int = 0
    cancelled: int = 0
    budget_hits: int = 0
    warmups: int = 0
    errors: int = 0
    accepted: int = 0
    gated: int = 0
    """Suggestions not shown: the model was too unsure of them."""
    rests: int = 0
    """``nearline/cursorRest`` notifications."""
    last_rest: dict[str, Any] | None = None
    """The last rest: where, and when (ms after it came) its short and full windows were
    evaluated (None: not yet, or cancelled)."""
    recent: collections.deque[dict[str, Any]] = field(
        default_factory=lambda: collections.deque(maxlen=RECENT)
    )

    served: dict[str, int] = field(default_factory=lambda: {"local": 0, "remote": 0})
    """Suggestions shown (not empty), by the engine that wrote them."""

    def as_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k != "recent"}
        data["recent"] = list(self.recent)
        return data
