"""Hedging a keystroke with the team's completion server (``[completion.remote]``).

The server is asked on its own thread and event loop (``RemoteLane``): its connections, its
JSON and its probes never run on the editor's loop or the engine thread. ``Hedge`` keeps at
most one live request per document (a newer keystroke closes the older one's connection,
unless it only typed more of the same line: then the answer on its way is reused), and asks
only while the breaker allows it. ``choose`` says which answer is shown when both are in."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from nearline.completion.context import CompletionContext
from nearline.completion.remote import RemoteAnswer, RemoteEngine, RemotePrompt
from nearline.completion.remote_health import RemoteBreaker, RemoteState
from nearline.config.remote import RemoteSettings
from nearline.errors import NearlineError, RemoteEngineError
from nearline.vocab import StrEnum

log = logging.getLogger(__name__)
RECENT = 20
"""The answers whose median says whether one can still make the budget."""


class Engine(StrEnum):
    """Which engine wrote a suggestion."""

    LOCAL = "local"
    REMOTE = "remote"


def choose(local: str, remote: str) -> Engine:
    """The answer to show when both are in: the completion server's (a bigger model, more
    often right), unless it is empty or the local one says the same and more."""
    if not remote:
        return Engine.LOCAL
    if len(local) > len(remote) and local.startswith(remote):
        return Engine.LOCAL
    return Engine.REMOTE


def typed_since(old: CompletionContext, new: CompletionContext) -> str | None:
    """The text typed on the cursor's line between two requests, when ``new`` only adds to
    ``old`` (same window, same rest of line); None otherwise."""
    if (old.anchor, old.line, old.line_suffix) != (new.anchor, new.line, new.line_suffix):
        return None
    if not new.prefix.startswith(old.prefix):
        return None
    return new.prefix[len(old.prefix) :]


def _on_loop(loop: asyncio.AbstractEventLoop, fn: Callable[..., None], *args: Any) -> None:
    """Run ``fn`` on ``loop`` (from the lane's thread); nothing once it is closed."""
    with contextlib.suppress(RuntimeError):  # closed: the server is shutting down
        loop.call_soon_threadsafe(fn, *args)


class RemoteLane:
    """The completion server's thread and event loop; the engine is made there too (making
    it may resolve the server's name)."""

    def __init__(self, factory: Callable[[], RemoteEngine]) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="nearline-remote", daemon=True
        )
        self._thread.start()
        self.engine: RemoteEngine | None = None
        self.error = ""
        """Why there is no engine (a refused public host, a bad template)."""
        self.made = self.submit(self._make(factory))

    async def _make(self, factory: Callable[[], RemoteEngine]) -> None:
        try:
            self.engine = factory()
        except NearlineError as exc:
            self.error = str(exc)
            log.warning("completion server not used: %s", exc)

    async def complete(self, prompt: RemotePrompt) -> RemoteAnswer:
        """The engine's answer (made before: the lane runs its work in order)."""
        if self.engine is None:
            raise RemoteEngineError(self.error or "the completion server is not set up")
        return await self.engine.complete(prompt)

    def submit(self, coro: Coroutine[Any, Any, Any]) -> concurrent.futures.Future[Any]:
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        engine = self.engine
        if engine is not None:
            with contextlib.suppress(Exception):  # closing: nothing to tell
                self.submit(engine.aclose()).result(timeout=1.0)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=1.0)


@dataclass
class LiveRemote:
    """A request to the completion server, as the service's loop sees it."""

    ctx: CompletionContext
    """The keystroke's context it was asked for."""
    rctx: CompletionContext
    """The server's window (wider than the local model's)."""
    started: float
    future: asyncio.Future[RemoteAnswer]
    inner: concurrent.futures.Future[RemoteAnswer]
    counted: bool = False
    """Its usage went to a ledger row already."""

    def cancel(self) -> None:
        self.inner.cancel()  # closes the connection on the lane's loop

    def answer(self) -> RemoteAnswer | None:
        fut = self.future
        if not fut.done() or fut.cancelled() or fut.exception() is not None:
            return None
        return fut.result()


