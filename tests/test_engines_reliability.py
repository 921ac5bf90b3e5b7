"""Cloud engines against a local HTTP server that misbehaves on purpose: every failure ends in a
retry, a fallback to the next provider, or a clear ProviderError; never a crash or partial text.

``ScriptedServer`` (also used by the OpenAI and Anthropic tests) answers each POST with the next
scripted ``Reply`` and records what it received.
"""

from __future__ import annotations

import asyncio
import email.utils
import http.server
import json
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from nearline.engines.cloud import (
    AllProvidersFailedError,
    AllProvidersOfflineError,
    ChatMessage,
    ChatRequest,
    CircuitBreaker,
    HttpChatEngine,
    MalformedResponseError,
    ProviderChain,
    ProviderSettings,
    make_engine,
)
from nearline.engines.reliability import RetryPolicy, backoff_delay, parse_retry_after
from nearline.errors import OfflineError, ProviderError, ProviderKeyError

CLOUD_DATA = Path(__file__).resolve().parent / "test_data" / "cloud"
REQUEST = ChatRequest(messages=(ChatMessage("user", "Complete: def add("),), max_tokens=32)


# -- the scripted server --------------------------------------------------------------------


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    """Sent whole, with a Content-Length (when ``chunks`` is None)."""
    chunks: list[bytes] | None = None
    """Sent one by one, flushed: chunked encoding, or until close when ``chunked`` is False."""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    """Wait before the status line (slow headers)."""
    cut_after: int | None = None
    """Close the socket after this many chunks, mid-body."""
    chunked: bool = True
    hold_open: bool = False
    """After the chunks, wait (up to 10 s) for the client to close the connection."""


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    json: Any


class ScriptedServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.replies: deque[Reply] = deque()
        self.received: list[Received] = []
        self.client_closed = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def script(self, *replies: Reply) -> ScriptedServer:
        self.replies.extend(replies)
        return self

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client hanging up is fine
            super().handle_error(request, client_address)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: ScriptedServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        headers = {name.lower(): value for name, value in self.headers.items()}
        self.server.received.append(Received(self.path, headers, json.loads(raw or b"null")))
        reply = self.server.replies.popleft() if self.server.replies else Reply(500, b"no script")
        time.sleep(reply.delay_s)
        try:
            self._send(reply)
        except OSError:  # the client went away (a read timeout): nothing more to say
            self.close_connection = True

    def _send(self, reply: Reply) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if reply.chunks is None:
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)
            return
        if reply.chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        for number, chunk in enumerate(reply.chunks):
            if number == reply.cut_after:
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if reply.chunked else chunk)
            self.wfile.flush()
        if reply.hold_open:
            self._wait_for_close()
            return
        if reply.chunked:
            self.wfile.write(b"0\r\n\r\n")

    def _wait_for_close(self) -> None:
        self.connection.settimeout(0.05)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if self.connection.recv(1) == b"":
                    break
            except TimeoutError:
                continue
            except OSError:
                break
        else:
            return
        self.server.client_closed.set()
        self.close_connection = True


@pytest.fixture
def servers() -> Iterator[list[ScriptedServer]]:
    """``servers[0]``, ``servers[1]``, ``servers[2]``: three independent scripted servers."""
    started = [ScriptedServer() for _ in range(3)]
    for server in started:
        threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
    yield started
    for server in started:
        server.shutdown()
        server.server_close()


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


# -- helpers ----------------------------------------------------------------------------------


def sse(*payloads: Any, done: bool = True) -> list[bytes]:
    """OpenAI-style ``data:`` events, one per chunk."""
    events = [b"data: " + json.dumps(payload).encode() + b"\n\n" for payload in payloads]
    return events + ([b"data: [DONE]\n\n"] if done else [])


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


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- retries ----------------------------------------------------------------------------------


