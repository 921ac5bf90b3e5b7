"""The provider kinds and the engine class that speaks each one's API."""

from __future__ import annotations

import asyncio
import random as _random
from collections.abc import Callable

import httpx

from nearline.config import ProviderKind, ProviderSettings
from nearline.providers.anthropic import AnthropicEngine
from nearline.providers.http import HttpChatEngine
from nearline.providers.openai import OpenAIEngine
from nearline.providers.reliability import Sleep

ENGINES: dict[ProviderKind, type[HttpChatEngine]] = {
    ProviderKind.OPENAI: OpenAIEngine,
    ProviderKind.ANTHROPIC: AnthropicEngine,
}


def make_engine(
    settings: ProviderSettings,
    transport: httpx.AsyncBaseTransport | None = None,
    *,
    sleep: Sleep = asyncio.sleep,
    random: Callable[[], float] = _random.random,
) -> HttpChatEngine:
    """The engine for ``settings.kind``. ``transport``, ``sleep`` and ``random`` are for tests."""
    return ENGINES[ProviderKind(settings.kind)](settings, transport, sleep=sleep, random=random)
