"""The OpenAI-compatible engine: what it sends and how it reads the stream, against a local
scripted server; then one short chat with a real llama_cpp.server running the default model."""

from __future__ import annotations

import json
import logging

import pytest

from nearline import __version__
from nearline.config import ProviderSettings
from nearline.errors import ProviderError
from nearline.providers import ChatMessage, ChatRequest, CircuitBreaker, ProviderChain, Usage
from support.engines import (
    REQUEST,
    FakeSleep,
    close_engines,
    engine,
    ok,
    openai_chunks,
    server,
    servers,
    settings,
    transcript,
)
from support.fake_provider import (
    Reply,
    ScriptedServer,
    sse,
)

__all__ = ["close_engines", "server", "servers"]  # fixtures shared with the reliability tests

KEY = "sk-test-Zq8vN3xW0pL5rT2yK7uB9cD4"
KEY_ENV = "NEARLINE_TEST_OPENAI_KEY"
CONVERSATION = ChatRequest(
    messages=(
        ChatMessage("system", "You complete Python code.", cache=True),
        ChatMessage("user", "def add(", cache=True),
        ChatMessage("assistant", "a, b):"),
        ChatMessage("user", "go on"),
    ),
    max_tokens=64,
    temperature=0.2,
)


async def test_request_headers_and_body(
    server: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    server.script(ok("x"))
    await engine(settings(server, api_key_env=KEY_ENV)).chat(CONVERSATION)
    (received,) = server.received
    assert received.path == "/v1/chat/completions"
    assert received.headers["authorization"] == f"Bearer {KEY}"
    assert received.headers["content-type"] == "application/json"
    assert received.headers["accept"] == "text/event-stream"
    assert received.headers["user-agent"] == f"nearline/{__version__}"
    assert received.json == {
        "model": "test-model",
        "messages": [
            {"role": "system", "content": "You complete Python code."},
            {"role": "user", "content": "def add("},
            {"role": "assistant", "content": "a, b):"},
            {"role": "user", "content": "go on"},
        ],
        "max_tokens": 64,
        "temperature": 0.2,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


async def test_prompt_cache_key_is_sent_only_when_set(server: ScriptedServer) -> None:
    server.script(ok("x"), ok("y"))
    chat = engine(settings(server))
    await chat.chat(REQUEST)
    await chat.chat(ChatRequest(REQUEST.messages, cache_key="project-4f2a"))
    first, second = server.received
    assert "prompt_cache_key" not in first.json
    assert second.json["prompt_cache_key"] == "project-4f2a"
    assert "authorization" not in first.headers  # api_key_env None: a local server


async def test_extra_body_is_merged_last(server: ScriptedServer) -> None:
    server.script(ok("x"))
    extra = {"grammar": 'root ::= "yes" | "no"', "max_tokens": None, "max_completion_tokens": 9}
    await engine(settings(server, extra_body=extra)).chat(REQUEST)
    body = server.received[0].json
    assert body["grammar"] == 'root ::= "yes" | "no"'
    assert body["max_completion_tokens"] == 9
    assert "max_tokens" not in body


async def test_stream_text_and_usage_with_cached_tokens(server: ScriptedServer) -> None:
    server.script(Reply(chunks=transcript("openai_cached.sse"), content_type="text/event-stream"))
    seen: list[str] = []
    result = await engine(settings(server)).chat(REQUEST, seen.append)
    assert result.text == "def add(a, b):\n    return a + b"
    assert seen == ["def add(a, b):", "def add(a, b):\n    return a + b"]
    assert result.usage == Usage(input_tokens=1890 - 1792, cache_read_tokens=1792, output_tokens=12)
    assert (result.provider, result.model, result.attempts) == ("a", "test-model", 1)
    assert result.latency_ms > 0


async def test_missing_usage_is_estimated_from_the_text(server: ScriptedServer) -> None:
    no_details = {"prompt_tokens": 30, "completion_tokens": 4}
    server.script(
        ok("a", "b"),
        Reply(chunks=openai_chunks("c", usage=no_details), content_type="text/event-stream"),
    )
    chat = engine(settings(server))
    # "Complete: def add(" is 18 characters, the answer "ab" 2: never accounted as free.
    assert (await chat.chat(REQUEST)).usage == Usage(input_tokens=5, output_tokens=1)
    assert (await chat.chat(REQUEST)).usage == Usage(input_tokens=30, output_tokens=4)


async def test_a_plain_json_answer_is_accepted(server: ScriptedServer) -> None:
    body = {
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "whole"}}],
        "usage": {
            "prompt_tokens": 10,
            "completion_tokens": 2,
            "prompt_tokens_details": {"cached_tokens": 0},
        },
    }
    server.script(Reply(body=json.dumps(body).encode()))
    seen: list[str] = []
    result = await engine(settings(server)).chat(REQUEST, seen.append)
    assert (result.text, result.usage, seen) == (
        "whole",
        Usage(input_tokens=10, output_tokens=2),
        ["whole"],
    )


