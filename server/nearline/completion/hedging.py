"""One keystroke hedged between the local model and the team's completion server: both are
asked at once; the keystroke is answered with the server's answer when it is in first (the
local job runs on, keeping its model up with the person), else with the better of the two
within ``completion.time_budget_ms`` (``choose``); a server answer in after that replaces the
local one through ``completionReady`` while the person has not moved. Functions of
``CompletionService``'s state."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from nearline.completion.context import CompletionContext, Mode, build_context, prompt_prefix
from nearline.completion.hedge import Engine, LiveRemote, choose
from nearline.completion.postprocess import postprocess
from nearline.completion.remote import RemotePrompt
from nearline.completion.result import CompletionResult, Source
from nearline.documents import DocumentView
from nearline.errors import ModelError

MARGIN_S = 0.002
"""Answered this much before the budget ends (the reply still has to be written)."""

if TYPE_CHECKING:
    from nearline.completion.core import ServiceCore

Window = Callable[[], tuple[CompletionContext, RemotePrompt]]
"""Makes the server's window and prompt for the keystroke (only when it is asked)."""


def remote_window(
    svc: ServiceCore, view: DocumentView, ctx: CompletionContext
) -> tuple[CompletionContext, RemotePrompt]:
    """The server's window: wider than the local one, its start kept while typing (the
    server's prompt cache keeps all but the end), the cross-file blocks first."""
    assert svc.hedge is not None
    opts = svc.hedge.settings
    rctx = build_context(
        view.lines,
        ctx.line,
        ctx.character,
        previous_anchor=svc._remote_anchors.get(view.uri),
        max_prefix_chars=opts.max_prefix_chars,
        max_suffix_chars=opts.max_suffix_chars,
    )
    svc._remote_anchors[view.uri] = rctx.anchor
    block = ctx.mode is Mode.BLOCK
    prompt = RemotePrompt(
        prefix=prompt_prefix(rctx),
        suffix=rctx.suffix,
        blocks=tuple((b.path, b.text) for b in ctx.repo),
        path=svc._rel(view.uri) or PurePosixPath(view.uri).name,
        max_tokens=svc._max_tokens(ctx),
        stop=() if block else ("\n",),
        indent=len(ctx.indent) if block else 0,
        time_limit_ms=opts.max_predict_ms,
    )
    return dataclasses.replace(rctx, repo=ctx.repo), prompt


def remote_text(svc: ServiceCore, live: LiveRemote, typed: str) -> str | None:
    """The server's suggestion at the keystroke ``typed`` characters after the one it
    was asked for: None when it failed or is not in, "" when it has nothing (or the
    person typed something else)."""
    answer = live.answer()
    if answer is None:
        return None
    text = postprocess(answer.text, live.rctx, svc._pipeline)
    if not typed:
        return text
    return text[len(typed) :] if text.startswith(typed) and len(text) > len(typed) else ""


async def remote_only(
    svc: ServiceCore,
    uri: str,
    ctx: CompletionContext,
    asked: tuple[LiveRemote, str] | None,
) -> CompletionResult:
    """``mode = "only"``: the server's answer, whenever it comes; nothing without it."""
    if asked is None:
        return svc._result("", Source.NONE, ctx, engine=Engine.REMOTE)
    live, typed = asked
    await asyncio.wait((live.future,))
    text = remote_text(svc, live, typed)
    if text is None and live.future.cancelled():
        return svc._result("", Source.SUPERSEDED, ctx, engine=Engine.REMOTE)
    return served(svc, uri, ctx, live, text or "")


async def hedged(
    svc: ServiceCore,
    uri: str,
    ctx: CompletionContext,
    seq: int,
    t0: float,
    local: asyncio.Task[CompletionResult],
    asked: tuple[LiveRemote, str],
    window: Window,
) -> CompletionResult:
    assert svc.hedge is not None
    live, typed = asked
    end = t0 + svc.settings.completion.time_budget_ms / 1000
    await asyncio.wait((local, live.future), return_when=asyncio.FIRST_COMPLETED)
    if typed and not local.done() and remote_text(svc, live, typed) == "":
        # the answer on its way was for a shorter line the person did not continue
        again = svc.hedge.ask(uri, ctx, window)
        if again is not None:
            (live, typed) = again
            await asyncio.wait((local, live.future), return_when=asyncio.FIRST_COMPLETED)
    if not local.done():
        text = remote_text(svc, live, typed)
        if text:
            # The local job runs on to its budget (and carries on): its model stays as far
            # along as the person, for the keystroke the server has nothing for.
            local.add_done_callback(_retrieved)
            return served(svc, uri, ctx, live, text)
        await asyncio.wait((local,))
    if (exc := local.exception()) is not None:
        if isinstance(exc, ModelError) and not live.future.done():
            slow = svc.hedge.settings.slow_ms / 1000
            await asyncio.wait((live.future,), timeout=slow)
        text = remote_text(svc, live, typed)
        if text:
            return served(svc, uri, ctx, live, text)
        raise exc
    result = local.result()
    left = end - MARGIN_S - time.perf_counter()
    if not live.future.done() and left > 0 and svc.hedge.may_arrive(live, end):
        await asyncio.wait((live.future,), timeout=left)
    if live.future.done():
        text = remote_text(svc, live, typed)
        if text and choose(result.text, text) is Engine.REMOTE:
            return served(svc, uri, ctx, live, text)
    elif result.source is not Source.SUPERSEDED:
        live.future.add_done_callback(lambda _f: late(svc, uri, ctx, seq, live, typed, result.text))
    if result.source is not Source.SUPERSEDED:
        svc.shown.remember(uri, ctx, result.text, model=result.model_id)
    return result


def _retrieved(task: asyncio.Future[CompletionResult]) -> None:
    """A local answer nobody reads: its error (the load's, say) is told elsewhere."""
    if not task.cancelled():
        task.exception()


def served(
    svc: ServiceCore, uri: str, ctx: CompletionContext, live: LiveRemote, text: str
) -> CompletionResult:
    """The keystroke's answer is the server's."""
    assert svc.hedge is not None
    model = svc.hedge.model_id
    answer = None if live.counted else live.answer()
    live.counted = True
    if text:
        svc.hedge.stats.won += 1
        svc.shown.remember(uri, ctx, text, model=model, engine=Engine.REMOTE)
    return svc._result(text, Source.MODEL, ctx, engine=Engine.REMOTE, model=model, remote=answer)


def late(
    svc: ServiceCore,
    uri: str,
    ctx: CompletionContext,
    seq: int,
    live: LiveRemote,
    typed: str,
    shown: str,
) -> None:
    """The server answered after the keystroke was: show its answer instead, while the
    person is still where they were."""
    if svc.hedge is None or svc._seq.get(uri) != seq:
        return
    text = remote_text(svc, live, typed)
    if not text or text == shown or choose(shown, text) is Engine.LOCAL:
        return
    answer = None if live.counted else live.answer()
    live.counted = True
    svc.hedge.stats.late += 1
    model = svc.hedge.model_id
    svc.shown.remember(uri, ctx, text, model=model, engine=Engine.REMOTE, late=True, answer=answer)
    if svc.on_extended is not None:
        svc.on_extended(uri, ctx)
