"""Evaluating a window before it is asked for: where the cursor rests (``nearline/cursorRest``)
or where a document opens. Functions of ``CompletionService``'s windows and engine thread."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from nearline.completion.context import KEEP_RATIO, CompletionContext, build_context
from nearline.completion.core import RepoChoice
from nearline.completion.scheduler import Job, Priority
from nearline.completion.windows import Window
from nearline.documents import DocumentView, to_code_points

if TYPE_CHECKING:
    from nearline.completion.core import ServiceCore

SHORT_PREFIX_CHARS = 320
"""A cold window where the cursor rests is first evaluated this short (~100 tokens of code:
about 1.1 s at the ~90 tokens/s Qwen2.5-Coder-0.5B evaluates on 2 cores), so a key typed after
a 1.5 s rest is answered at keystroke speed; the full window follows."""
COLD_TOKENS = 96
"""A window with more tokens than this left to evaluate is cold."""


def use_window(svc: ServiceCore, uri: str, ctx: CompletionContext, *, short: bool) -> None:
    """Make ``ctx``'s window (evaluated already) the document's: the next request there
    uses its anchor and blocks."""
    ready = svc.project is not None and svc.project.ready.is_set()
    svc._anchors[uri] = ctx.anchor
    svc._repo[uri] = RepoChoice(ctx.anchor, ready, ctx.repo, True, short)
    svc.windows.put(uri, Window(ctx.anchor, ctx.repo))


def window_at(
    svc: ServiceCore,
    view: DocumentView,
    line: int,
    character: int,
    encoding: str,
    *,
    short: bool,
) -> CompletionContext:
    """The window at a position as a request would get it now, without making it the
    document's. ``short``: cut to ``SHORT_PREFIX_CHARS``, no cross-file blocks. A full
    window after a short one starts afresh at the cursor (with its blocks)."""
    line, column = to_code_points(view, line, character, encoding)
    opts = svc.settings.completion
    kept = svc._repo.get(view.uri)
    fresh = short or (kept is not None and kept.short)
    previous = None if fresh else svc._previous_anchor(view.uri)
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
    return dataclasses.replace(ctx, repo=svc._choose_blocks(view))


def warm(
    svc: ServiceCore,
    view: DocumentView,
    line: int,
    character: int,
    encoding: str = "utf-16",
) -> None:
    """Evaluate the prompt window around a position in the background."""
    if not svc.settings.completion.warmup:
        return
    ctx = svc.context_for(view, line, character, encoding)

    def run(cancel: threading.Event) -> None:
        svc.engine.prefill(svc.engine.tokenize(svc._prompt(ctx, view.uri)), cancel)
        svc.stats.warmups += 1

    svc.scheduler.submit(Job(run=run, key=view.uri, priority=Priority.BACKGROUND))


def rest(
    svc: ServiceCore,
    view: DocumentView,
    line: int,
    character: int,
    encoding: str = "utf-16",
) -> None:
    """The cursor rests here (the client said so): evaluate the window at low priority,
    any request first. A cold window is evaluated short first (``SHORT_PREFIX_CHARS``,
    no cross-file blocks) and made the document's window at once, so a key typed soon
    is answered from it; then the full window, which becomes the document's when done.
    Only the newest rest is worked on: it cancels the background work before it, but for
    the carry-on of a suggestion cut at this very place (the editor waits for its rest)."""
    t0 = time.perf_counter()
    short = window_at(svc, view, line, character, encoding, short=True)  # may raise
    full = window_at(svc, view, line, character, encoding, short=False)
    svc.stats.rests += 1
    record: dict[str, Any] = {
        "uri": view.uri,
        "line": line,
        "character": character,
        "short_ms": None,
        "full_ms": None,
    }
    svc.stats.last_rest = record
    if not svc.settings.completion.warmup:
        return
    here = (view.uri, (full.line, full.character))
    svc.scheduler.cancel_background(keep=lambda job: (job.key, job.place) == here)

    def ms() -> float:
        return round((time.perf_counter() - t0) * 1000, 1)

    def run(cancel: threading.Event) -> None:
        tokens = svc.engine.tokenize(svc._prompt(full, view.uri))
        cold = len(tokens) - cached_tokens(svc, tokens) > COLD_TOKENS
        if cold and short.anchor > full.anchor:
            use_window(svc, view.uri, short, short=True)
            svc.engine.prefill(svc.engine.tokenize(svc._prompt(short, view.uri)), cancel)
            if cancel.is_set():
                return
            record["short_ms"] = ms()
        svc.engine.prefill(tokens, cancel)
        if cancel.is_set():
            return
        use_window(svc, view.uri, full, short=False)
        record["full_ms"] = ms()
        if record["short_ms"] is None:
            record["short_ms"] = record["full_ms"]
        svc.stats.warmups += 1

    svc.scheduler.submit(Job(run=run, key=view.uri, priority=Priority.BACKGROUND))


def cached_tokens(svc: ServiceCore, tokens: Sequence[int]) -> int:
    """Leading tokens the engine has evaluated already (its cache, or a kept state)."""
    cached = getattr(svc.engine, "cached", None)
    return int(cached(tokens)) if cached is not None else 0
