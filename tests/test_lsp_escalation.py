"""Escalation end to end: a code action goes through routing, a real OpenAI-compatible server
(llama-cpp-python's, serving the default model on 127.0.0.1), diff checking and
``workspace/applyEdit`` through the real LSP client."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.escalation import (
    CALC,
    EditingClient,
    code_action,
    run,
    to_toml,
)
from support.fake_provider import (
    RecordingProvider,
)
from support.net import free_port

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


async def start(env: dict[str, str], root: Path) -> EditingClient:
    client = EditingClient()
    await client.start(env, root=root)
    uri = (root / "calc.py").as_uri()
    client.open(uri, CALC)
    return client


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
