"""Escalation through the real server: a project config written as TOML, a client that applies
``workspace/applyEdit`` like an editor, and code actions run as the editor runs them."""

from __future__ import annotations

import json
from typing import Any

from lsprotocol import types

from support.lsp_client import Client, plain

CALC = "def f(a, b):\n    return a+b\n\n\nprint(f(1, 2))\n"


def to_toml(data: dict[str, Any], prefix: str = "") -> str:
    """Enough TOML for these configs (tables, strings, numbers, lists of strings)."""
    plain, tables = [], []
    for key, value in data.items():
        if isinstance(value, dict):
            tables.append(to_toml(value, f"{prefix}{key}."))
        else:
            plain.append(f"{key} = {json.dumps(value)}")
    head = f"[{prefix.rstrip('.')}]\n" if prefix and plain else ""
    return head + "\n".join(plain) + "\n" + "".join(tables)


class EditingClient(Client):
    """Applies ``workspace/applyEdit`` to its own copy of the documents, like an editor."""

    def __init__(self) -> None:
        super().__init__()
        self.edits: list[types.WorkspaceEdit] = []
        self.texts: dict[str, str] = {}

        @self.feature(types.WORKSPACE_APPLY_EDIT)
        def apply_edit(ls: EditingClient, params: types.ApplyWorkspaceEditParams) -> Any:
            ls.edits.append(params.edit)
            for change in params.edit.document_changes or []:
                assert isinstance(change, types.TextDocumentEdit)
                uri = change.text_document.uri
                for edit in change.edits:
                    ls.texts[uri] = apply_text_edit(ls.texts[uri], edit)
            return types.ApplyWorkspaceEditResult(applied=True)

    def open(self, uri: str, text: str, language: str = "python") -> None:
        self.texts[uri] = text
        super().open(uri, text, language)


def apply_text_edit(text: str, edit: Any) -> str:
    lines = text.splitlines(keepends=True)

    def offset(pos: types.Position) -> int:
        return sum(len(line) for line in lines[: pos.line]) + pos.character

    return text[: offset(edit.range.start)] + edit.new_text + text[offset(edit.range.end) :]


def selection_params(uri: str) -> types.CodeActionParams:
    return types.CodeActionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        range=types.Range(
            start=types.Position(line=0, character=0), end=types.Position(line=2, character=0)
        ),
        context=types.CodeActionContext(diagnostics=[]),
    )


async def code_action(client: Client, uri: str, label: str) -> types.CodeAction:
    actions = await client.text_document_code_action_async(selection_params(uri))
    assert actions, client.messages
    found = [
        a
        for a in actions
        if isinstance(a, types.CodeAction) and a.title.startswith(f"nearline: {label}")
    ]
    assert len(found) == 1, [(type(a).__name__, a.title) for a in actions]
    action = found[0]
    return action


async def run(client: Client, action: types.CodeAction) -> dict[str, Any]:
    assert action.command is not None
    result = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(
            command=action.command.command, arguments=action.command.arguments
        )
    )
    return plain(result)
