"""The language server: registers every LSP feature and nearline's extensions, each a one-line
delegation to a handler module (``handlers/``) with the connection."""

from __future__ import annotations

import logging
import signal
from collections.abc import Mapping
from typing import Any, BinaryIO, NoReturn

from lsprotocol import types
from pygls.lsp.server import LanguageServer

from nearline import __version__
from nearline.lsp.connection import Connection
from nearline.lsp.handlers import actions, completion, documents, lifecycle, usage
from nearline.lsp.notifier import Notifier
from nearline.lsp.protocol import (
    ACCEPTED,
    CURSOR_REST,
    STATS,
    TASK_COMMANDS,
    USAGE,
    NearlineProtocol,
)
from nearline.lsp.state import ServerState

CODE_ACTION_KINDS = [
    types.CodeActionKind.RefactorRewrite,
    types.CodeActionKind.QuickFix,
    types.CodeActionKind.Source,
]


class NearlineServer(LanguageServer):
    conn: Connection
    """What this editor connection holds."""


def create_server(flags: Mapping[str, Any] | None = None) -> NearlineServer:
    """The server; ``flags`` are command-line settings, layered over the config files."""
    logging.getLogger("pygls").setLevel(logging.WARNING)
    server = NearlineServer("nearline", __version__, protocol_cls=NearlineProtocol)
    conn = server.conn = Connection(server, ServerState(flags), Notifier(server))

    @server.feature(types.INITIALIZE)
    def initialize(ls: LanguageServer, params: types.InitializeParams) -> None:
        lifecycle.initialize(conn, params)

    @server.feature(types.INITIALIZED)
    def initialized(ls: LanguageServer, params: types.InitializedParams) -> None:
        lifecycle.initialized(conn)

    @server.feature(types.SHUTDOWN)
    def shutdown(ls: LanguageServer, params: None) -> None:
        lifecycle.shutdown(conn)

    @server.feature(types.EXIT)
    def exit_(ls: LanguageServer, params: None) -> None:
        lifecycle.leave(conn, 0 if conn.shut_down else 1)  # LSP: 1 without a shutdown first

    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    def did_change_configuration(
        ls: LanguageServer, params: types.DidChangeConfigurationParams
    ) -> None:
        lifecycle.did_change_configuration(conn, params)

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: LanguageServer, params: types.DidOpenTextDocumentParams) -> None:
        documents.did_open(conn, params)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: LanguageServer, params: types.DidChangeTextDocumentParams) -> None:
        documents.did_change(conn, params)

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE)
    def did_save(ls: LanguageServer, params: types.DidSaveTextDocumentParams) -> None:
        documents.did_save(conn, params)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: LanguageServer, params: types.DidCloseTextDocumentParams) -> None:
        documents.did_close(conn, params)

    @server.feature(CURSOR_REST)
    def cursor_rest(ls: LanguageServer, params: Any) -> None:
        documents.cursor_rest(conn, params)

    @server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
    async def inline_completion(
        ls: LanguageServer, params: types.InlineCompletionParams
    ) -> types.InlineCompletionList:
        return await completion.inline_completion(conn, params)

    @server.feature(types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions())
    async def complete(ls: LanguageServer, params: types.CompletionParams) -> types.CompletionList:
        return await completion.completion(conn, params)

    @server.feature(
        types.TEXT_DOCUMENT_CODE_ACTION,
        types.CodeActionOptions(code_action_kinds=CODE_ACTION_KINDS),
    )
    def code_action(ls: LanguageServer, params: types.CodeActionParams) -> list[types.CodeAction]:
        return actions.code_actions(conn, params)

    for name in TASK_COMMANDS:
        _register_task(server, conn, name)

    @server.command(ACCEPTED)
    def accepted(ls: LanguageServer, *arguments: Any) -> None:
        completion.accepted(conn, list(arguments))

    @server.command(USAGE)
    async def usage_report(ls: LanguageServer, *arguments: Any) -> str:
        return await usage.usage(conn, list(arguments))

    @server.feature(STATS)
    def stats(ls: LanguageServer, params: Any) -> dict[str, Any]:
        return usage.stats(conn)

    return server


def serve_stdio(server: NearlineServer, stdin: BinaryIO, stdout: BinaryIO) -> NoReturn:
    """Speak LSP over these pipes until ``exit``, the end of input, SIGTERM or SIGINT; then
    leave at once, taking every process the server started with it."""
    conn = server.conn
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda _sig, _frame: lifecycle.leave(conn, 0))
    server.start_io(stdin, stdout)
    lifecycle.leave(conn, 0)


def _register_task(server: LanguageServer, conn: Connection, name: str) -> None:
    @server.command(name)
    async def run(ls: LanguageServer, arguments: Any) -> dict[str, Any]:
        return await actions.execute(conn, name, arguments)
