"""initialize, initialized, shutdown, the editor's settings and the config files' watch."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import threading
from collections.abc import Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import Any, NoReturn

from lsprotocol import types
from pygls import uris

from nearline.completion import CompletionService
from nearline.completion.context import CompletionContext
from nearline.documents import to_client_units
from nearline.errors import LedgerError
from nearline.lsp.connection import Connection
from nearline.lsp.protocol import COMPLETION_READY, Status

log = logging.getLogger(__name__)

CONFIG_POLL_S = 2.0
"""How often the config files are checked for changes."""
EXIT_DEADLINE_S = 1.2
"""On exit, what the server holds is let go for at most this long; then the process ends."""


def root_of(params: types.InitializeParams) -> Path | None:
    uri = params.root_uri
    if params.workspace_folders:
        uri = params.workspace_folders[0].uri
    if uri:
        return Path(uris.to_fs_path(uri) or ".")
    return Path(params.root_path) if params.root_path else None


def initialize(conn: Connection, params: types.InitializeParams) -> None:
    state = conn.state
    state.stack.root = root_of(params)
    set_editor_options(conn, params.initialization_options, "initializationOptions")
    reload(conn)
    # For messages from other threads (the ledger's) that come before `initialized`.
    with contextlib.suppress(RuntimeError):
        conn.notifier.loop = asyncio.get_running_loop()
    state.on_new_service = lambda service: wire_service(conn, service)
    state.on_budget_error = lambda exc: budget_unchecked(conn, exc)
    state.start_ledger(
        on_error=lambda text: ledger_error(conn, text),
        on_team=lambda text: conn.notifier.from_thread(
            lambda: conn.notifier.show(text, types.MessageType.Warning)
        ),
    )


def initialized(conn: Connection) -> None:
    """Start loading the model now, so the first keystroke does not pay for it."""
    loop = asyncio.get_running_loop()
    conn.notifier.loop = loop
    service = conn.state.completions.service  # built: the model starts loading
    status(conn, state="loading", message="loading the model")
    conn.state.start_index()
    conn.state.importer.start(conn.state.settings, conn.state.stack.root)
    hold_index(conn, service.scheduler.busy)  # the build waits for the model's load
    conn.watcher = loop.call_later(CONFIG_POLL_S, watch, conn)


def shutdown(conn: Connection) -> None:
    conn.shut_down = True
    if conn.watcher is not None:
        conn.watcher.cancel()
    for handle in (*conn.idle.values(), *conn.reindex.values()):
        handle.cancel()
    conn.state.close()
    loop = conn.notifier.loop
    if loop is not None and loop.is_running():
        conn.closing = loop.create_task(conn.state.escalations.escalator.aclose())


def leave(conn: Connection, code: int) -> NoReturn:
    """End the process now, whatever is running: the index's build process is stopped first
    (a build stopped midway resumes next time), then the state is closed (the ledger's rows,
    the kept windows) for at most ``EXIT_DEADLINE_S``; threads still busy are not waited for."""
    closer = threading.Thread(target=_close, args=(conn,), name="nearline-exit", daemon=True)
    closer.start()
    closer.join(EXIT_DEADLINE_S)
    if closer.is_alive():
        log.warning("exit: closing took over %.1f s; leaving anyway", EXIT_DEADLINE_S)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def _close(conn: Connection) -> None:
    try:
        conn.state.close()
    except Exception:  # leaving anyway
        log.exception("exit: closing failed")


def did_change_configuration(conn: Connection, params: types.DidChangeConfigurationParams) -> None:
    set_editor_options(conn, params.settings, "workspace/didChangeConfiguration")
    if reload(conn):
        log.info("settings changed")


def set_editor_options(conn: Connection, options: Any, source: str) -> None:
    if options is None:
        return
    if not isinstance(options, Mapping):
        conn.notifier.once(
            f"nearline: {source} must be an object; keeping the current settings",
            types.MessageType.Warning,
            key=f"config:{source}",
        )
        return
    conn.state.set_editor_options(options)


def reload(conn: Connection) -> bool:
    """Read the settings again (a broken layer is reported once); whether they changed."""
    changed, error = conn.state.reload()
    if error is not None:
        conn.notifier.once(
            f"nearline: {error}; keeping the last good settings",
            types.MessageType.Error,
            key=f"config:{error}",
        )
    return changed


def watch(conn: Connection) -> None:
    """Reload when a config file appears, changes or goes away."""
    try:
        if conn.state.stack.changed() and reload(conn):
            log.info("settings changed")
    finally:
        loop = conn.notifier.loop
        if loop is not None and not loop.is_closed():
            conn.watcher = loop.call_later(CONFIG_POLL_S, watch, conn)


def status(conn: Connection, *, state: str = "ready", message: str = "") -> None:
    service = conn.state.service
    conn.notifier.status(
        Status(
            state=state,
            model=service.engine.model_id if service else None,
            message=message,
            spend_today_usd=conn.state.spend_today(),
        )
    )


def wire_service(conn: Connection, service: CompletionService) -> None:
    """A new completion service: its problems and its progress reach the editor."""
    if service.cache.disk_error:
        conn.notifier.once(
            f"nearline: {service.cache.disk_error}", types.MessageType.Warning, key="cache"
        )
    service.load_future.add_done_callback(lambda fut: model_loaded(conn, fut))
    service.scheduler.on_busy = lambda busy: hold_index(conn, busy)
    service.on_extended = lambda uri, ctx: completion_ready(conn, uri, ctx)


def hold_index(conn: Connection, busy: bool) -> None:
    """On the engine thread: the index's build and the usage import pause while the engine
    works."""
    for child in (conn.state.index_builder, conn.state.importer):
        if child is not None:
            child.hold(busy)


def model_loaded(conn: Connection, fut: Future[Any]) -> None:
    """On the engine thread, when loading ends."""
    exc = None if fut.cancelled() else fut.exception()
    notifier = conn.notifier
    if exc is not None:
        log.error("model load failed: %s", exc)
        notifier.from_thread(
            lambda: notifier.once(f"nearline: {exc}", types.MessageType.Error, key="model")
        )
        notifier.from_thread(lambda: status(conn, state="error", message=str(exc)))
    else:
        notifier.from_thread(lambda: status(conn, state="ready"))


def completion_ready(conn: Connection, uri: str, ctx: CompletionContext) -> None:
    """On the engine thread: a budget-cut suggestion is whole now."""
    character = to_client_units(ctx.line_prefix, len(ctx.line_prefix), conn.encoding)
    params = {"textDocument": {"uri": uri}, "position": {"line": ctx.line, "character": character}}
    conn.notifier.from_thread(lambda: conn.notifier.notify(COMPLETION_READY, params))


def ledger_error(conn: Connection, text: str) -> None:
    """On the ledger's thread."""
    notifier = conn.notifier
    notifier.from_thread(
        lambda: notifier.once(
            f"nearline: {text}; usage is not being recorded",
            types.MessageType.Warning,
            key=f"ledger:{text}",
        )
    )


def budget_unchecked(conn: Connection, exc: LedgerError) -> None:
    conn.notifier.once(
        f"nearline: {exc}; budgets cannot be checked", types.MessageType.Warning, key="budget"
    )
