"""End to end over LSP stdio with ``[completion.remote]``: the real server and its real local
model, hedged with a completion server: a fake llama-server on 127.0.0.1 for what a real one
cannot be made to do (hang, fail, come back), and a real ``python -m llama_cpp.server`` that
is killed halfway. Ghost text from the server, the local model's when it hangs or dies (no
error in the editor), the breaker opening and closing, and nothing sent to a public host
without the switch."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types

from support.fake_provider import FakeProvider, Received, Reply, sse
from support.llama_server import llama_cpp_server, served_model
from support.lsp_client import DEMO, END, LAST, URI, Client, plain

ANSWER = "fibonacci(n - 2)"


class FakeLlamaServer(FakeProvider):
    """``/infill`` and ``/health`` as llama-server serves them; ``behaviour`` says how."""

    def __init__(self) -> None:
        super().__init__(self._reply)
        self.behaviour = "answer"
        self.pages["/health"] = lambda: {"status": "ok"}

    def _reply(self, received: Received) -> Reply:
        if self.behaviour == "hang":
            return Reply(delay_s=20)
        if self.behaviour == "fail":
            return Reply(500, b"model crashed")
        first = {"content": ANSWER, "stop": False}
        last = {
            "content": "",
            "stop": True,
            "tokens_cached": 90,
            "tokens_evaluated": 100,
            "timings": {"prompt_n": 10, "predicted_n": 5},
        }
        return Reply(chunks=sse(first, last, done=False), content_type="text/event-stream")


@pytest.fixture
def fake_server() -> Iterator[FakeLlamaServer]:
    server = FakeLlamaServer().start(poll_interval=0.05)
    yield server
    server.stop()


def remote_options(url: str, **extra: Any) -> dict[str, Any]:
    remote = {"kind": "llama-server", "url": url, "model": "qwen2.5-coder-1.5b", **extra}
    # One engine thread: llama.cpp's threads spin-wait for each other (a busy 2-core machine).
    return {"model": {"n_threads": 1}, "completion": {"time_budget_ms": 300, "remote": remote}}


async def ask(client: Client, text: str) -> tuple[list[str], dict[str, Any]]:
    """Open ``text`` as the document (a new version) and ask at its end."""
    client.versions[URI] = client.versions.get(URI, 0) + 1
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(
                uri=URI, version=client.versions[URI]
            ),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)],
        )
    )
    lines = text.split("\n")
    shown = await client.inline(URI, len(lines) - 1, len(lines[-1]))
    stats = await client.stats()
    return shown, stats["recent"][-1]


PREFIX = DEMO.rsplit("fibonacci(n - 1) + ", 1)[0] + "fibonacci(n - 1) + "


async def test_the_servers_ghost_text_then_the_local_models_while_it_hangs_or_fails(
    nearline_env: dict[str, str], fake_server: FakeLlamaServer
) -> None:
    client = Client()
    await client.start(nearline_env, remote_options(fake_server.url, cooldown_s=0.5))
    try:
        client.open(URI, DEMO)
        shown, record = await ask(client, PREFIX)
        assert shown == [ANSWER] and record["engine"] == "remote", (await client.stats())["remote"]
        assert record["remote_cached_tokens"] == 90
        body = fake_server.received[-1].json
        assert body["input_prefix"].endswith("fibonacci(n - 1) +")  # its spaces left out
        assert body["cache_prompt"] is True and body["stream"] is True
        status = client.statuses[-1]
        assert status["engine"] == "remote" and status["model"] == "qwen2.5-coder-1.5b"

        while not (await client.stats())["loaded"]:  # the local model (the server was first)
            await asyncio.sleep(0.2)
        await ask(client, PREFIX.replace("n - 1", "n -1"))  # its window evaluated once
        fake_server.behaviour = "hang"
        started = time.perf_counter()
        shown, record = await ask(client, PREFIX.replace("n - 1", "n-1"))
        waited = time.perf_counter() - started
        assert record["engine"] == "local" and waited < 5, (waited, dict(record))  # not 10 s

        fake_server.behaviour = "fail"
        for n in range(4):
            await ask(client, PREFIX + " " * (n + 1))
        stats = await client.stats()
        assert stats["remote"]["state"] == "open", stats["remote"]
        assert "errors in a row" in stats["remote"]["reason"]
        asked = len(fake_server.received)
        await ask(client, PREFIX + "  #")
        assert len(fake_server.received) == asked  # set aside: not asked

        fake_server.behaviour = "answer"
        await asyncio.sleep(0.6)  # the cooldown: the next keystroke sends one probe
        await ask(client, PREFIX + " #")
        await asyncio.sleep(0.3)
        shown, record = await ask(client, PREFIX)
        assert shown == [ANSWER] and record["engine"] == "remote"
        assert not [m for m in client.messages if m.type == types.MessageType.Error]
    finally:
        await client.finish()


async def test_a_public_host_gets_nothing_without_the_switch(
    nearline_env: dict[str, str],
) -> None:
    client = Client()
    # A public address: nothing may even be tried (no connection is made to refuse it).
    await client.start(nearline_env, remote_options("http://8.8.8.8:8080"))
    try:
        client.open(URI, DEMO)
        _shown, record = await ask(client, PREFIX)
        stats = await client.stats()
        assert record["engine"] == "local"
        assert "allow_public" in stats["remote"]["reason"], stats["remote"]
        assert stats["remote"]["asked"] <= 1 and stats["remote"]["answered"] == 0
    finally:
        await client.finish()


@pytest.fixture
def own_llama_server(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A llama_cpp.server of this test's own (it is killed halfway)."""
    with llama_cpp_server(tmp_path) as found:
        yield found