async def test_429_retry_after_seconds_is_honoured(server: ScriptedServer) -> None:
    server.script(
        Reply(429, b'{"error": {"message": "slow down"}}', headers={"Retry-After": "7"}), ok("hi")
    )
    sleep = FakeSleep()
    result = await engine(settings(server), sleep=sleep).chat(REQUEST)
    assert (result.text, result.attempts, sleep.delays) == ("hi", 2, [7.0])
    assert len(server.received) == 2


async def test_429_retry_after_http_date_is_honoured_and_capped(server: ScriptedServer) -> None:
    later = email.utils.formatdate(time.time() + 600, usegmt=True)
    server.script(Reply(429, headers={"Retry-After": later}), ok("hi"))
    sleep = FakeSleep()
    result = await engine(settings(server, backoff_max_s=20.0), sleep=sleep).chat(REQUEST)
    assert result.text == "hi"
    assert sleep.delays == [20.0]


def test_parse_retry_after() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("1.5") == 1.5
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412490.0) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_backoff_is_full_jitter_capped() -> None:
    policy = RetryPolicy(max_retries=10, backoff_base_s=0.5, backoff_max_s=4.0)
    assert [backoff_delay(n, policy, random=lambda: 1.0) for n in (1, 2, 3, 4, 5)] == [
        0.5,
        1.0,
        2.0,
        4.0,
        4.0,
    ]
    assert backoff_delay(3, policy, random=lambda: 0.25) == 0.5
    assert backoff_delay(1, policy, retry_after_s=2.5) == 2.5


async def test_500_then_503_then_success(server: ScriptedServer) -> None:
    server.script(Reply(500, b"{}"), Reply(503, b"{}"), ok("fine"))
    sleep = FakeSleep()
    result = await engine(settings(server), sleep=sleep, random=lambda: 1.0).chat(REQUEST)
    assert (result.text, result.attempts, sleep.delays) == ("fine", 3, [0.5, 1.0])


async def test_retries_run_out_into_a_clear_error(server: ScriptedServer) -> None:
    error = b'{"error": {"message": "The server is overloaded", "type": "server_error"}}'
    server.script(*[Reply(503, error)] * 3)
    with pytest.raises(ProviderError) as caught:
        await engine(settings(server, max_retries=2), sleep=FakeSleep()).chat(REQUEST)
    assert caught.value.status == 503
    assert "a: HTTP 503" in str(caught.value)
    assert "server_error: The server is overloaded" in str(caught.value)
    assert "after 3 tries" in str(caught.value)
    assert len(server.received) == 3


@pytest.mark.parametrize("status", [400, 401, 403, 404])
async def test_client_errors_are_not_retried_and_carry_the_providers_message(
    server: ScriptedServer, status: int
) -> None:
    server.script(Reply(status, b'{"error": {"message": "model `nope` does not exist"}}'))
    with pytest.raises(ProviderError) as caught:
        await engine(settings(server), sleep=FakeSleep()).chat(REQUEST)
    assert caught.value.status == status and not caught.value.retryable
    assert "model `nope` does not exist" in str(caught.value)
    assert len(server.received) == 1


async def test_slow_headers_time_out_and_are_retried(server: ScriptedServer) -> None:
    server.script(Reply(delay_s=1.0, chunks=openai_chunks("late")), ok("on time"))
    result = await engine(settings(server, read_timeout_s=0.2), sleep=FakeSleep()).chat(REQUEST)
    assert (result.text, result.attempts) == ("on time", 2)


async def test_stream_cut_mid_way_is_retried_without_partial_text(server: ScriptedServer) -> None:
    cut = Reply(
        chunks=openai_chunks("PARTIAL ", "text"), content_type="text/event-stream", cut_after=1
    )
    server.script(cut, ok("Hello", " world"))
    seen: list[str] = []
    result = await engine(settings(server), sleep=FakeSleep()).chat(REQUEST, seen.append)
    assert (result.text, result.attempts) == ("Hello world", 2)
    assert seen == ["PARTIAL ", "Hello", "Hello world"]  # the retry starts the text again


