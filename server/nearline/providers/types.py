"""What every chat engine takes and gives: messages, a request, the answer with its token usage,
and the ``ChatEngine`` protocol (HTTP providers, the embedded model)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class ChatMessage:
    role: str
    """``"system"``, ``"user"`` or ``"assistant"``."""
    content: str
    cache: bool = False
    """The end of a stable prefix: Anthropic gets a cache_control breakpoint here."""
    ttl: str = ""
    """The breakpoint's cache lifetime: "" (the provider's, 5 minutes) or "1h"."""

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"unknown chat role {self.role!r}; use one of {', '.join(ROLES)}")


@dataclass(frozen=True)
class ChatRequest:
    messages: tuple[ChatMessage, ...]
    max_tokens: int = 2048
    temperature: float = 0.0
    cache_key: str | None = None
    """OpenAI's ``prompt_cache_key`` (one per project); sent only when set."""


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    """Input tokens that were neither read from nor written to the provider's cache."""
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 0
    cache_write_1h_tokens: int = 0
    """The part of ``cache_write_tokens`` written for an hour."""


CHARS_PER_TOKEN = 3.5
"""For a usage estimate when a server reports none."""


def estimate_usage(request: ChatRequest, text: str) -> Usage:
    """Token counts guessed from text lengths, for servers that report no usage (llama.cpp's
    server when streaming): a request is never accounted as free by mistake."""
    prompt = sum(len(m.content) for m in request.messages)
    return Usage(
        input_tokens=max(1, round(prompt / CHARS_PER_TOKEN)),
        output_tokens=round(len(text) / CHARS_PER_TOKEN),
    )


@dataclass(frozen=True)
class ChatResult:
    text: str
    usage: Usage
    provider: str
    model: str
    latency_ms: float
    """From the call to the last byte, retries and backoff included."""
    attempts: int


class ChatEngine(Protocol):
    @property
    def name(self) -> str:
        """The provider's name (``[providers.NAME]``, or ``"local"`` for the embedded model)."""
        ...

    async def chat(
        self, request: ChatRequest, on_text: Callable[[str], None] | None = None
    ) -> ChatResult:
        """The whole answer. ``on_text`` gets the text so far each time it grows; after a retry
        it starts again from the beginning, so show the latest value rather than appending."""
        ...

    async def aclose(self) -> None:
        """Close the engine's connections."""
        ...