@dataclass
class RemoteStats:
    asked: int = 0
    answered: int = 0
    won: int = 0
    """Shown when the keystroke was answered (in first, or better within the budget)."""
    late: int = 0
    """Shown after it: replaced the local answer through ``completionReady``."""
    reused: int = 0
    """Keystrokes served by the answer still on its way for a shorter line."""
    superseded: int = 0
    errors: int = 0
    busy: int = 0
    skipped: int = 0
    """Keystrokes not asked: the breaker was open or the server busy."""
    prompt_tokens: int = 0
    cached_tokens: int = 0
    generated_tokens: int = 0
    latencies: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k != "latencies"}
        lat = sorted(self.latencies)
        data["latency_p50_ms"] = round(lat[len(lat) // 2], 1) if lat else None
        return data


class Hedge:
    """The service's side of the completion server: what to ask, and whether."""

    def __init__(
        self,
        settings: RemoteSettings,
        lane: RemoteLane,
        *,
        breaker: RemoteBreaker | None = None,
        allowed: Callable[[str], bool] = lambda uri: True,
    ) -> None:
        self.settings = settings
        self.lane = lane
        self.breaker = breaker or RemoteBreaker(
            failures=settings.failures, cooldown_s=settings.cooldown_s
        )
        self.allowed = allowed
        """Whether a document's code may go to the server (``privacy.local_only``)."""
        self.stats = RemoteStats()
        self._live: dict[str, LiveRemote] = {}
        self._state = RemoteState.CLOSED

    @property
    def only(self) -> bool:
        return self.settings.mode == "only"

    @property
    def model_id(self) -> str:
        engine = self.lane.engine
        return engine.model_id if engine is not None else (self.settings.model or "remote")

    def ask(
        self,
        uri: str,
        ctx: CompletionContext,
        window: Callable[[], tuple[CompletionContext, RemotePrompt]],
    ) -> tuple[LiveRemote, str] | None:
        """The request for this keystroke and what was typed since it went out ("" for a new
        one), or None when the server is not asked."""
        live = self._live.get(uri)
        if live is not None and not live.future.done():
            typed = typed_since(live.ctx, ctx)
            if typed is not None:
                self.stats.reused += 1
                return live, typed
            self.supersede(uri)
        if self.lane.error or not self.allowed(uri):
            return None
        self._probe()
        if not self.breaker.allow():
            self.stats.skipped += 1
            self._note_state()
            return None
        rctx, prompt = window()
        loop = asyncio.get_running_loop()
        inner = self.lane.submit(self.lane.complete(prompt))
        outer: asyncio.Future[RemoteAnswer] = loop.create_future()
        live = LiveRemote(ctx, rctx, time.perf_counter(), outer, inner)
        inner.add_done_callback(lambda f: _on_loop(loop, self._settle, live, f))
        self._live[uri] = live
        self.stats.asked += 1
        return live, ""

    def may_arrive(self, live: LiveRemote, by: float) -> bool:
        """Whether ``live``'s answer may be in by ``by`` (``perf_counter``), going by the
        median of the server's last answers (no answers yet: it may)."""
        recent = sorted(self.stats.latencies[-RECENT:])
        if not recent:
            return True
        return live.started + recent[len(recent) // 2] / 1000 <= by

    def supersede(self, uri: str) -> None:
        """Close the document's live request (a newer keystroke needs another)."""
        live = self._live.pop(uri, None)
        if live is not None and not live.future.done():
            live.cancel()

    def forget(self, uri: str) -> None:
        self.supersede(uri)

    def _settle(self, live: LiveRemote, inner: concurrent.futures.Future[RemoteAnswer]) -> None:
        """On the service's loop: the request ended; tell the breaker how."""
        ms = (time.perf_counter() - live.started) * 1000
        slow = self.settings.slow_ms
        if inner.cancelled():
            self.stats.superseded += 1
            if ms > slow:  # nothing came for longer than is useful
                self.breaker.answered(False)
            live.future.cancel()
        elif isinstance(exc := inner.exception(), RemoteEngineError):
            self.stats.errors += 1
            self.stats.busy += exc.busy
            self.breaker.failed(str(exc), busy=exc.busy)
            live.future.set_exception(exc)
        elif exc is not None:
            self.stats.errors += 1
            self.breaker.failed(f"{type(exc).__name__}: {exc}")
            live.future.set_exception(RemoteEngineError(str(exc)))
        else:
            answer = inner.result()
            self.stats.answered += 1
            self.stats.prompt_tokens += answer.prompt_tokens
            self.stats.cached_tokens += answer.cached_tokens
            self.stats.generated_tokens += answer.generated_tokens
            if len(self.stats.latencies) < 100_000:
                self.stats.latencies.append(answer.latency_ms)
            self.breaker.answered(ms <= slow)
            live.future.set_result(answer)
        if not live.future.cancelled():
            live.future.exception()  # retrieved: whoever waits on it reads it again
        self._note_state()

    def _probe(self) -> None:
        engine = self.lane.engine
        if engine is None or not self.breaker.probe_due():
            return
        loop = asyncio.get_running_loop()

        def done(fut: concurrent.futures.Future[Any]) -> None:
            ok = not fut.cancelled() and fut.exception() is None and fut.result().ok
            _on_loop(loop, self._probed, ok)

        self.lane.submit(engine.probe()).add_done_callback(done)

    def _probed(self, ok: bool) -> None:
        self.breaker.probed(ok)
        self._note_state()

    def _note_state(self) -> None:
        state = self.breaker.state
        if state is self._state:
            return
        before, self._state = self._state, state
        where = self.lane.engine.where if self.lane.engine is not None else self.settings.url
        if state is RemoteState.OPEN:
            log.warning(
                "completion server %s set aside (%s): the local model serves",
                where,
                self.breaker.reason,
            )
        elif state is RemoteState.CLOSED and before is RemoteState.OPEN:
            log.info("completion server %s is back", where)

    def as_dict(self) -> dict[str, Any]:
        engine = self.lane.engine
        return {
            **self.stats.as_dict(),
            "state": self.breaker.state.value,
            "reason": self.breaker.reason or self.lane.error,
            "where": engine.where if engine is not None else "",
            "model": self.model_id,
            "mode": self.settings.mode,
        }

    def close(self) -> None:
        for uri in list(self._live):
            self.supersede(uri)
        self.lane.close()
