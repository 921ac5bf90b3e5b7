"""The completion path for one keystroke: typing-through, cache, prompt window, engine,
post-processing. Model work runs on the scheduler's thread, never on the event loop."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any

from nearline.catalog import resolve_model_path
from nearline.completion.cache import CompletionCache, cache_key
from nearline.completion.context import (
    KEEP_RATIO,
    CompletionContext,
    build_context,
    prompt_prefix,
    trailing_whitespace,
)
from nearline.completion.crossfile import Block, blocks_for
from nearline.completion.engine.base import CompletionEngine, Generation, StopReason
from nearline.completion.engine.kvstate import KvStates
from nearline.completion.engine.llama import LocalEngine
from nearline.completion.engine.templates import FimTemplate
from nearline.completion.postprocess import (
    confidence,
    limit_scope,
    make_pipeline,
    postprocess,
    worth_showing,
)
from nearline.completion.scheduler import Job, Priority, Scheduler
from nearline.completion.typethrough import ShownSuggestions
from nearline.completion.windows import Window, WindowStore
from nearline.config import Settings
from nearline.documents import DocumentView, path_of_uri, to_code_points
from nearline.errors import ModelError, NearlineError
from nearline.index.shared import SharedIndex
from nearline.index.store import ProjectIndex
from nearline.paths import cache_dir
from nearline.vocab import StrEnum

log = logging.getLogger(__name__)

CARRY_ON_DELAY_S = 0.02
"""Pause before finishing a budget-cut suggestion in the background."""

RECENT = 512
"""Request records kept for ``nearline/stats`` (the latency benchmark reads them)."""

SHORT_PREFIX_CHARS = 320
"""A cold window where the cursor rests is first evaluated this short (~100 tokens of code:
about 1.1 s at the ~90 tokens/s Qwen2.5-Coder-0.5B evaluates on 2 cores), so a key typed after
a 1.5 s rest is answered at keystroke speed; the full window follows."""
COLD_TOKENS = 96
"""A window with more tokens than this left to evaluate is cold."""


class Source(StrEnum):
    """How a completion was served."""

    MODEL = "model"
    TYPING_THROUGH = "typing-through"
    """The person typed what was shown: the rest of it, no model call."""
    CACHE = "cache"
    SUPERSEDED = "superseded"
    """A newer request for the document took the engine; nothing to show."""
    NONE = "none"
    """The model ran and had nothing worth showing."""


@dataclass(frozen=True)
class CompletionResult:
    text: str
    source: Source
    model_id: str
    latency_ms: float
    line: int
    character: int
    """Cursor position in code points."""
    generation: Generation | None = None
    uid: str = ""
    """The request's id in the usage ledger (the client sends it back on accept)."""


@dataclass
class Stats:
    requests: int = 0
    model_calls: int = 0
    typed_through: int = 0
    cache_hits: int = 0
    superseded: int = 0
    cancelled: int = 0
    budget_hits: int = 0
    warmups: int = 0
    errors: int = 0
    accepted: int = 0
    gated: int = 0
    """Suggestions not shown: the model was too unsure of them."""
    rests: int = 0
    """``nearline/cursorRest`` notifications."""
    last_rest: dict[str, Any] | None = None
    """The last rest: where, and when (ms after it came) its short and full windows were
    evaluated (None: not yet, or cancelled)."""
    recent: collections.deque[dict[str, Any]] = field(
        default_factory=lambda: collections.deque(maxlen=RECENT)
    )

    def as_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k != "recent"}
        data["recent"] = list(self.recent)
        return data