async def test_a_real_llama_cpp_server_then_killed(
    nearline_env: dict[str, str], own_llama_server: tuple[subprocess.Popen[bytes], str]
) -> None:
    process, url = own_llama_server
    served = served_model(url)
    # Both serve the same small model here: the local one is held back (min_confidence = 1:
    # it shows nothing), so the ghost text is surely the server's, whichever is in first.
    options = {
        "model": {"n_threads": 1},
        "completion": {
            "time_budget_ms": 50,
            "min_confidence": 1,
            "remote": {"kind": "openai", "url": url, "model": served, "read_timeout_s": 60},
        },
    }
    client = Client()
    await client.start(nearline_env, options)
    try:
        client.open(URI, DEMO)
        line = DEMO.split("\n")[LAST]
        # The server's answer, in first or later (then completionReady, and the plugin asks
        # again): ghost text from the remote engine.
        deadline = time.monotonic() + 120
        record: dict[str, Any] = {}
        while time.monotonic() < deadline:
            shown = await client.inline(URI, LAST, END)
            record = (await client.stats())["recent"][-1]
            if shown and record["engine"] == "remote":
                break
            await asyncio.sleep(0.5)
        assert record.get("engine") == "remote", record
        assert line.startswith("    return")

        process.kill()
        process.wait(timeout=30)
        shown, record = await ask(client, PREFIX)
        assert record["engine"] == "local"
        assert not [m for m in client.messages if m.type == types.MessageType.Error]
    finally:
        await client.finish()


async def test_the_servers_suggestions_in_the_ledger_and_usage_by_model(
    nearline_env: dict[str, str], fake_server: FakeLlamaServer
) -> None:
    client = Client()
    await client.start(nearline_env, remote_options(fake_server.url))
    try:
        client.open(URI, PREFIX)
        lines = PREFIX.split("\n")
        result = await client.text_document_inline_completion_async(
            client.inline_params(URI, len(lines) - 1, len(lines[-1]))
        )
        assert isinstance(result, types.InlineCompletionList) and result.items
        command = result.items[0].command
        assert command is not None
        args = plain(command.arguments)[0]
        assert (args["engine"], args["model"]) == ("remote", "qwen2.5-coder-1.5b")
        await client.workspace_execute_command_async(
            types.ExecuteCommandParams(command=command.command, arguments=command.arguments)
        )
    finally:
        await client.finish()
    with sqlite3.connect(Path(nearline_env["NEARLINE_DATA_DIR"]) / "usage.db") as conn:
        conn.row_factory = sqlite3.Row
        (row,) = [dict(r) for r in conn.execute("SELECT * FROM requests")]
    assert (row["provider"], row["model"], row["accepted"], row["cost_usd"]) == (
        "completion-server",
        "qwen2.5-coder-1.5b",
        1,
        0,
    )
    assert (row["input_tokens"], row["cache_read_tokens"], row["output_tokens"]) == (10, 90, 5)
    assert row["cloud"] == 0 and row["chars"] == len(ANSWER)
    found = subprocess.run(
        [sys.executable, "-m", "nearline", "usage", "--by", "model", "--json"],
        env=nearline_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert found.returncode == 0, found.stderr
    (group,) = json.loads(found.stdout)["groups"]
    assert (group["key"], group["suggestions_shown"], group["accepted"]) == (
        "qwen2.5-coder-1.5b",
        1,
        1,
    )