async def test_stream_closed_before_done_counts_as_cut(server: ScriptedServer) -> None:
    early = Reply(
        chunks=openai_chunks("PARTIAL", done=False), content_type="text/event-stream", chunked=False
    )
    server.script(early, ok("whole"))
    result = await engine(settings(server), sleep=FakeSleep()).chat(REQUEST)
    assert (result.text, result.attempts) == ("whole", 2)


async def test_invalid_json_is_retried_once_then_reported(server: ScriptedServer) -> None:
    server.script(Reply(body=b'{"choices": [tru'), ok("good"))
    result = await engine(settings(server), sleep=FakeSleep()).chat(REQUEST)
    assert (result.text, result.attempts) == ("good", 2)

    server.script(
        Reply(body=b"<html>"),
        Reply(chunks=[b"data: {not json\n\n"], content_type="text/event-stream"),
    )
    with pytest.raises(MalformedResponseError) as caught:
        await engine(settings(server, max_retries=5), sleep=FakeSleep()).chat(REQUEST)
    assert "invalid JSON in the stream" in str(caught.value)
    assert "after 2 tries" in str(caught.value)
    assert len(server.received) == 4


async def test_empty_body_is_retried_once_then_reported(server: ScriptedServer) -> None:
    server.script(Reply(body=b""), ok("good"))
    result = await engine(settings(server), sleep=FakeSleep()).chat(REQUEST)
    assert (result.text, result.attempts) == ("good", 2)

    server.script(Reply(body=b""), Reply(chunks=[], content_type="text/event-stream"), ok("never"))
    with pytest.raises(MalformedResponseError, match="empty"):
        await engine(settings(server), sleep=FakeSleep()).chat(REQUEST)


