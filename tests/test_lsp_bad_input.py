"""Bad input gets a clear error or an empty result plus one message; never a crash or hang."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams

from support.lsp_client import DEMO, END, LAST, URI, Client
from support.rawlsp import RawLsp


async def still_serves(client: Client) -> None:
    client.open("file:///work/ok.py", DEMO)
    result = await asyncio.wait_for(client.inline("file:///work/ok.py", LAST, END), timeout=30)
    assert isinstance(result, list)


async def test_unknown_document_is_an_invalid_params_error(client: Client) -> None:
    with pytest.raises(JsonRpcInvalidParams, match="unknown document file:///nowhere.py"):
        await client.inline("file:///nowhere.py", 0, 0)
    await still_serves(client)


@pytest.mark.parametrize(
    ("line", "character", "message"),
    [
        (99, 0, "past the end of file:///work/demo.py"),
        (0, 500, "past the end of line 0"),
    ],
)
async def test_position_past_the_end_is_an_invalid_params_error(
    client: Client, line: int, character: int, message: str
) -> None:
    client.open(URI, DEMO)
    with pytest.raises(JsonRpcInvalidParams, match=message):
        await client.inline(URI, line, character)
    await still_serves(client)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("huge", "x = 1\n" * (5 * 1024 * 1024 // 6)),
        ("binary", "PK\x03\x04\x00\x00\x14\x00" * 200),
        ("invalid-utf8", "ok = 1\n" + "\ufffd\ufffd\x01\x02" * 500),
    ],
)
async def test_unsupported_content_gets_empty_result_and_one_message(
    client: Client, name: str, text: str
) -> None:
    uri = f"file:///work/{name}.py"
    client.open(uri, text)
    for _ in range(3):
        assert await asyncio.wait_for(client.inline(uri, 0, 0), timeout=30) == []
    about = [m for m in client.messages if uri in m.message]
    assert len(about) == 1, client.messages
    await still_serves(client)


async def test_malformed_params_get_an_error_response(nearline_env: dict[str, str]) -> None:
    raw = RawLsp(nearline_env)
    try:
        raw.initialize()
        raw.notify(
            "textDocument/didOpen",
            {"textDocument": {"uri": URI, "languageId": "python", "version": 1, "text": DEMO}},
        )
        for params in (
            {"textDocument": 5},
            None,
            [1, 2],
            {
                "textDocument": {"uri": URI},
                "position": {"line": "a", "character": 0},
                "context": {"triggerKind": 1},
            },
        ):
            reply = raw.request("textDocument/inlineCompletion", params)
            assert reply["error"]["code"] == -32602
            assert "invalid params" in reply["error"]["message"]
        raw.send_bytes(b"{this is not json")
        reply = raw.request(
            "textDocument/inlineCompletion",
            {
                "textDocument": {"uri": URI},
                "position": {"line": LAST, "character": END},
                "context": {"triggerKind": 2},
            },
        )
        assert "result" in reply
        assert raw.request("nearline/stats", None)["result"]["loaded"] in (True, False)
        # JSON-RPC lets a request leave params out.
        raw.send({"jsonrpc": "2.0", "id": 900, "method": "nearline/stats"})
        reply = raw.wait(lambda m: m.get("id") == 900, 30)
        assert reply["result"]["loaded"] in (True, False)
        raw.send({"jsonrpc": "2.0", "id": 901, "method": "textDocument/inlineCompletion"})
        assert raw.wait(lambda m: m.get("id") == 901, 30)["error"]["code"] == -32602
    finally:
        assert raw.close() == 0


async def test_missing_model_file_gets_empty_results_and_one_message(
    nearline_env: dict[str, str], tmp_path: Path
) -> None:
    client = Client()
    missing = tmp_path / "no-such-model.gguf"
    await client.start(nearline_env, {"model": {"path": str(missing)}})
    try:
        client.open(URI, DEMO)
        for _ in range(3):
            assert await asyncio.wait_for(client.inline(URI, LAST, END), timeout=30) == []
        about = [m for m in client.messages if str(missing) in m.message]
        assert len(about) == 1
        assert about[0].type == types.MessageType.Error
        assert "does not exist" in about[0].message
        stats = await client.stats()
        assert stats["loaded"] is False and "does not exist" in stats["load_error"]
    finally:
        await client.finish()


@pytest.mark.parametrize(
    "content", [b"GGUF" + b"\x03\x00\x00\x00" + b"\xff" * 4096, b"not a model at all" * 100]
)
async def test_corrupt_model_file_gets_empty_results_and_one_message(
    nearline_env: dict[str, str], tmp_path: Path, content: bytes
) -> None:
    corrupt = tmp_path / "corrupt.gguf"
    corrupt.write_bytes(content)
    client = Client()
    await client.start(nearline_env, {"model": {"path": str(corrupt)}})
    try:
        client.open(URI, DEMO)
        for _ in range(2):
            assert await asyncio.wait_for(client.inline(URI, LAST, END), timeout=30) == []
        about = [m for m in client.messages if str(corrupt) in m.message]
        assert len(about) == 1, client.messages
    finally:
        await client.finish()


async def test_unwritable_cache_dir_warns_once_and_keeps_completing(
    nearline_env: dict[str, str], tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    client = Client()
    await client.start(
        nearline_env,
        {"cache": {"dir": str(blocker / "cache")}, "completion": {"time_budget_ms": 5000}},
    )
    try:
        client.open(URI, DEMO)
        assert await client.inline(URI, LAST, END)
        assert await client.inline(URI, LAST, END)  # the memory cache still works
        about = [m for m in client.messages if "not writable" in m.message]
        assert len(about) == 1 and about[0].type == types.MessageType.Warning
    finally:
        await client.finish()


async def test_bad_settings_name_the_key_and_keep_defaults(nearline_env: dict[str, str]) -> None:
    client = Client()
    await client.start(nearline_env, {"completion": {"time_budget_ms": "fast"}, "bogus": 1})
    try:
        client.open(URI, DEMO)
        await client.inline(URI, LAST, END)
        [message] = [m for m in client.messages if "editor settings" in m.message]
        assert "completion.time_budget_ms" in message.message or "bogus" in message.message
        client.workspace_did_change_configuration(
            types.DidChangeConfigurationParams(settings={"nearline": {"model": {"n_ctx": 10}}})
        )
        await client.inline(URI, LAST, END)
        assert any("model.n_ctx = 10" in m.message for m in client.messages)
    finally:
        await client.finish()
