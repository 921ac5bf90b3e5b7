"""One fake OpenAI-compatible provider on 127.0.0.1, for the tests and the benchmarks: a
``FakeProvider`` records every request and answers each POST with the ``Reply`` its responder
gives. The responder may follow a script (``ScriptedServer``: misbehaviour on purpose, for the
engine tests), stream one answer with usage (``RecordingProvider``, for the escalation tests),
or simulate a provider (the cost benchmark's, with prompt caching). No pytest in here: the
benchmarks import it too."""

from __future__ import annotations

import http.server
import json
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from support import TEST_DATA

CLOUD_DATA = TEST_DATA / "cloud"


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
    """Lower-case names."""
    json: Any


def json_reply(body: Any, status: int = 200) -> Reply:
    return Reply(status, json.dumps(body).encode())


Responder = Callable[[Received], Reply]


class FakeProvider(http.server.ThreadingHTTPServer):
    """Answers each POST with ``responder(received)`` and keeps what it received; ``GET`` paths
    come from ``pages`` (``/v1/models`` by default)."""

    daemon_threads = True

    def __init__(self, responder: Responder, *, keep: bool = True) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.responder = responder
        self.keep = keep
        """Keep the requests in ``received`` (a benchmark of many thousands does not)."""
        self.received: list[Received] = []
        self.pages: dict[str, Callable[[], Any]] = {
            "/v1/models": lambda: {"object": "list", "data": [{"id": "fake", "object": "model"}]}
        }
        self.client_closed = threading.Event()

    @property
    def url(self) -> str:
        """The server's root (``/v1`` is the OpenAI-compatible base URL under it)."""
        return f"http://127.0.0.1:{self.server_address[1]}"

    def start(self, poll_interval: float = 0.5) -> FakeProvider:
        threading.Thread(target=self.serve_forever, args=(poll_interval,), daemon=True).start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client hanging up is fine
            super().handle_error(request, client_address)


class ScriptedServer(FakeProvider):
    """Answers each POST with the next scripted ``Reply`` (500 when the script is spent)."""

    def __init__(self) -> None:
        super().__init__(self._next)
        self.replies: deque[Reply] = deque()

    def script(self, *replies: Reply) -> ScriptedServer:
        self.replies.extend(replies)
        return self

    def _next(self, received: Received) -> Reply:
        return self.replies.popleft() if self.replies else Reply(500, b"no script")


class RecordingProvider(FakeProvider):
    """Streams ``answer``, then ``usage`` (as OpenAI reports it, cached tokens included); its
    ``bodies`` are the requests' JSON."""

    def __init__(self, answer: str = "Fine.", usage: dict[str, Any] | None = None) -> None:
        super().__init__(self._answer)
        self.answer = answer
        self.usage = usage or {"prompt_tokens": 10, "completion_tokens": 2}

    @property
    def url(self) -> str:
        return super().url + "/v1"

    @property
    def bodies(self) -> list[Any]:
        return [r.json for r in self.received]

    def _answer(self, received: Received) -> Reply:
        chunk = {"choices": [{"index": 0, "delta": {"content": self.answer}}]}
        usage = {"choices": [], "usage": self.usage}
        return Reply(body=b"".join(sse(chunk, usage)), content_type="text/event-stream")


class _Handler(http.server.BaseHTTPRequestHandler):
    server: FakeProvider
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        page = self.server.pages.get(self.path)
        reply = json_reply(page()) if page else json_reply({"error": "not found"}, 404)
        self._send(reply)

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        headers = {name.lower(): value for name, value in self.headers.items()}
        received = Received(self.path, headers, json.loads(raw or b"null"))
        if self.server.keep:
            self.server.received.append(received)
        reply = self.server.responder(received)
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


def sse(*payloads: Any, done: bool = True) -> list[bytes]:
    """OpenAI-style ``data:`` events, one per chunk."""
    events = [b"data: " + json.dumps(payload).encode() + b"\n\n" for payload in payloads]
    return events + ([b"data: [DONE]\n\n"] if done else [])
