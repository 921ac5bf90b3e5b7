"""textDocument/inlineCompletion and textDocument/completion (the same suggestion), and
``nearline.accepted``."""

from __future__ import annotations

import logging
import time
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams

from nearline.accounting.entries import Outcome
from nearline.completion import CompletionResult, Source
from nearline.errors import DocumentError, ModelError, UnsupportedDocumentError
from nearline.lsp.connection import Connection
from nearline.lsp.convert import completion_item
from nearline.lsp.handlers.documents import cancel_warmup, view_of
from nearline.lsp.protocol import ACCEPTED, AcceptedArgs, Status

log = logging.getLogger(__name__)


async def inline_completion(
    conn: Connection, params: types.InlineCompletionParams
) -> types.InlineCompletionList:
    uri = params.text_document.uri
    result = await _complete(conn, uri, params.position)
    if result is None or not result.text:
        return types.InlineCompletionList(items=[])
    accept = types.Command(
        title="nearline: suggestion accepted",
        command=ACCEPTED,
        arguments=[
            {
                "id": result.uid,
                "uri": uri,
                "source": result.source,
                "chars": len(result.text),
                "model": result.model_id,
                "engine": result.engine,
            }
        ],
    )
    item = types.InlineCompletionItem(
        insert_text=result.text,
        range=types.Range(start=params.position, end=params.position),
        command=accept,
    )
    return types.InlineCompletionList(items=[item])


async def completion(conn: Connection, params: types.CompletionParams) -> types.CompletionList:
    uri = params.text_document.uri
    result = await _complete(conn, uri, params.position)
    if result is None or not result.text:
        return types.CompletionList(is_incomplete=True, items=[])
    lines = view_of(conn, uri).lines
    line_text = lines[result.line].rstrip("\r\n") if result.line < len(lines) else ""
    item = completion_item(result, line_text, params.position, conn.encoding)
    return types.CompletionList(is_incomplete=True, items=[item])


def accepted(conn: Connection, arguments: Any) -> None:
    service = conn.state.service
    if service is not None:
        conn.state.completions.accepted(AcceptedArgs.parse(arguments).id)
    log.debug("accepted %s", arguments)


async def _complete(
    conn: Connection, uri: str, position: types.Position
) -> CompletionResult | None:
    """The suggestion at ``position``, recorded; None when there is none to give. A bad
    position is ``InvalidParams``; a model that cannot load, one message."""
    cancel_warmup(conn, uri)
    state = conn.state
    if not state.settings.completion.enable:
        return None
    completions = state.completions
    t0 = time.perf_counter()
    try:
        doc = state.document(uri)
        view = doc.view()
    except UnsupportedDocumentError as exc:
        conn.notifier.once(f"nearline: {exc}", types.MessageType.Info, key=f"doc:{exc}")
        return None
    except DocumentError as exc:
        completions.service.stats.errors += 1
        completions.record_unanswered(Outcome.ERROR, t0)
        raise JsonRpcInvalidParams(str(exc)) from None
    try:
        result = await completions.complete(
            view,
            position.line,
            position.character,
            conn.encoding,
            language=doc.language,
            request_id=conn.request_id(),
        )
    except DocumentError as exc:
        completions.service.stats.errors += 1
        raise JsonRpcInvalidParams(str(exc)) from None
    except ModelError as exc:
        conn.notifier.once(f"nearline: {exc}", types.MessageType.Error, key="model")
        return None
    if result.source is not Source.SUPERSEDED:
        conn.notifier.status(
            Status(
                model=result.model_id,
                spend_today_usd=state.spend_today(),
                source=result.source,
                latency_ms=round(result.latency_ms, 1),
                engine=result.engine,
            )
        )
    return result
