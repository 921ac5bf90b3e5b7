"""The completion path for one keystroke: typing-through, cache, prompt window, engine,
post-processing, hedged with the team's completion server. Model work runs on the
scheduler's thread, never on the event loop."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from functools import partial
from pathlib import Path
from typing import Any

from nearline.catalog import resolve_model_path
from nearline.completion import hedging, warming
from nearline.completion.cache import CompletionCache
from nearline.completion.context import (
    CompletionContext,
    trailing_whitespace,
)
from nearline.completion.core import ServiceCore, build_prompt
from nearline.completion.engine.base import Generation, StopReason
from nearline.completion.engine.kvstate import KvStates
from nearline.completion.engine.llama import LocalEngine
from nearline.completion.hedge import Engine, Hedge
from nearline.completion.postprocess import (
    limit_scope,
)
from nearline.completion.remote import RemotePrompt
from nearline.completion.result import CompletionResult, Source
from nearline.completion.scheduler import Job, Priority
from nearline.completion.warming import SHORT_PREFIX_CHARS
from nearline.completion.windows import WindowStore
from nearline.config import Settings
from nearline.documents import DocumentView
from nearline.errors import NearlineError
from nearline.paths import cache_dir

log = logging.getLogger(__name__)

__all__ = ["SHORT_PREFIX_CHARS", "CompletionService", "build_prompt", "build_service"]

CARRY_ON_DELAY_S = 0.02
"""Pause before finishing a budget-cut suggestion in the background."""


def _line_mode_stop(ctx: CompletionContext, max_lines: int) -> Callable[[str], int | None]:
    def stop(text: str) -> int | None:
        cut = limit_scope(text, ctx, max_lines)
        return len(cut) if len(cut) < len(text) else None

    return stop


class CompletionService(ServiceCore):
    """Serves completions for documents: the local model on its thread, hedged with the
    team's completion server when one is set up."""

    async def complete(
        self,
        view: DocumentView,
        line: int,
        character: int,
        encoding: str = "utf-16",
        request_id: Any = None,
    ) -> CompletionResult:
        t0 = time.perf_counter()
        self.stats.requests += 1
        ctx = self.context_for(view, line, character, encoding)
        seq = self._seq[view.uri] = self._seq.get(view.uri, 0) + 1
        result = await self._answer(view, ctx, seq, t0)
        result = dataclasses.replace(result, latency_ms=(time.perf_counter() - t0) * 1000)
        self._note(result, request_id)
        return result

    async def _answer(
        self, view: DocumentView, ctx: CompletionContext, seq: int, t0: float
    ) -> CompletionResult:
        kept = self.shown.take(view.uri, ctx)
        if kept is not None:
            if not kept.late:
                self.stats.typed_through += 1
            source = Source.MODEL if kept.late else Source.TYPING_THROUGH
            engine = Engine(kept.engine)
            return self._result(
                kept.text, source, ctx, engine=engine, model=kept.model, remote=kept.answer
            )
        hedge = self.hedge
        asked = None
        if hedge is not None:

            def window() -> tuple[CompletionContext, RemotePrompt]:
                return hedging.remote_window(self, view, ctx)

            asked = hedge.ask(view.uri, ctx, window)
            if hedge.only:
                return await hedging.remote_only(self, view.uri, ctx, asked)
        local = asyncio.ensure_future(self._local(view, ctx, remember=asked is None))
        if asked is None:
            return await local
        try:
            return await hedging.hedged(self, view.uri, ctx, seq, t0, local, asked, window)
        except asyncio.CancelledError:
            local.cancel()
            raise

    async def _local(
        self, view: DocumentView, ctx: CompletionContext, *, remember: bool = True
    ) -> CompletionResult:
        """The local model's answer (or its cache's); ``remember``: as the one shown (hedged,
        the race decides that)."""
        await self.wait_loaded()
        prompt = self._prompt(ctx, view.uri)
        key = self._key(ctx, prompt)
        cached = self.cache.get(key)  # memory only: the disk is read on the engine thread
        if cached is None:
            budget_ms = self.settings.completion.time_budget_ms
            job = Job(
                run=partial(self._load_or_generate, ctx, prompt, key, budget_ms), key=view.uri
            )
            found = await self._run(job)
            if isinstance(found, str):
                cached = found
        model = self.engine.model_id
        if cached is not None:
            self.stats.cache_hits += 1
            if remember:
                self.shown.remember(view.uri, ctx, cached, model=model)
            return self._result(cached, Source.CACHE, ctx)

        generation = found
        if generation is None or generation.stop_reason is StopReason.CANCELLED:
            self.stats.superseded += 1
            return self._result("", Source.SUPERSEDED, ctx)

        self.stats.model_calls += 1
        text = self._finish(generation.text, generation.logprobs, ctx)
        if generation.stop_reason is StopReason.BUDGET:
            self.stats.budget_hits += 1
            self._carry_on(view.uri, ctx, prompt, key, generation, shown=bool(text))
        else:
            self.cache.put(key, text)
        if remember:
            self.shown.remember(view.uri, ctx, text, model=model)
        return self._result(text, Source.MODEL, ctx, generation)

    def _load_or_generate(
        self,
        ctx: CompletionContext,
        prompt: str,
        key: str,
        budget_ms: float,
        cancel: threading.Event,
    ) -> str | Generation:
        """On the engine thread: the suggestion from the disk cache, else a generation."""
        cached = self.cache.load(key)
        if cached is not None:
            return cached
        return self._generate(ctx, prompt, budget_ms, cancel)

    def _generate(
        self,
        ctx: CompletionContext,
        prompt: str,
        budget_ms: float | None,
        cancel: threading.Event,
        prior: Sequence[int] = (),
    ) -> Generation:
        """On the engine thread. The time budget counts from here: after the model load and
        after the (at most one step) wait for a superseded job to stop."""
        deadline = None if budget_ms is None else time.perf_counter() + budget_ms / 1000
        tokens = self.engine.tokenize(prompt)
        return self.engine.generate(
            [*tokens, *prior],
            max_tokens=self._max_tokens(ctx) - len(prior),
            stop=_line_mode_stop(ctx, self.settings.completion.max_block_lines),
            deadline=deadline,
            cancel=cancel,
            forced_prefix="" if prior else trailing_whitespace(ctx.line_prefix),
        )

    async def _run(self, job: Job) -> Any:
        """Run ``job`` on the engine thread; None if it was superseded before it ran. Cancelling
        the awaiting task (``$/cancelRequest``) sets the job's cancel flag."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Any] = loop.create_future()

        def transfer(fut: Future[Any]) -> None:
            def settle() -> None:
                if waiter.done():
                    return
                if fut.cancelled():
                    waiter.set_result(None)
                elif (exc := fut.exception()) is not None:
                    waiter.set_exception(exc)
                else:
                    waiter.set_result(fut.result())

            loop.call_soon_threadsafe(settle)

        self.scheduler.submit(job).add_done_callback(transfer)
        try:
            return await waiter
        except asyncio.CancelledError:
            job.cancel()
            self.stats.cancelled += 1
            raise

    def _carry_on(
        self,
        uri: str,
        ctx: CompletionContext,
        prompt: str,
        key: str,
        first: Generation,
        *,
        shown: bool,
    ) -> None:
        """Generation ran out of time: finish it in the background, for typing-through and
        the cache. ``shown``: its first part was shown (else the whole is gated again)."""
        if self._max_tokens(ctx) - len(first.tokens) <= 0:
            return

        def run(cancel: threading.Event) -> None:
            # Let the answer just sent reach the editor before the engine's threads take both
            # cores again; a new keystroke cancels the wait at once.
            if cancel.wait(CARRY_ON_DELAY_S):
                return
            rest = self._generate(ctx, prompt, None, cancel, prior=first.tokens)
            if rest.stop_reason is StopReason.CANCELLED:
                return
            text = self._finish(
                first.text + rest.text, first.logprobs + rest.logprobs, ctx, extended=shown
            )
            self.cache.put(key, text)
            extended = self.shown.extend(uri, ctx, text, model=self.engine.model_id)
            if extended and self.on_extended is not None:
                self.on_extended(uri, ctx)

        place = (ctx.line, ctx.character)
        self.scheduler.submit(Job(run=run, key=uri, priority=Priority.BACKGROUND, place=place))

    def warm(self, view: DocumentView, line: int, character: int, encoding: str = "utf-16") -> None:
        """Evaluate the prompt window around a position in the background."""
        warming.warm(self, view, line, character, encoding)

    def rest(self, view: DocumentView, line: int, character: int, encoding: str = "utf-16") -> None:
        """The cursor rests here (the client said so): see ``warming.rest``."""
        warming.rest(self, view, line, character, encoding)


def build_service(settings: Settings, hedge: Hedge | None = None) -> CompletionService:
    """A service whose engine loads on its own thread as its first job; ``hedge``: the
    team's completion server, asked beside it."""
    opts = settings.cache
    folder = cache_dir(opts.dir)
    cache = CompletionCache(
        folder / "completions" if opts.enable_disk else None,
        memory_entries=opts.memory_entries,
        disk_size_mb=opts.disk_size_mb,
    )
    windows = WindowStore(folder / "windows.json" if opts.enable_disk else None)
    try:
        path = resolve_model_path(settings.model)
    except NearlineError as exc:
        error = exc

        def fail() -> None:
            raise error

        engine = LocalEngine(Path("<missing>"), settings.model)
        return CompletionService(settings, engine, cache, load=fail, windows=windows, hedge=hedge)
    engine = LocalEngine(path, settings.model, kv_states_for(path, settings, folder))
    load = None if hedge is not None and hedge.only else engine.load  # only the server serves
    return CompletionService(settings, engine, cache, load=load, windows=windows, hedge=hedge)


def kv_states_for(path: Path, settings: Settings, folder: Path) -> KvStates | None:
    """Where the model's evaluated windows are kept: memory, and the cache folder's ``kv``."""
    opts = settings.cache
    if not opts.kv_memory_mb and not opts.kv_disk_mb:
        return None
    try:
        stat = path.stat()
    except OSError:
        return None
    model = settings.model
    key = f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}:{model.n_ctx}:{model.flash_attn}"
    disk = opts.enable_disk and opts.kv_disk_mb > 0
    return KvStates(
        key,
        memory_bytes=opts.kv_memory_mb << 20,
        disk_dir=folder / "kv" / hashlib.sha1(key.encode()).hexdigest()[:16] if disk else None,
        disk_bytes=opts.kv_disk_mb << 20,
    )
