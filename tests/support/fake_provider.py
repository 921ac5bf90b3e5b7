"""A local HTTP server that answers like a cloud provider, or misbehaves on purpose, for the
engine tests: ``ScriptedServer`` answers each POST with the next scripted ``Reply`` and records
what it received. Test modules import its fixtures (``servers``, ``server``, ``close_engines``)."""

from __future__ import annotations

import asyncio
import http.server
import json
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from nearline.config import ProviderSettings
from nearline.providers import ChatMessage, ChatRequest, make_engine
from nearline.providers.http import HttpChatEngine
from support import TEST_DATA

CLOUD_DATA = TEST_DATA / "cloud"
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


# -- a well-behaved provider that records what it gets ----------------------------------------


class RecordingProvider(http.server.ThreadingHTTPServer):
    """An OpenAI-compatible server on 127.0.0.1: records each request's JSON body and streams
    ``answer``, then ``usage`` (as OpenAI reports it, cached tokens included)."""

    daemon_threads = True

    def __init__(self, answer: str = "Fine.", usage: dict[str, Any] | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _RecordingHandler)
        self.answer = answer
        self.usage = usage or {"prompt_tokens": 10, "completion_tokens": 2}
        self.bodies: list[dict[str, Any]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def start(self) -> RecordingProvider:
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class _RecordingHandler(http.server.BaseHTTPRequestHandler):
    server: RecordingProvider

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        self.server.bodies.append(json.loads(self.rfile.read(length)))
        chunk = {"choices": [{"index": 0, "delta": {"content": self.server.answer}}]}
        usage = {"choices": [], "usage": self.server.usage}
        body = f"data: {json.dumps(chunk)}\n\ndata: {json.dumps(usage)}\n\ndata: [DONE]\n\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())
