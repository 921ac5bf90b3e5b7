"""The language server: registers LSP features and delegates each to the ``Session``."""

from __future__ import annotations

from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol

from nearline import __version__
from nearline.session import ACCEPTED, USAGE, Session
from nearline.tasks import BY_COMMAND

STATS = "nearline/stats"
"""Custom request: counters (model calls, typing-through, cache hits) and recent latencies."""


class NearlineProtocol(LanguageServerProtocol):
    """pygls drops a request whose params do not deserialize, leaving the client waiting;
    answer it with InvalidParams instead. A request may leave params out (JSON-RPC allows it;
    pygls' message class does not)."""

    def structure_message(self, data: dict[str, Any]) -> Any:
        if isinstance(data, dict) and "method" in data and "params" not in data:
            data = {**data, "params": None}
        try:
            return super().structure_message(data)
        except JsonRpcException:
            if not (isinstance(data, dict) and "id" in data and "method" in data):
                raise
            error = JsonRpcInvalidParams(
                f"invalid params for {data['method']}: expected the LSP "
                f"{data['method']} parameters, got {str(data.get('params'))[:200]}"
            )
            self._send_response(data["id"], error=error.to_response_error())
            return SimpleNamespace(jsonrpc="(answered: invalid params)")  # handle_message skips it


class NearlineServer(LanguageServer):
    session: Session


def create_server(flags: Mapping[str, Any] | None = None) -> NearlineServer:
    """The server; ``flags`` are command-line settings, layered over the config files."""
    server = NearlineServer("nearline", __version__, protocol_cls=NearlineProtocol)
    server.session = Session(server, flags)

    @server.feature(types.INITIALIZE)
    def initialize(ls: NearlineServer, params: types.InitializeParams) -> None:
        ls.session.initialize(params)

    @server.feature(types.INITIALIZED)
    def initialized(ls: NearlineServer, params: types.InitializedParams) -> None:
        ls.session.initialized()

    @server.feature(types.SHUTDOWN)
    def shutdown(ls: NearlineServer, params: None) -> None:
        ls.session.shutdown()

    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    def did_change_configuration(
        ls: NearlineServer, params: types.DidChangeConfigurationParams
    ) -> None:
        ls.session.did_change_configuration(params)

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: NearlineServer, params: types.DidOpenTextDocumentParams) -> None:
        ls.session.did_open(params)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: NearlineServer, params: types.DidChangeTextDocumentParams) -> None:
        ls.session.did_change(params)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: NearlineServer, params: types.DidCloseTextDocumentParams) -> None:
        ls.session.did_close(params)

    @server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
    async def inline_completion(
        ls: NearlineServer, params: types.InlineCompletionParams
    ) -> types.InlineCompletionList:
        return await ls.session.inline_completion(params)

    @server.feature(types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions())
    async def completion(
        ls: NearlineServer, params: types.CompletionParams
    ) -> types.CompletionList:
        return await ls.session.completion(params)

    @server.feature(
        types.TEXT_DOCUMENT_CODE_ACTION,
        types.CodeActionOptions(
            code_action_kinds=[
                types.CodeActionKind.RefactorRewrite,
                types.CodeActionKind.QuickFix,
                types.CodeActionKind.Source,
            ]
        ),
    )
    def code_action(ls: NearlineServer, params: types.CodeActionParams) -> list[types.CodeAction]:
        return ls.session.actions.code_actions(params)

    for name in BY_COMMAND:
        _register_command(server, name)

    @server.command(ACCEPTED)
    def accepted(ls: NearlineServer, *arguments: Any) -> None:
        ls.session.accepted(list(arguments))

    @server.command(USAGE)
    async def usage(ls: NearlineServer, *arguments: Any) -> str:
        return await ls.session.usage(list(arguments))

    @server.feature(STATS)
    def stats(ls: NearlineServer, params: Any) -> dict[str, Any]:
        return ls.session.stats()

    return server


def _register_command(server: NearlineServer, name: str) -> None:
    @server.command(name)
    async def run(ls: NearlineServer, arguments: Any) -> dict[str, Any]:
        return await ls.session.actions.execute(name, arguments)
