"""didOpen, didChange, didClose: the server's own copy of each open document, kept in step
line by line, and the warm-up that evaluates the prompt window before the next request."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from lsprotocol import types

from nearline.documents import DocumentView, to_client_units
from nearline.errors import NearlineError, UnsupportedDocumentError
from nearline.lsp.connection import Connection
from nearline.lsp.convert import change_end

log = logging.getLogger(__name__)

WARMUP_IDLE_S = 0.3
"""After an edit with no completion request for this long, warm the window at the edit."""
REINDEX_IDLE_S = 2.0
"""After the last edit of a document, this long until its symbols go into the project index."""


def did_open(conn: Connection, params: types.DidOpenTextDocumentParams) -> None:
    uri = params.text_document.uri
    conn.state.open(params.text_document)
    _guard(conn, lambda: _warm(conn, uri, 0, 0, end=True))


def did_change(conn: Connection, params: types.DidChangeTextDocumentParams) -> None:
    uri = params.text_document.uri
    changes = params.content_changes
    if conn.state.change(uri, params.text_document.version, changes, conn.encoding) is None:
        log.info("didChange for %s, which was never opened", uri)
        return
    _schedule_reindex(conn, uri)
    position = change_end(changes)
    if position is None or not conn.state.settings.completion.warmup:
        return
    if (old := conn.idle.pop(uri, None)) is not None:
        old.cancel()
    conn.idle[uri] = asyncio.get_running_loop().call_later(
        WARMUP_IDLE_S, lambda: _guard(conn, lambda: _warm(conn, uri, *position))
    )


def did_save(conn: Connection, params: types.DidSaveTextDocumentParams) -> None:
    uri = params.text_document.uri
    if (handle := conn.reindex.pop(uri, None)) is not None:
        handle.cancel()
    _reindex(conn, uri)


def _schedule_reindex(conn: Connection, uri: str) -> None:
    """The document's symbols into the project index once its edits settle."""
    if conn.state.index is None:
        return
    if (old := conn.reindex.pop(uri, None)) is not None:
        old.cancel()
    conn.reindex[uri] = asyncio.get_running_loop().call_later(
        REINDEX_IDLE_S, lambda: _reindex(conn, uri)
    )


def _reindex(conn: Connection, uri: str) -> None:
    conn.reindex.pop(uri, None)
    job = conn.state.index_job(uri)
    if job is not None:
        future = asyncio.get_running_loop().run_in_executor(None, job)
        future.add_done_callback(_log_failure)


def _log_failure(future: asyncio.Future[None]) -> None:
    if not future.cancelled() and (exc := future.exception()) is not None:
        log.warning("project index update failed: %s", exc)


def did_close(conn: Connection, params: types.DidCloseTextDocumentParams) -> None:
    uri = params.text_document.uri
    for handles in (conn.idle, conn.reindex):
        if (handle := handles.pop(uri, None)) is not None:
            handle.cancel()
    conn.state.close_document(uri)


def cursor_rest(conn: Connection, params: Any) -> None:
    """``nearline/cursorRest``: evaluate the window where the cursor rests (bad params are
    logged and dropped: a notification has no answer)."""
    where = rest_position(params)
    if where is None:
        log.info("nearline/cursorRest with unusable params: %r", params)
        return
    uri, line, character = where
    cancel_warmup(conn, uri)
    service = conn.state.completions.service
    if service.load_error() is None:
        _guard(conn, lambda: service.rest(view_of(conn, uri), line, character, conn.encoding))


def rest_position(params: Any) -> tuple[str, int, int] | None:
    """(uri, line, character) from ``{textDocument: {uri}, position: {line, character}}``
    (a mapping, or pygls' attribute object); None when any is missing or of a wrong type."""

    def field(obj: Any, name: str) -> Any:
        return obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)

    doc, position = field(params, "textDocument"), field(params, "position")
    uri = field(doc, "uri")
    line, character = field(position, "line"), field(position, "character")
    if not isinstance(uri, str) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (line, character)
    ):
        return None
    return uri, line, character


def view_of(conn: Connection, uri: str) -> DocumentView:
    """The document's lines now; ``UnknownDocumentError`` or ``UnsupportedDocumentError``."""
    return conn.state.document(uri).view()


def cancel_warmup(conn: Connection, uri: str) -> None:
    """A request came: the warm-up for it is not needed."""
    if (handle := conn.idle.pop(uri, None)) is not None:
        handle.cancel()


def _warm(conn: Connection, uri: str, line: int, character: int, *, end: bool = False) -> None:
    view = view_of(conn, uri)
    if end:  # on open: the end of the file, where people usually start typing
        line = max(0, len(view.lines) - 1)
        text = view.lines[line].rstrip("\r\n") if view.lines else ""
        character = to_client_units(text, len(text), conn.encoding)
    service = conn.state.completions.service
    if not service.load_future.done() or service.load_error() is None:
        service.warm(view, line, character, conn.encoding)


def _guard(conn: Connection, action: Callable[[], None]) -> None:
    try:
        action()
    except UnsupportedDocumentError as exc:
        conn.notifier.once(f"nearline: {exc}", types.MessageType.Info, key=f"doc:{exc}")
    except NearlineError as exc:
        log.info("warm-up skipped: %s", exc)
