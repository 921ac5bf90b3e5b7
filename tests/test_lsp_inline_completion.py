"""End to end: the real server over stdio, the real model, ghost text while typing."""

from __future__ import annotations

import asyncio

from lsprotocol import types

from support.lsp_client import DEMO, END, LAST, URI, Client

FULL = {"completion": {"time_budget_ms": 10_000}}
"""The longest budget: a suggestion cut on a loaded machine is carried on in the background,
and the next request would not find it in the cache."""


async def test_capabilities_advertise_inline_completion_and_incremental_sync(
    nearline_env: dict[str, str],
) -> None:
    client = Client()
    result = await client.start(nearline_env)
    try:
        caps = result.capabilities
        assert caps.inline_completion_provider is not None
        assert caps.completion_provider is not None
        sync = caps.text_document_sync
        assert isinstance(sync, types.TextDocumentSyncOptions)
        assert sync.change == types.TextDocumentSyncKind.Incremental
        assert result.server_info is not None and result.server_info.name == "nearline"
    finally:
        await client.finish()


async def test_typing_then_ghost_text(nearline_env: dict[str, str]) -> None:
    client = Client()
    await client.start(nearline_env, FULL)
    try:
        text = DEMO.rsplit("fibonacci(n - 1) + ", 1)[0]  # "...    return "
        client.open(URI, text)
        line, col = LAST, len(text.splitlines()[LAST]) if not text.endswith("\n") else 0
        for ch in "fibonacci(n - 1) + ":
            client.insert(URI, line, col, ch)
            col += 1
        suggestions = await client.inline(URI, line, col)
        assert suggestions and suggestions[0].strip()
        assert "\n" not in suggestions[0]  # mid-line: one line only
        stats = await client.stats()
        assert stats["loaded"] and stats["model_calls"] >= 1
        assert stats["template"] == "prefix-only"
    finally:
        await client.finish()


async def test_completion_item_for_clients_without_inline_completion(
    nearline_env: dict[str, str],
) -> None:
    client = Client()
    await client.start(nearline_env, FULL)
    try:
        client.open(URI, DEMO)
        inline = await client.inline(URI, LAST, END)
        result = await client.text_document_completion_async(
            types.CompletionParams(
                text_document=types.TextDocumentIdentifier(uri=URI),
                position=types.Position(line=LAST, character=END),
            )
        )
        assert isinstance(result, types.CompletionList) and result.is_incomplete
        assert len(result.items) == 1
        item = result.items[0]
        assert isinstance(item.text_edit, types.TextEdit)
        assert item.text_edit.range.end == types.Position(line=LAST, character=END)
        assert item.text_edit.new_text.endswith(inline[0])  # the same suggestion, from the cache
        stats = await client.stats()
        assert stats["cache_hits"] >= 1
    finally:
        await client.finish()


async def test_block_suggestion_after_a_block_opener(nearline_env: dict[str, str]) -> None:
    client = Client()
    await client.start(nearline_env, FULL)
    try:
        text = 'def is_even(n):\n    """Return True if n is even."""\n    '
        client.open(URI, text)
        suggestions = await client.inline(URI, 2, 4)
        assert suggestions and suggestions[0].strip()
        assert not suggestions[0].startswith(" ")  # the indentation is already typed
    finally:
        await client.finish()


async def test_status_notifications_and_accept_command(nearline_env: dict[str, str]) -> None:
    client = Client()
    await client.start(nearline_env, FULL)
    try:
        client.open(URI, DEMO)
        result = await client.text_document_inline_completion_async(
            client.inline_params(URI, LAST, END)
        )
        assert isinstance(result, types.InlineCompletionList) and result.items
        item = result.items[0]
        assert item.command is not None and item.command.command == "nearline.accepted"
        await client.workspace_execute_command_async(
            types.ExecuteCommandParams(
                command=item.command.command, arguments=item.command.arguments
            )
        )
        stats = await client.stats()
        assert stats["accepted"] == 1
        states = [s["state"] for s in client.statuses]
        assert states[0] == "loading" and "ready" in states
        answer = [s for s in client.statuses if s.get("source") == "model"][-1]
        assert answer["tier"] == "local" and answer["model"] == "SmolLM2-135M-Instruct.Q4_1"
        assert answer["latency_ms"] > 0 and answer["spend_today_usd"] == 0.0
    finally:
        await client.finish()


async def test_budget_cut_suggestion_is_finished_and_announced(
    nearline_env: dict[str, str],
) -> None:
    client = Client()
    await client.start(nearline_env, {"completion": {"time_budget_ms": 10}})
    try:
        client.open(URI, DEMO)
        first = await client.inline(URI, LAST, END)
        for _ in range(100):
            if client.ready:
                break
            await asyncio.sleep(0.05)
        assert client.ready, "no nearline/completionReady after a budget cut"
        note = client.ready[-1]
        assert note["textDocument"]["uri"] == URI
        assert note["position"] == {"line": LAST, "character": END}
        again = await client.inline(URI, LAST, END)
        assert again and (not first or again[0].startswith(first[0]))
        stats = await client.stats()
        assert stats["budget_hits"] >= 1 and stats["cache_hits"] >= 1
    finally:
        await client.finish()