def build_prompt(
    template: FimTemplate,
    ctx: CompletionContext,
    path: str,
    rel: str = "",
    project: str = "",
) -> str:
    """The prompt for ``ctx``: the cross-file blocks first (in the template's repository
    format), then the window. With a ``line`` template, the rest of the
    cursor's line in the hole and the lines below it as a context block before it, so that a
    keystroke changes only the end of the prompt's tokens (the KV cache keeps the rest).
    ``path``: the document's file name; ``rel``: its path in the project; ``project``: the
    project's name."""
    repo = [(b.path, b.text) for b in ctx.repo] if template.repo else []
    prefix = prompt_prefix(ctx)
    if template.suffix == "line" and template.context:
        blocks = [(path, ctx.below)] if ctx.below.strip() else []
        return template.render(prefix, ctx.line_suffix, blocks, path, repo, rel or path, project)
    return template.render(
        prefix, ctx.suffix, path=path, repo=repo, repo_path=rel or path, repo_name=project
    )


def _line_mode_stop(ctx: CompletionContext, max_lines: int) -> Callable[[str], int | None]:
    def stop(text: str) -> int | None:
        cut = limit_scope(text, ctx, max_lines)
        return len(cut) if len(cut) < len(text) else None

    return stop


@dataclass(frozen=True)
class _RepoChoice:
    anchor: int
    ready: bool
    """Whether the project index was built."""
    blocks: tuple[Block, ...]
    fixed: bool = False
    """Kept until the anchor moves, even when the index becomes ready (a window evaluated at
    a rest, or the window kept across a restart)."""
    short: bool = False
    """A rest's short window: the next rest grows it to a full one."""