async def test_error_inside_the_stream_is_retried(server: ScriptedServer) -> None:
    error = {
        "error": {
            "message": "The server had an error processing your request.",
            "type": "server_error",
        }
    }
    broken = Reply(
        chunks=[*openai_chunks("PARTIAL", done=False), *sse(error, done=False)],
        content_type="text/event-stream",
    )
    server.script(broken, ok("second try"))
    result = await engine(settings(server), sleep=FakeSleep()).chat(REQUEST)
    assert (result.text, result.attempts) == ("second try", 2)

    server.script(broken)
    with pytest.raises(ProviderError, match="server_error: The server had an error") as caught:
        await engine(settings(server, max_retries=0)).chat(REQUEST)
    assert "PARTIAL" not in str(caught.value)


async def test_the_key_never_reaches_logs_or_errors(
    servers: list[ScriptedServer], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv(KEY_ENV, KEY)
    a, b = servers[0], servers[1]
    echo = {
        "error": {"message": f"Incorrect API key provided: {KEY}.", "type": "invalid_request_error"}
    }
    a.script(Reply(503, json.dumps(echo).encode()), Reply(401, json.dumps(echo).encode()))
    b.script(
        Reply(
            chunks=sse({"error": {"message": f"bad key {KEY}"}}, done=False),
            content_type="text/event-stream",
        )
    )
    chain = ProviderChain(
        [
            engine(settings(a, "a", api_key_env=KEY_ENV), sleep=FakeSleep()),
            engine(settings(b, "b", api_key_env=KEY_ENV, max_retries=0)),
        ],
        CircuitBreaker(),
    )
    with pytest.raises(ProviderError) as caught:
        await chain.chat(REQUEST)
    assert a.received[0].headers["authorization"] == f"Bearer {KEY}"  # it was sent, though
    texts = [str(caught.value), repr(caught.value), caplog.text]
    texts += [str(error) for error in (caught.value.__cause__, caught.value.__context__) if error]
    assert "Incorrect API key provided: [redacted]" in str(caught.value)
    assert caplog.records  # the retry and the fallback were logged
    for text in texts:
        assert KEY not in text


# -- a real OpenAI-compatible server -------------------------------------------------------------


HELLO = ChatRequest(
    messages=(
        ChatMessage("system", "You are a helpful assistant."),
        ChatMessage("user", "Say hello in one short sentence."),
    ),
    max_tokens=16,
)


@pytest.mark.slow
async def test_a_real_llama_cpp_server_streams(llama_server: str) -> None:
    settings = ProviderSettings(
        name="llama", kind="openai", base_url=llama_server, model="default", read_timeout_s=120.0
    )
    seen: list[str] = []
    result = await engine(settings).chat(HELLO, seen.append)
    assert result.text.strip()
    assert len(seen) > 1 and seen[-1] == result.text
    assert result.attempts == 1
    # llama-cpp-python's server (0.3.x) ignores stream_options and sends no usage in a stream;
    # the engine estimates it from the text rather than account the request as free.
    assert result.usage.input_tokens > 0 and result.usage.cache_read_tokens == 0
    assert result.usage.output_tokens == round(len(result.text) / 3.5)


@pytest.mark.slow
async def test_a_real_llama_cpp_server_reports_usage_unstreamed(llama_server: str) -> None:
    unstreamed = {"stream": None, "stream_options": None}
    settings = ProviderSettings(
        name="llama",
        kind="openai",
        base_url=llama_server,
        model="default",
        read_timeout_s=120.0,
        extra_body=unstreamed,
    )
    result = await engine(settings).chat(HELLO)
    assert result.text.strip()
    assert result.usage.input_tokens > 0 and result.usage.output_tokens > 0
