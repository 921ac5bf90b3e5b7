"""The Anthropic engine: the request it builds and how it reads recorded SSE transcripts
(tests/test_data/cloud/anthropic_*.sse), served by a local scripted server."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from nearline.accounting.prices import Price, PriceTable, Tokens
from nearline.config import ProviderSettings
from nearline.errors import ProviderError
from nearline.providers import ChatMessage, ChatRequest, Usage
from support.engines import (
    REQUEST,
    FakeSleep,
    close_engines,
    engine,
    server,
    servers,
    settings,
    transcript,
)
from support.fake_provider import (
    Reply,
    ScriptedServer,
)

__all__ = ["close_engines", "server", "servers"]  # fixtures shared with the reliability tests

KEY = "sk-ant-api03-test-H7c2Lq9WmX4vB8nR1tY6"
KEY_ENV = "NEARLINE_TEST_ANTHROPIC_KEY"


def claude(server: ScriptedServer, **changes: Any) -> ProviderSettings:
    return settings(server, "claude", kind="anthropic", **changes)


def streamed(name: str, **changes: Any) -> Reply:
    return Reply(chunks=transcript(name), content_type="text/event-stream", **changes)


async def test_request_headers_system_blocks_and_cache_breakpoints(
    server: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    server.script(streamed("anthropic_cached.sse"))
    request = ChatRequest(
        messages=(
            ChatMessage("system", "You complete Python code."),
            ChatMessage("system", "Project conventions: ...", cache=True),
            ChatMessage("user", "<file>big stable context</file>", cache=True),
            ChatMessage("user", "Complete: def add("),
            ChatMessage("assistant", "a, b):"),
            ChatMessage("user", "go on"),
        ),
        max_tokens=128,
        temperature=0.3,
        cache_key="ignored-by-anthropic",
    )
    await engine(claude(server, api_key_env=KEY_ENV)).chat(request)
    (received,) = server.received
    assert received.path == "/v1/messages"
    assert received.headers["x-api-key"] == KEY
    assert received.headers["anthropic-version"] == "2023-06-01"
    assert received.headers["content-type"] == "application/json"
    assert "authorization" not in received.headers
    ephemeral = {"type": "ephemeral"}
    assert received.json == {
        "model": "test-model",
        "max_tokens": 128,
        "temperature": 0.3,
        "stream": True,
        "system": [
            {"type": "text", "text": "You complete Python code."},
            {"type": "text", "text": "Project conventions: ...", "cache_control": ephemeral},
        ],
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "text",
                        "text": "<file>big stable context</file>",
                        "cache_control": ephemeral,
                    },
                    {"type": "text", "text": "Complete: def add("},
                ],
            },
            {"role": "assistant", "content": [{"type": "text", "text": "a, b):"}]},
            {"role": "user", "content": [{"type": "text", "text": "go on"}]},
        ],
    }


async def test_no_system_and_no_key(server: ScriptedServer) -> None:
    server.script(streamed("anthropic_cached.sse"))
    await engine(claude(server, extra_body={"top_k": 5})).chat(REQUEST)
    body = server.received[0].json
    assert "system" not in body and "x-api-key" not in server.received[0].headers
    assert body["top_k"] == 5


async def test_stream_with_cache_reads(server: ScriptedServer) -> None:
    server.script(streamed("anthropic_cached.sse"))
    seen: list[str] = []
    result = await engine(claude(server)).chat(REQUEST, seen.append)
    assert result.text == "def add(a, b):\n    return a + b"
    assert seen == ["def add(a, b):", "def add(a, b):\n    return a + b"]
    assert result.usage == Usage(
        input_tokens=42, cache_read_tokens=1843, cache_write_tokens=0, output_tokens=12
    )
    assert (result.provider, result.model, result.attempts) == ("claude", "test-model", 1)


async def test_stream_with_cache_writes_and_cumulative_message_deltas(
    server: ScriptedServer,
) -> None:
    server.script(streamed("anthropic_cache_write.sse"))
    result = await engine(claude(server)).chat(REQUEST)
    assert result.text == "x = 1"
    assert result.usage == Usage(
        input_tokens=17, cache_read_tokens=0, cache_write_tokens=2051, output_tokens=5
    )


async def test_one_hour_cache_writes_are_told_apart(server: ScriptedServer) -> None:
    server.script(streamed("anthropic_cache_write_1h.sse"))
    result = await engine(claude(server)).chat(REQUEST)
    assert result.usage == Usage(
        input_tokens=17,
        cache_read_tokens=0,
        cache_write_tokens=2051,
        output_tokens=5,
        cache_write_1h_tokens=2000,
    )
    sonnet = Price(3e-6, 1.5e-5, 3e-7, 3.75e-6)  # no 1h price given: twice the input's
    tokens = Tokens(input=17, cache_write=2051, cache_write_1h=2000, output=5)
    assert sonnet.cost(tokens) == pytest.approx(17 * 3e-6 + 51 * 3.75e-6 + 2000 * 6e-6 + 5 * 1.5e-5)
    hour = Price(3e-6, 1.5e-5, 3e-7, 3.75e-6, cache_creation_input_token_cost_above_1hr=5e-6)
    assert hour.cost(tokens) == pytest.approx(17 * 3e-6 + 51 * 3.75e-6 + 2000 * 5e-6 + 5 * 1.5e-5)
    table = PriceTable()
    assert table.get("claude-sonnet-4-5").cache_creation_input_token_cost_above_1hr == 6e-6


async def test_overloaded_error_mid_stream_is_retried(server: ScriptedServer) -> None:
    server.script(streamed("anthropic_overloaded.sse"), streamed("anthropic_cached.sse"))
    seen: list[str] = []
    chat = engine(claude(server), sleep=FakeSleep())
    result = await chat.chat(REQUEST, seen.append)
    assert result.text == "def add(a, b):\n    return a + b"
    assert result.attempts == 2
    assert seen[0] == "PARTIAL def add("  # shown, then replaced by the retry's text
    assert "PARTIAL" not in result.text


async def test_overloaded_every_time_ends_in_a_clear_error(server: ScriptedServer) -> None:
    server.script(*[streamed("anthropic_overloaded.sse")] * 2)
    with pytest.raises(ProviderError) as caught:
        await engine(claude(server, max_retries=1), sleep=FakeSleep()).chat(REQUEST)
    message = str(caught.value)
    assert "claude: error in the stream: overloaded_error: Overloaded" in message
    assert "PARTIAL" not in message
    assert caught.value.retryable


async def test_invalid_request_error_event_is_not_retried(server: ScriptedServer) -> None:
    event = {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "prompt is too long"},
    }
    chunk = b"event: error\ndata: " + json.dumps(event).encode() + b"\n\n"
    server.script(Reply(chunks=[chunk], content_type="text/event-stream"))
    with pytest.raises(ProviderError, match="invalid_request_error: prompt is too long") as caught:
        await engine(claude(server), sleep=FakeSleep()).chat(REQUEST)
    assert not caught.value.retryable
    assert len(server.received) == 1


async def test_stream_without_message_stop_is_a_cut(server: ScriptedServer) -> None:
    server.script(streamed("anthropic_cut.sse", chunked=False), streamed("anthropic_cached.sse"))
    result = await engine(claude(server), sleep=FakeSleep()).chat(REQUEST)
    assert (result.text, result.attempts) == ("def add(a, b):\n    return a + b", 2)


async def test_529_overloaded_status_is_retried(server: ScriptedServer) -> None:
    overloaded = b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'
    server.script(Reply(529, overloaded), streamed("anthropic_cached.sse"))
    sleep = FakeSleep()
    chat = engine(claude(server), sleep=sleep, random=lambda: 0.5)
    result = await chat.chat(REQUEST)
    assert result.attempts == 2 and sleep.delays == [0.25]


async def test_the_key_never_reaches_logs_or_errors(
    server: ScriptedServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv(KEY_ENV, KEY)
    echo = {
        "type": "error",
        "error": {"type": "authentication_error", "message": f"invalid x-api-key {KEY}"},
    }
    server.script(Reply(500, b"{}"), Reply(401, json.dumps(echo).encode()))
    chat = engine(claude(server, api_key_env=KEY_ENV), sleep=FakeSleep())
    with pytest.raises(ProviderError) as caught:
        await chat.chat(REQUEST)
    message = str(caught.value)
    assert "HTTP 401" in message and "authentication_error: invalid x-api-key [redacted]" in message
    assert f"check the key in {KEY_ENV}" in message
    assert any(record.name.startswith("httpcore") for record in caplog.records)
    for text in (message, repr(caught.value), str(caught.value.__cause__), caplog.text):
        assert KEY not in text


def test_at_most_four_breakpoints_the_first_ones_system_first() -> None:
    from nearline.providers.anthropic import breakpoints

    messages = (
        ChatMessage("user", "a", cache=True),
        ChatMessage("system", "s", cache=True),
        ChatMessage("user", "b", cache=True),
        ChatMessage("user", "c"),
        ChatMessage("user", "d", cache=True),
        ChatMessage("user", "e", cache=True),
    )
    assert breakpoints(messages) == {1, 0, 2, 4}
