"""Escalation end to end: a code action goes through routing, a real OpenAI-compatible server
(llama-cpp-python's, serving the default model on 127.0.0.1), diff checking and
``workspace/applyEdit`` through the real LSP client."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types

from cloud_fakes import RecordingProvider
from conftest import Client, free_port, plain

CALC = "def f(a, b):\n    return a+b\n\n\nprint(f(1, 2))\n"
DIFF = (
    "```diff\n--- a/calc.py\n+++ b/calc.py\n@@ -1,2 +1,2 @@\n-def f(a, b):\n-    return a+b\n"
    "+def add(a, b):\n+    return a + b\n```"
)
STALE_DIFF = DIFF.replace("-    return a+b", "-    return a - b")


def gbnf_exactly(text: str) -> str:
    """A llama.cpp grammar that lets the model write exactly ``text``."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'root ::= "{escaped}"'


def project(tmp_path: Path, base_url: str, answer: str | None = None, **extra: Any) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "calc.py").write_text(CALC)
    body = {"grammar": gbnf_exactly(answer)} if answer else {}
    provider = {
        "kind": "openai",
        "base_url": base_url,
        "model": "smollm2",
        "max_retries": 1,
        "read_timeout_s": 120,
        "extra_body": body,
    }
    config = {
        "providers": {"server": provider},
        "routing": {"tiers": {"flagship": ["server"], "value": ["server"]}},
    }
    config.update(extra)
    (root / ".nearline.toml").write_text(to_toml(config))
    return root


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


async def start(env: dict[str, str], root: Path) -> EditingClient:
    client = EditingClient()
    await client.start(env, root=root)
    uri = (root / "calc.py").as_uri()
    client.open(uri, CALC)
    return client


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


async def test_refactor_code_action_applies_the_diff_from_a_real_server(
    llama_server: str, nearline_env: dict[str, str], tmp_path: Path
) -> None:
    root = project(tmp_path, llama_server, DIFF)
    client = await start(nearline_env, root)
    uri = (root / "calc.py").as_uri()
    try:
        action = await code_action(client, uri, "refactor")
        assert "→ value (smollm2" in action.title  # who answers, visible before asking
        result = await run(client, action)
        assert result["ok"] is True, result
        assert len(client.edits) == 1
        assert client.texts[uri] == CALC.replace(
            "def f(a, b):\n    return a+b", "def add(a, b):\n    return a + b"
        )
        assert (root / "calc.py").read_text() == CALC  # the editor owns the buffer
        status = [s for s in client.statuses if s.get("tier") == "value"]
        assert (
            status and status[-1]["model"] == "smollm2" and "output_tokens" in status[-1]["usage"]
        )
        [record] = (await client.stats())["escalations"]
        assert record["task"] == "refactor" and record["provider"] == "server"
        assert {"input_tokens", "cache_read_tokens", "cache_write_tokens"} <= set(record)
    finally:
        await client.finish()


async def test_a_diff_that_does_not_apply_changes_nothing(
    llama_server: str, nearline_env: dict[str, str], tmp_path: Path
) -> None:
    root = project(tmp_path, llama_server, STALE_DIFF)
    client = await start(nearline_env, root)
    uri = (root / "calc.py").as_uri()
    try:
        result = await run(client, await code_action(client, uri, "refactor"))
        assert result["ok"] is False and "does not apply" in result["message"]
        assert client.edits == []
        assert any("does not apply" in m.message for m in client.messages)
    finally:
        await client.finish()


async def test_explain_shows_the_answer(
    llama_server: str, nearline_env: dict[str, str], tmp_path: Path
) -> None:
    root = project(tmp_path, llama_server, "It adds two numbers.")
    client = await start(nearline_env, root)
    uri = (root / "calc.py").as_uri()
    try:
        result = await run(client, await code_action(client, uri, "explain"))
        assert result["ok"] is True and result["text"] == "It adds two numbers."
        assert any("It adds two numbers." in m.message for m in client.messages)
        assert client.edits == []
    finally:
        await client.finish()


# -- privacy and offline, against a recording server ---------------------------------------


@pytest.fixture
def recorder() -> Iterator[RecordingProvider]:
    server = RecordingProvider().start()
    yield server
    server.stop()


async def test_a_file_with_a_secret_is_never_sent(
    recorder: RecordingProvider, nearline_env: dict[str, str], tmp_path: Path
) -> None:
    root = project(tmp_path, recorder.url)
    (root / "settings.py").write_text('AWS_ACCESS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"\n')
    client = await start(nearline_env, root)
    secret_uri = (root / "settings.py").as_uri()
    client.open(secret_uri, (root / "settings.py").read_text())
    try:
        action = await code_action(client, secret_uri, "explain")
        assert "unavailable" in action.title
        result = await run(client, action)
        assert result["ok"] is False and "AWS access key" in result["message"]
        assert "AKIAIOSFODNN7EXAMPLE" not in result["message"]
        # The same request for a clean file does reach the server: the refusal was the policy.
        clean = await run(client, await code_action(client, (root / "calc.py").as_uri(), "explain"))
        assert clean["ok"] is True
        sent = json.dumps(recorder.bodies)
        assert len(recorder.bodies) == 1 and "AKIAIOSFODNN7EXAMPLE" not in sent
    finally:
        await client.finish()


async def test_cloud_false_keeps_everything_local(
    recorder: RecordingProvider, nearline_env: dict[str, str], tmp_path: Path
) -> None:
    root = project(tmp_path, recorder.url, cloud=False)
    client = await start(nearline_env, root)
    try:
        action = await code_action(client, (root / "calc.py").as_uri(), "explain")
        assert "→ local (the local model, free)" in action.title
        result = await run(client, action)
        assert result["ok"] is True and result["provider"] == "local"
        assert recorder.bodies == []
    finally:
        await client.finish()


async def test_offline_escalation_says_so_and_autocomplete_keeps_working(
    nearline_env: dict[str, str], tmp_path: Path
) -> None:
    root = project(tmp_path, f"http://127.0.0.1:{free_port()}/v1")
    client = await start(nearline_env, root)
    uri = (root / "calc.py").as_uri()
    try:
        result = await run(client, await code_action(client, uri, "explain"))
        assert result["ok"] is False and "offline" in result["message"]
        assert isinstance(await client.inline(uri, 4, 14), list)
    finally:
        await client.finish()
