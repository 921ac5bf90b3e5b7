"""A replayed completion server: llama-server's ``POST /infill`` (streamed as SSE) and
``GET /health`` on 127.0.0.1, answering from the table of precomputed answers after a fixed
latency counted from the request's arrival.

It runs on its own thread with its own event loop (the bench's loop is never held up), or as a
process: ``python scripts/remotebench/replay_server.py --latency-ms 30 --port 8012``.

- A hit streams the table's answer, cut as llama-server would by the request's ``stop``
  strings and ``n_indent``, in two content events and a last one with ``"stop": true``; a miss
  answers ``""`` after the same latency. Both are counted, per ``tag`` (the bench sets it to
  the split it types), and the first few requests are kept for the log.
- A simulated prompt cache with one slot: the previous request's prompt (``input_extra``'s
  texts, the prefix, the suffix); the last event reports ``tokens_evaluated`` = len(prompt)/4
  and ``tokens_cached`` = (leading characters shared with the previous prompt)/4.
- A client that closes the connection while it waits is dropped (counted); nothing is sent.
- Connections are kept alive (chunked transfer), as llama-server does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: scripts/ on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from remotebench.answers import TABLE, AnswerTable, key_of, near_of  # noqa: E402

CHARS_PER_TOKEN = 4
SEEN_KEPT = 8
"""The first requests kept (their key, and whether the table had it) for the log."""


def common_prefix(a: str, b: str) -> int:
    n = min(len(a), len(b))
    lo, hi = 0, n
    while lo < hi:  # binary search on slices: fast on long prompts
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def cut_answer(text: str, stop: list[str], n_indent: int) -> str:
    """What llama-server would send of ``text``: up to the first stop string, and (with
    ``n_indent``) up to the first later line indented less (a blank one too), after that
    line's indentation (llama.cpp's server cuts there)."""
    for s in stop:
        if s and s in text:
            text = text[: text.index(s)]
    if n_indent > 0:
        start = text.find("\n")
        while start != -1:
            pos = start + 1
            while pos < len(text) and text[pos] in " \t":
                pos += 1
            if pos < len(text) and pos - start - 1 < n_indent:
                return text[:pos]
            start = text.find("\n", start + 1)
    return text


def split_parts(text: str) -> list[str]:
    """Two content events (as a streamed answer arrives in pieces)."""
    half = len(text) // 2
    return [text[:half], text[half:]]


class ReplayRemote:
    def __init__(self, table: AnswerTable, latency_ms: float, port: int = 0) -> None:
        self.table = table
        self.latency_ms = latency_ms
        self.port = port
        self.tag = ""
        self.counts: dict[str, Counter[str]] = {}
        self.seen: list[dict[str, Any]] = []
        self.keys: list[tuple[str, str]] = []
        """(tag, key) of every ``/infill`` request, in order."""
        self._last_prompt = ""
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.counts.setdefault(self.tag, Counter())[name] += n

    def totals(self, tag: str | None = None) -> Counter[str]:
        with self._lock:
            if tag is not None:
                return Counter(self.counts.get(tag, Counter()))
            return sum(self.counts.values(), Counter())

    # -- on its own thread ---------------------------------------------------------------
    def start(self) -> ReplayRemote:
        self._thread = threading.Thread(target=self._run, name="replay-remote", daemon=True)
        self._thread.start()
        if not self._ready.wait(10) or self._server is None:
            raise RuntimeError("the replay server did not start")
        return self

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            self._server = loop.run_until_complete(self.listen())
        finally:
            self._ready.set()
        loop.run_forever()
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()

    def stop(self) -> None:
        loop = self._loop
        if loop is None or self._thread is None:
            return

        async def close() -> None:
            if self._server is not None:
                self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            loop.stop()

        loop.call_soon_threadsafe(lambda: loop.create_task(close()))
        self._thread.join(10)

    def __enter__(self) -> ReplayRemote:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the server ----------------------------------------------------------------------
    async def listen(self) -> asyncio.AbstractServer:
        server = await asyncio.start_server(self._connection, "127.0.0.1", self.port)
        self.port = server.sockets[0].getsockname()[1]
        return server

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request = await read_request(reader)
                if request is None:
                    return
                arrived = time.perf_counter()
                method, path, body = request
                if method == "GET" and path.split("?")[0] == "/health":
                    self.count("health")
                    send_json(writer, 200, {"status": "ok"})
                elif method == "POST" and path.split("?")[0] == "/infill":
                    if not await self._infill(reader, writer, body, arrived):
                        return
                else:
                    send_json(writer, 404, {"error": {"message": f"no {method} {path}"}})
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            return
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _infill(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        raw: bytes,
        arrived: float,
    ) -> bool:
        """Answer one ``/infill``; False when the client went away (the connection ends)."""
        try:
            body = json.loads(raw)
            prefix, suffix = str(body["input_prefix"]), str(body.get("input_suffix", ""))
        except (ValueError, KeyError, TypeError) as exc:
            send_json(writer, 400, {"error": {"message": f"bad request: {exc}"}})
            return True
        extra = body.get("input_extra") or []
        key = key_of(prefix, suffix)
        entry = self.table.get(key)
        near = entry is None and self.table.is_near(near_of(prefix))
        self.count("requests")
        self.count("hits" if entry is not None else "misses")
        if near:
            self.count("near_misses")
        prompt = "".join(str(e.get("filename", "")) + str(e.get("text", "")) for e in extra)
        prompt += prefix + suffix
        with self._lock:
            shared, self._last_prompt = common_prefix(prompt, self._last_prompt), prompt
            self.keys.append((self.tag, key))
            if len(self.seen) < SEEN_KEPT:
                self.seen.append(
                    {
                        "tag": self.tag,
                        "key": key[:12],
                        "hit": entry is not None,
                        "near": near,
                        "prefix_end": prefix[-40:],
                        "suffix_start": suffix[:20],
                    }
                )
        evaluated = max(1, round(len(prompt) / CHARS_PER_TOKEN))
        cached = min(evaluated, shared // CHARS_PER_TOKEN)
        if not await self._wait(reader, arrived):
            self.count("dropped")
            return False
        stop = [str(s) for s in body.get("stop") or []]
        text = cut_answer(entry.answer, stop, int(body.get("n_indent") or 0)) if entry else ""
        events: list[dict[str, Any]] = [{"content": p, "stop": False} for p in split_parts(text)]
        events.append(
            {
                "content": "",
                "stop": True,
                "tokens_cached": cached,
                "tokens_evaluated": evaluated,
                "timings": {
                    "prompt_n": evaluated - cached,
                    "predicted_n": max(1, round(len(text) / CHARS_PER_TOKEN)),
                },
            }
        )
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        for event in events:
            data = f"data: {json.dumps(event)}\n\n".encode()
            writer.write(b"%x\r\n%s\r\n" % (len(data), data))
        writer.write(b"0\r\n\r\n")
        try:
            await writer.drain()
        except ConnectionError:
            self.count("dropped")
            return False
        self.count("answered")
        self.count("prompt_tokens", evaluated)
        self.count("cached_tokens", cached)
        return True

    async def _wait(self, reader: asyncio.StreamReader, arrived: float) -> bool:
        """Sleep out the latency from ``arrived``; False when the client closes meanwhile."""
        left = self.latency_ms / 1000 - (time.perf_counter() - arrived)
        if left <= 0:
            return not reader.at_eof()
        gone = asyncio.ensure_future(reader.read(1))
        done, _ = await asyncio.wait({gone}, timeout=left)
        if gone in done:
            # EOF (or a reset): the client went away. Data instead would be a pipelined
            # request, which HTTP/1.1 clients here never send: end the connection too.
            return False
        gone.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await gone
        return True


async def read_request(reader: asyncio.StreamReader) -> tuple[str, str, bytes] | None:
    """(method, path, body) of the next request; None at EOF."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, path = (lines[0].split(" ") + ["", ""])[:2]
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip() or 0)
    body = await reader.readexactly(length) if length else b""
    return method, path, body


def send_json(writer: asyncio.StreamWriter, status: int, payload: dict[str, Any]) -> None:
    data = json.dumps(payload).encode()
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found"}.get(status, "Error")
    writer.write(
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\n\r\n".encode()
        + data
    )


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", default=str(TABLE), help="the precomputed answers")
    parser.add_argument("--latency-ms", type=float, default=30)
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    args = parser.parse_args(argv)
    table = AnswerTable.load(Path(args.table))
    replay = ReplayRemote(table, args.latency_ms, args.port).start()
    print(f"{replay.url}: {len(table)} answers, {args.latency_ms:.0f} ms", flush=True)
    try:
        while True:
            time.sleep(10)
            print(dict(replay.totals()), flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        replay.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
