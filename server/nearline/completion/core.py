"""The completion service's state and what its ways of answering share (``service``: the
local model; ``hedging``: with the team's completion server; ``warming``: ahead of a request)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from nearline.completion.cache import CompletionCache, cache_key
from nearline.completion.context import (
    CompletionContext,
    build_context,
    prompt_prefix,
    trailing_whitespace,
)
from nearline.completion.crossfile import Block, blocks_for
from nearline.completion.engine.base import CompletionEngine, Generation
from nearline.completion.engine.templates import FimTemplate
from nearline.completion.hedge import Engine, Hedge
from nearline.completion.postprocess import (
    confidence,
    make_pipeline,
    postprocess,
    worth_showing,
)
from nearline.completion.remote import RemoteAnswer
from nearline.completion.result import CompletionResult, Source, Stats
from nearline.completion.scheduler import Job, Priority, Scheduler
from nearline.completion.typethrough import ShownSuggestions
from nearline.completion.windows import Window, WindowStore
from nearline.config import Settings
from nearline.documents import DocumentView, path_of_uri, to_code_points
from nearline.errors import ModelError
from nearline.index.shared import SharedIndex
from nearline.index.store import ProjectIndex


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


@dataclass(frozen=True)
class RepoChoice:
    anchor: int
    ready: bool
    """Whether the project index was built."""
    blocks: tuple[Block, ...]
    fixed: bool = False
    """Kept until the anchor moves, even when the index becomes ready (a window evaluated at
    a rest, or the window kept across a restart)."""
    short: bool = False
    """A rest's short window: the next rest grows it to a full one."""


class ServiceCore:
    """The completion service's state: settings, engine, cache, the windows and suggestions
    kept per document, counters; and what every way of answering shares."""

    def __init__(
        self,
        settings: Settings,
        engine: CompletionEngine,
        cache: CompletionCache,
        *,
        load: Callable[[], None] | None = None,
        windows: WindowStore | None = None,
        hedge: Hedge | None = None,
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
        self._repo: dict[str, RepoChoice] = {}
        """Per document: its cross-file blocks and when they were chosen."""
        self._rels: dict[tuple[str, int], str] = {}
        self.windows = windows if windows is not None else WindowStore(None)
        """Each document's last window, kept across restarts."""
        self.hedge = hedge
        """The team's completion server, asked beside the local model (None: not set up)."""
        self._remote_anchors: dict[str, int] = {}
        self._seq: dict[str, int] = {}
        """Per document: the number of its newest request."""
        self.on_extended: Callable[[str, CompletionContext], None] | None = None
        """Called (on the engine thread, or the event loop for a late server answer) when the
        suggestion for a request's place changed: the client may ask there again."""
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
            self._repo[view.uri] = RepoChoice(anchor, ready, stored.blocks, True)
            return stored.blocks
        blocks = self._choose_blocks(view)
        self._repo[view.uri] = RepoChoice(anchor, ready, blocks)
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

    def forget(self, uri: str) -> None:
        self._rels = {k: v for k, v in self._rels.items() if k[0] != uri}
        self._anchors.pop(uri, None)
        self._remote_anchors.pop(uri, None)
        self._seq.pop(uri, None)
        self._repo.pop(uri, None)
        self.shown.forget(uri)
        if self.hedge is not None:
            self.hedge.forget(uri)

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

    def _max_tokens(self, ctx: CompletionContext) -> int:
        opts = self.settings.completion
        return opts.max_block_tokens if ctx.mode.value == "block" else opts.max_line_tokens

    def _result(
        self,
        text: str,
        source: Source,
        ctx: CompletionContext,
        generation: Generation | None = None,
        *,
        engine: Engine = Engine.LOCAL,
        model: str = "",
        remote: RemoteAnswer | None = None,
    ) -> CompletionResult:
        """A result (its latency is set when the request is answered)."""
        return CompletionResult(
            text,
            source if text or source is Source.SUPERSEDED else Source.NONE,
            model
            or (self.hedge.model_id if engine is Engine.REMOTE and self.hedge else "")
            or self.engine.model_id,
            0.0,
            ctx.line,
            ctx.character,
            generation,
            engine=engine,
            remote=remote,
        )

    def _note(self, result: CompletionResult, request_id: Any) -> None:
        """The request's record for ``nearline/stats``."""
        record: dict[str, Any] = {
            "id": request_id,
            "source": result.source,
            "engine": result.engine,
            "latency_ms": round(result.latency_ms, 2),
            "chars": len(result.text),
        }
        if result.text:
            self.stats.served[result.engine.value] += 1
        if (generation := result.generation) is not None:
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
        if (answer := result.remote) is not None:
            record.update(
                remote_ms=round(answer.latency_ms, 2),
                remote_prompt_tokens=answer.prompt_tokens,
                remote_cached_tokens=answer.cached_tokens,
                remote_generated_tokens=answer.generated_tokens,
            )
        self.stats.recent.append(record)

    def stats_dict(self) -> dict[str, Any]:
        data = self.stats.as_dict()
        if self.hedge is not None:
            data["remote"] = self.hedge.as_dict()
        return data

    def close(self) -> None:
        if self.hedge is not None:
            self.hedge.close()
        self.scheduler.close()
        self.windows.close()
        self.cache.close()
        self.engine.close()