class CompletionService:
    """Serves completions for documents; owns the engine, its thread, the cache and the state
    kept per document (window anchor, shown suggestion)."""

    def __init__(
        self,
        settings: Settings,
        engine: CompletionEngine,
        cache: CompletionCache,
        *,
        load: Callable[[], None] | None = None,
        windows: WindowStore | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.cache = cache
        self.stats = Stats()
        self.scheduler = Scheduler()
        self.shown = ShownSuggestions()
        self._anchors: dict[str, int] = {}
        self.project: ProjectIndex | SharedIndex | None = None
        """The project index the cross-file context comes from (set by the server)."""
        self._repo: dict[str, _RepoChoice] = {}
        """Per document: its cross-file blocks and when they were chosen."""
        self._rels: dict[tuple[str, int], str] = {}
        self.windows = windows if windows is not None else WindowStore(None)
        """Each document's last window, kept across restarts."""
        self.on_extended: Callable[[str, CompletionContext], None] | None = None
        """Called (on the engine thread) when a budget-cut suggestion has been finished."""
        self._pipeline = make_pipeline(settings.completion.max_block_lines)
        self._load_future: Future[Any] = self.scheduler.submit(
            Job(
                run=lambda _cancel: load() if load else None, key="__load__", priority=Priority.LOAD
            )
        )

    def reconfigure(self, settings: Settings) -> None:
        """New settings that keep the model and the cache (``build_service`` makes a new
        service for those): everything derived from them follows."""
        self.settings = settings
        self._pipeline = make_pipeline(settings.completion.max_block_lines)

    # -- model -----------------------------------------------------------------------------
    @property
    def load_future(self) -> Future[Any]:
        return self._load_future

    def load_error(self) -> ModelError | None:
        fut = self._load_future
        if not fut.done():
            return None
        exc = fut.exception()
        return exc if isinstance(exc, ModelError) else None

    async def wait_loaded(self) -> None:
        """Raise the load's ``ModelError`` if loading failed."""
        await asyncio.wrap_future(self._load_future)

    # -- documents ---------------------------------------------------------------------------
    def context_for(
        self, view: DocumentView, line: int, character: int, encoding: str = "utf-16"
    ) -> CompletionContext:
        line, column = to_code_points(view, line, character, encoding)
        opts = self.settings.completion
        ctx = build_context(
            view.lines,
            line,
            column,
            previous_anchor=self._previous_anchor(view.uri),
            max_prefix_chars=opts.max_prefix_chars,
            max_suffix_chars=opts.max_suffix_chars,
        )
        self._anchors[view.uri] = ctx.anchor
        repo = self._repo_blocks(view, ctx.anchor)
        return dataclasses.replace(ctx, repo=repo) if repo else ctx

    def _previous_anchor(self, uri: str) -> int | None:
        """The document's window start: this run's, else the one kept before a restart (its
        evaluated state may be on disk)."""
        previous = self._anchors.get(uri)
        if previous is None and (kept := self.windows.get(uri)) is not None:
            previous = kept.anchor
        return previous

    def _repo_blocks(self, view: DocumentView, anchor: int) -> tuple[Block, ...]:
        """The document's cross-file blocks, chosen again only when the window's anchor moved
        (or the index became ready): a keystroke keeps the prompt's start."""
        project, budget = self.project, self.settings.completion.cross_file_chars
        if project is None or budget <= 0 or not self.engine.template.repo:
            return ()  # a family without a repository format: none (measured: no gain)
        ready = project.ready.is_set()
        kept = self._repo.get(view.uri)
        if kept is not None and kept.anchor == anchor and (kept.ready == ready or kept.fixed):
            return kept.blocks
        stored = self.windows.get(view.uri) if kept is None else None
        if stored is not None and stored.anchor == anchor:  # as before a restart: its state
            self._repo[view.uri] = _RepoChoice(anchor, ready, stored.blocks, True)
            return stored.blocks
        blocks = self._choose_blocks(view)
        self._repo[view.uri] = _RepoChoice(anchor, ready, blocks)
        self.windows.put(view.uri, Window(anchor, blocks))
        return blocks

    def _choose_blocks(self, view: DocumentView) -> tuple[Block, ...]:
        """The cross-file blocks for the document as it is (none until the index is ready)."""
        project, budget = self.project, self.settings.completion.cross_file_chars
        if project is None or budget <= 0 or not self.engine.template.repo:
            return ()
        rel = self._rel(view.uri)
        if not project.ready.is_set() or not rel:
            return ()
        return tuple(blocks_for(rel, view.lines, project.modules(), budget))

    def _rel(self, uri: str) -> str:
        """The document's path in the project ("" outside one), found once per project."""
        project = self.project
        if project is None:
            return ""
        key = (uri, id(project))
        if (rel := self._rels.get(key)) is None:
            path = path_of_uri(uri)
            rel = self._rels[key] = (project.relative(path) if path is not None else None) or ""
        return rel

    def _use_window(self, uri: str, ctx: CompletionContext, *, short: bool) -> None:
        """Make ``ctx``'s window (evaluated already) the document's: the next request there
        uses its anchor and blocks."""
        ready = self.project is not None and self.project.ready.is_set()
        self._anchors[uri] = ctx.anchor
        self._repo[uri] = _RepoChoice(ctx.anchor, ready, ctx.repo, True, short)
        self.windows.put(uri, Window(ctx.anchor, ctx.repo))

    def _window_at(
        self, view: DocumentView, line: int, character: int, encoding: str, *, short: bool
    ) -> CompletionContext:
        """The window at a position as a request would get it now, without making it the
        document's. ``short``: cut to ``SHORT_PREFIX_CHARS``, no cross-file blocks. A full
        window after a short one starts afresh at the cursor (with its blocks)."""
        line, column = to_code_points(view, line, character, encoding)
        opts = self.settings.completion
        kept = self._repo.get(view.uri)
        fresh = short or (kept is not None and kept.short)
        previous = None if fresh else self._previous_anchor(view.uri)
        limit = min(SHORT_PREFIX_CHARS, opts.max_prefix_chars) if short else None
        ctx = build_context(
            view.lines,
            line,
            column,
            previous_anchor=previous,
            max_prefix_chars=limit or opts.max_prefix_chars,
            max_suffix_chars=min(limit or opts.max_suffix_chars, opts.max_suffix_chars),
            keep_ratio=1.0 if short else KEEP_RATIO,
        )
        if short:
            return ctx
        if kept is not None and kept.anchor == ctx.anchor and not kept.short:
            return dataclasses.replace(ctx, repo=kept.blocks)
        return dataclasses.replace(ctx, repo=self._choose_blocks(view))

    def forget(self, uri: str) -> None:
        self._rels = {k: v for k, v in self._rels.items() if k[0] != uri}
        self._anchors.pop(uri, None)
        self._repo.pop(uri, None)
        self.shown.forget(uri)

    def _prompt(self, ctx: CompletionContext, uri: str) -> str:
        name = PurePosixPath(uri).name
        rel = self._rel(uri) if ctx.repo else ""
        project = self.project.root.name if self.project is not None else ""
        return build_prompt(self.engine.template, ctx, name, rel, project)

    def _key(self, ctx: CompletionContext, prompt: str) -> str:
        return cache_key(
            self.engine.model_id,
            self.engine.template.id,
            ctx.mode.value,
            prompt,
            trailing_whitespace(ctx.line_prefix),
            ctx.suffix,
        )

    # -- completion --------------------------------------------------------------------------
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
        remainder = self.shown.remainder(view.uri, ctx)
        if remainder is not None:
            self.stats.typed_through += 1
            return self._result(remainder, Source.TYPING_THROUGH, ctx, t0, request_id=request_id)

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
        if cached is not None:
            self.stats.cache_hits += 1
            self.shown.remember(view.uri, ctx, cached)
            return self._result(cached, Source.CACHE, ctx, t0, request_id=request_id)

        generation = found
        if generation is None or generation.stop_reason is StopReason.CANCELLED:
            self.stats.superseded += 1
            return self._result("", Source.SUPERSEDED, ctx, t0, request_id=request_id)

        self.stats.model_calls += 1
        text = self._finish(generation.text, generation.logprobs, ctx)
        if generation.stop_reason is StopReason.BUDGET:
            self.stats.budget_hits += 1
            self._carry_on(view.uri, ctx, prompt, key, generation)
        else:
            self.cache.put(key, text)
        self.shown.remember(view.uri, ctx, text)
        return self._result(text, Source.MODEL, ctx, t0, generation, request_id=request_id)

    def _finish(
        self,
        raw: str,
        logprobs: Sequence[float],
        ctx: CompletionContext,
        *,
        extended: bool = False,
    ) -> str:
        """The suggestion to show: post-processed, and gated on the model's confidence (a
        suggestion already shown in part is only ever extended, never taken back)."""
        text = postprocess(raw, ctx, self._pipeline)
        if extended:
            return text
        shown = worth_showing(text, logprobs, self.settings.completion.min_confidence)
        if text and not shown:
            self.stats.gated += 1
        return shown

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

    def _max_tokens(self, ctx: CompletionContext) -> int:
        opts = self.settings.completion
        return opts.max_block_tokens if ctx.mode.value == "block" else opts.max_line_tokens

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
        self, uri: str, ctx: CompletionContext, prompt: str, key: str, first: Generation
    ) -> None:
        """Generation ran out of time: finish it in the background, for typing-through and
        the cache."""
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
                first.text + rest.text, first.logprobs + rest.logprobs, ctx, extended=True
            )
            self.cache.put(key, text)
            self.shown.extend(uri, ctx, text)
            if self.on_extended is not None:
                self.on_extended(uri, ctx)

        self.scheduler.submit(Job(run=run, key=uri, priority=Priority.BACKGROUND))

    def warm(self, view: DocumentView, line: int, character: int, encoding: str = "utf-16") -> None:
        """Evaluate the prompt window around a position in the background."""
        if not self.settings.completion.warmup:
            return
        ctx = self.context_for(view, line, character, encoding)

        def run(cancel: threading.Event) -> None:
            self.engine.prefill(self.engine.tokenize(self._prompt(ctx, view.uri)), cancel)
            self.stats.warmups += 1

        self.scheduler.submit(Job(run=run, key=view.uri, priority=Priority.BACKGROUND))

    def rest(self, view: DocumentView, line: int, character: int, encoding: str = "utf-16") -> None:
        """The cursor rests here (the client said so): evaluate the window at low priority,
        any request first. A cold window is evaluated short first (``SHORT_PREFIX_CHARS``,
        no cross-file blocks) and made the document's window at once, so a key typed soon
        is answered from it; then the full window, which becomes the document's when done.
        Only the newest rest is worked on: it cancels the background work before it."""
        t0 = time.perf_counter()
        short = self._window_at(view, line, character, encoding, short=True)  # may raise
        full = self._window_at(view, line, character, encoding, short=False)
        self.stats.rests += 1
        record: dict[str, Any] = {
            "uri": view.uri,
            "line": line,
            "character": character,
            "short_ms": None,
            "full_ms": None,
        }
        self.stats.last_rest = record
        if not self.settings.completion.warmup:
            return
        self.scheduler.cancel_background()

        def ms() -> float:
            return round((time.perf_counter() - t0) * 1000, 1)

        def run(cancel: threading.Event) -> None:
            tokens = self.engine.tokenize(self._prompt(full, view.uri))
            cold = len(tokens) - self._cached(tokens) > COLD_TOKENS
            if cold and short.anchor > full.anchor:
                self._use_window(view.uri, short, short=True)
                self.engine.prefill(self.engine.tokenize(self._prompt(short, view.uri)), cancel)
                if cancel.is_set():
                    return
                record["short_ms"] = ms()
            self.engine.prefill(tokens, cancel)
            if cancel.is_set():
                return
            self._use_window(view.uri, full, short=False)
            record["full_ms"] = ms()
            if record["short_ms"] is None:
                record["short_ms"] = record["full_ms"]
            self.stats.warmups += 1

        self.scheduler.submit(Job(run=run, key=view.uri, priority=Priority.BACKGROUND))

    def _cached(self, tokens: Sequence[int]) -> int:
        """Leading tokens the engine has evaluated already (its cache, or a kept state)."""
        cached = getattr(self.engine, "cached", None)
        return int(cached(tokens)) if cached is not None else 0

    def _result(
        self,
        text: str,
        source: Source,
        ctx: CompletionContext,
        t0: float,
        generation: Generation | None = None,
        *,
        request_id: Any = None,
    ) -> CompletionResult:
        latency = (time.perf_counter() - t0) * 1000
        record: dict[str, Any] = {
            "id": request_id,
            "source": source,
            "latency_ms": round(latency, 2),
            "chars": len(text),
        }
        if generation is not None:
            record.update(
                eval_ms=round(generation.eval_ms, 2),
                generate_ms=round(generation.generate_ms, 2),
                reused_tokens=generation.reused_tokens,
                evaluated_tokens=generation.evaluated_tokens,
                generated_tokens=len(generation.tokens),
                prompt_tokens=generation.prompt_tokens,
                stop_reason=generation.stop_reason.value,
                confidence=round(confidence(generation.logprobs), 4),
            )
        self.stats.recent.append(record)
        return CompletionResult(
            text,
            source if text or source is Source.SUPERSEDED else Source.NONE,
            self.engine.model_id,
            latency,
            ctx.line,
            ctx.character,
            generation,
        )

    def close(self) -> None:
        self.scheduler.close()
        self.windows.close()
        self.cache.close()
        self.engine.close()


def build_service(settings: Settings) -> CompletionService:
    """A service whose engine loads on its own thread as its first job."""
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
        return CompletionService(settings, engine, cache, load=fail, windows=windows)
    engine = LocalEngine(path, settings.model, kv_states_for(path, settings, folder))
    return CompletionService(settings, engine, cache, load=engine.load, windows=windows)


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
