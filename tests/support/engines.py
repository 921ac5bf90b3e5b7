"""Helpers for the provider engine tests: scripted servers as fixtures, engines closed when a
test ends, settings pointing at a scripted server, and fake sleep and clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from nearline.config import ProviderSettings
from nearline.providers import ChatMessage, ChatRequest, make_engine
from nearline.providers.http import HttpChatEngine
from support.fake_provider import CLOUD_DATA, Reply, ScriptedServer, sse

REQUEST = ChatRequest(messages=(ChatMessage("user", "Complete: def add("),), max_tokens=32)


@pytest.fixture
def servers() -> Iterator[list[ScriptedServer]]:
    """``servers[0]``, ``servers[1]``, ``servers[2]``: three independent scripted servers."""
    started = [ScriptedServer().start(0.02) for _ in range(3)]
    yield started
    for server in started:
        server.stop()


@pytest.fixture
def server(servers: list[ScriptedServer]) -> ScriptedServer:
    return servers[0]


_OPENED: list[HttpChatEngine] = []


def engine(settings: ProviderSettings, **kwargs: Any) -> HttpChatEngine:
    """``make_engine``, closed when the test ends."""
    made = make_engine(settings, **kwargs)
    _OPENED.append(made)
    return made


@pytest.fixture(autouse=True)
async def close_engines() -> AsyncIterator[None]:
    yield
    while _OPENED:
        await _OPENED.pop().aclose()


def openai_chunks(
    *texts: str, usage: dict[str, Any] | None = None, done: bool = True
) -> list[bytes]:
    payloads: list[Any] = [
        {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": t}}]}
        for t in texts
    ]
    if done:
        payloads.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    if usage is not None:
        payloads.append({"choices": [], "usage": usage})
    return sse(*payloads, done=done)


def ok(*texts: str) -> Reply:
    return Reply(chunks=openai_chunks(*texts), content_type="text/event-stream")


def transcript(name: str) -> list[bytes]:
    """A recorded SSE transcript from test_data/cloud, one event per chunk."""
    text = (CLOUD_DATA / name).read_text()
    return [event.encode() + b"\n\n" for event in text.split("\n\n") if event.strip()]


def settings(
    server: ScriptedServer, name: str = "a", kind: str = "openai", **changes: Any
) -> ProviderSettings:
    values: dict[str, Any] = {
        "base_url": server.url + "/v1" if kind == "openai" else server.url,
        "model": "test-model",
        "connect_timeout_s": 2.0,
        "read_timeout_s": 5.0,
        "max_retries": 3,
    }
    values.update(changes)
    return ProviderSettings(name=name, kind=kind, **values)


class FakeSleep:
    """Records the backoff delays instead of waiting them."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await asyncio.sleep(0)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now
