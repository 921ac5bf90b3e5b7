"""Chat models that escalated requests go to: cloud APIs over HTTP (OpenAI-compatible, Anthropic)
and the embedded model. ``types`` holds what every engine takes and gives, ``http`` the shared
streaming, ``reliability`` retries, breaker and fallback, ``registry`` the kinds."""

from nearline.providers.local import LocalChatEngine
from nearline.providers.registry import ENGINES, make_engine
from nearline.providers.reliability import (
    AllProvidersFailedError,
    AllProvidersOfflineError,
    CircuitBreaker,
    MalformedResponseError,
    ProviderChain,
    ProviderHTTPError,
)
from nearline.providers.types import ChatEngine, ChatMessage, ChatRequest, ChatResult, Usage

__all__ = [
    "ENGINES",
    "AllProvidersFailedError",
    "AllProvidersOfflineError",
    "ChatEngine",
    "ChatMessage",
    "ChatRequest",
    "ChatResult",
    "CircuitBreaker",
    "LocalChatEngine",
    "MalformedResponseError",
    "ProviderChain",
    "ProviderHTTPError",
    "Usage",
    "make_engine",
]
