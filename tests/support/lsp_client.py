"""A pygls client that drives the real ``nearline serve`` over stdio and records what the server
shows, and the demo document most end-to-end tests type into."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Union

from lsprotocol import types
from pygls.lsp.client import LanguageClient

from support import TEST_DATA

# The sample most end-to-end tests type into: its last line, "    return fibonacci(n - 1) + ",
# reliably gets a suggestion from the default model.
DEMO = (TEST_DATA / "demo.py").read_text()
URI = "file:///work/demo.py"
LAST = DEMO.count("\n") - 1
END = len(DEMO.splitlines()[LAST])


class Client(LanguageClient):
    """A pygls client that records what the server shows the user."""

    def __init__(self) -> None:
        super().__init__("nearline-tests", "0")
        self.messages: list[types.ShowMessageParams] = []
        self.statuses: list[dict[str, Any]] = []
        self.ready: list[dict[str, Any]] = []
        self.versions: dict[str, int] = {}

        # lsprotocol reads any object with a "command" key as a Command, though a CodeAction
        # may carry one too; tell them apart by the key's type, as the LSP spec does.
        converter = self.protocol._converter

        def command_or_action(obj: Any, _: type) -> Any:
            kind = types.Command if isinstance(obj.get("command"), str) else types.CodeAction
            return converter.structure(obj, kind)

        union = Union[types.Command, types.CodeAction]  # noqa: UP007 (lsprotocol's key)
        converter.register_structure_hook(union, command_or_action)

        @self.feature("nearline/status")
        def status(ls: Client, params: Any) -> None:
            ls.statuses.append(plain(params))

        @self.feature("nearline/completionReady")
        def completion_ready(ls: Client, params: Any) -> None:
            ls.ready.append(plain(params))

        @self.feature(types.WINDOW_SHOW_MESSAGE)
        def show_message(ls: Client, params: types.ShowMessageParams) -> None:
            ls.messages.append(params)

        @self.feature(types.WINDOW_LOG_MESSAGE)
        def log_message(ls: Client, params: types.LogMessageParams) -> None:
            pass

    async def start(
        self,
        env: dict[str, str],
        options: dict[str, Any] | None = None,
        root: Path | None = None,
    ) -> types.InitializeResult:
        await self.start_io(sys.executable, "-m", "nearline", "serve", env=env)
        result = await self.initialize_async(
            types.InitializeParams(
                capabilities=types.ClientCapabilities(),
                process_id=os.getpid(),
                initialization_options=options,
                root_uri=root.as_uri() if root else None,
            )
        )
        self.initialized(types.InitializedParams())
        return result

    async def finish(self) -> None:
        try:
            await self.shutdown_async(None)
            self.exit(None)
        finally:
            await self.stop()

    def open(self, uri: str, text: str, language: str = "python") -> None:
        self.versions[uri] = 1
        self.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(
                    uri=uri, language_id=language, version=1, text=text
                )
            )
        )

    def insert(self, uri: str, line: int, character: int, text: str) -> None:
        """Incremental change: insert ``text`` at a position."""
        self.versions[uri] += 1
        pos = types.Position(line=line, character=character)
        self.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(
                    uri=uri, version=self.versions[uri]
                ),
                content_changes=[
                    types.TextDocumentContentChangePartial(
                        range=types.Range(start=pos, end=pos), text=text
                    )
                ],
            )
        )

    def inline_params(self, uri: str, line: int, character: int) -> types.InlineCompletionParams:
        return inline_params(uri, line, character)

    async def inline(self, uri: str, line: int, character: int) -> list[str]:
        result = await self.text_document_inline_completion_async(
            self.inline_params(uri, line, character)
        )
        items = result.items if isinstance(result, types.InlineCompletionList) else result or []
        return [
            item.insert_text if isinstance(item.insert_text, str) else item.insert_text.value
            for item in items
        ]

    async def stats(self) -> dict[str, Any]:
        result = await self.protocol.send_request_async("nearline/stats", None)
        return plain(result)


def inline_params(uri: str, line: int, character: int) -> types.InlineCompletionParams:
    """An automatic (as-you-type) inline completion request's params."""
    return types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=types.Position(line=line, character=character),
        context=types.InlineCompletionContext(
            trigger_kind=types.InlineCompletionTriggerKind.Automatic
        ),
    )


def plain(value: Any) -> Any:
    """pygls hands untyped results back as namedtuple-like objects; make them dicts."""
    if hasattr(value, "_asdict"):
        return {k: plain(v) for k, v in value._asdict().items()}
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value