async def test_missing_key_is_not_retried(
    server: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NEARLINE_TEST_NO_SUCH_KEY", raising=False)
    keyless = engine(settings(server, api_key_env="NEARLINE_TEST_NO_SUCH_KEY"))
    with pytest.raises(ProviderKeyError, match="NEARLINE_TEST_NO_SUCH_KEY") as caught:
        await keyless.chat(REQUEST)
    assert not caught.value.retryable
    assert server.received == []


# -- fallback chain and circuit breaker -------------------------------------------------------


async def test_chain_falls_back_to_the_next_provider(servers: list[ScriptedServer]) -> None:
    a, b = servers[0], servers[1]
    a.script(Reply(503, b"{}"), Reply(delay_s=1.0, chunks=openai_chunks("late")))
    b.script(ok("from b"))
    sleep = FakeSleep()
    chain = ProviderChain(
        [
            engine(settings(a, "a", max_retries=1, read_timeout_s=0.2), sleep=sleep),
            engine(settings(b, "b"), sleep=sleep),
        ],
        CircuitBreaker(),
    )
    result = await chain.chat(REQUEST)
    assert (result.text, result.provider, result.attempts) == ("from b", "b", 1)
    assert len(a.received) == 2


async def test_chain_reports_every_providers_failure(
    servers: list[ScriptedServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NEARLINE_TEST_NO_SUCH_KEY", raising=False)
    servers[0].script(Reply(401, b'{"error": {"message": "Incorrect API key provided"}}'))
    servers[1].script(
        Reply(chunks=openai_chunks("PARTIAL"), content_type="text/event-stream", cut_after=1)
    )
    engines = [
        engine(settings(servers[0], "first")),
        engine(settings(servers[1], "second", max_retries=0)),
        engine(settings(servers[2], "third", api_key_env="NEARLINE_TEST_NO_SUCH_KEY")),
        engine(
            settings(
                servers[2],
                "fourth",
                kind="anthropic",
                base_url=f"http://127.0.0.1:{closed_port()}",
                max_retries=0,
            )
        ),
    ]
    with pytest.raises(AllProvidersFailedError) as caught:
        await ProviderChain(engines, CircuitBreaker()).chat(REQUEST)
    message = str(caught.value)
    assert not isinstance(caught.value, OfflineError)
    assert "first: HTTP 401" in message and "Incorrect API key provided" in message
    assert "second: the connection was cut" in message
    assert "third: the environment variable NEARLINE_TEST_NO_SUCH_KEY is not set" in message
    assert "fourth: cannot connect" in message
    assert "PARTIAL" not in message
    assert set(caught.value.failures) == {"first", "second", "third", "fourth"}


async def test_connection_refused_everywhere_is_offline() -> None:
    engines = [
        engine(
            ProviderSettings(name, kind, f"http://127.0.0.1:{closed_port()}", "m", max_retries=1),
            sleep=FakeSleep(),
        )
        for name, kind in (("a", "openai"), ("b", "anthropic"))
    ]
    with pytest.raises(OfflineError) as caught:
        await ProviderChain(engines, CircuitBreaker()).chat(REQUEST)
    assert isinstance(caught.value, AllProvidersOfflineError)
    assert "a: cannot connect" in str(caught.value) and "b: cannot connect" in str(caught.value)


async def test_breaker_opens_skips_then_tries_again(servers: list[ScriptedServer]) -> None:
    a, b = servers[0], servers[1]
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=2, cooldown_s=30.0, clock=clock)
    chain = ProviderChain(
        [engine(settings(a, "a", max_retries=0)), engine(settings(b, "b"))], breaker
    )
    a.script(Reply(503, b"{}"), Reply(503, b"{}"))
    b.script(ok("b1"), ok("b2"), ok("b3"))
    assert (await chain.chat(REQUEST)).provider == "b"
    assert not breaker.is_open("a")
    assert (await chain.chat(REQUEST)).provider == "b"
    assert breaker.is_open("a")

    clock.now += 29.0
    assert (await chain.chat(REQUEST)).provider == "b"
    assert len(a.received) == 2  # skipped while open

    clock.now += 1.0
    a.script(ok("a is back"))
    result = await chain.chat(REQUEST)
    assert (result.provider, result.text) == ("a", "a is back")
    assert len(a.received) == 3 and not breaker.is_open("a")


async def test_skipped_providers_are_named_when_nothing_is_left(server: ScriptedServer) -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, cooldown_s=60.0, clock=clock)
    chain = ProviderChain([engine(settings(server, "only", max_retries=0))], breaker)
    server.script(Reply(502, b"bad gateway"))
    with pytest.raises(AllProvidersFailedError, match="only: HTTP 502"):
        await chain.chat(REQUEST)
    with pytest.raises(AllProvidersFailedError, match="only: skipped for 60s more") as caught:
        await chain.chat(REQUEST)
    assert "HTTP 502" in str(caught.value)
    assert len(server.received) == 1


def test_breaker_half_open_lets_one_trial_through() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, cooldown_s=10.0, clock=clock)
    breaker.record_failure("p", ProviderError("bad request", status=400))
    breaker.record_failure("p", ProviderKeyError("OPENAI_API_KEY is not set"))
    assert not breaker.is_open("p")  # the request's or the setup's fault, not the provider's
    breaker.record_failure("p", OfflineError("down", retryable=True))
    assert not breaker.allow("p")
    clock.now += 10.0
    assert breaker.allow("p")  # the trial
    assert not breaker.allow("p")  # the others wait for it
    breaker.record_failure("p", OfflineError("still down", retryable=True))
    assert not breaker.allow("p")
    clock.now += 10.0
    assert breaker.allow("p")
    breaker.record_success("p")
    assert breaker.allow("p") and breaker.allow("p")


# -- cancellation -----------------------------------------------------------------------------


async def test_cancelling_closes_the_stream(server: ScriptedServer) -> None:
    server.script(
        Reply(
            chunks=openai_chunks("first", done=False),
            content_type="text/event-stream",
            hold_open=True,
        )
    )
    got_text = asyncio.Event()
    task = asyncio.create_task(engine(settings(server)).chat(REQUEST, lambda text: got_text.set()))
    await asyncio.wait_for(got_text.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await asyncio.to_thread(server.client_closed.wait, 5)
