"""The ledger through the real server over stdio: completions and escalations are recorded with
their cost, acceptance comes back through ``nearline.accepted``, the status carries today's
spend, and budgets, spikes and runaway loops act on escalations (never on autocomplete)."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types

from nearline.accounting.entries import Entry
from nearline.accounting.ledger import Ledger
from nearline.accounting.prices import Tokens
from support.escalation import CALC, code_action, run, to_toml
from support.fake_provider import (
    RecordingProvider,
)
from support.lsp_client import DEMO, END, LAST, URI, Client, plain

DAY = 86_400.0
USAGE = {
    "prompt_tokens": 2000,
    "completion_tokens": 100,
    "prompt_tokens_details": {"cached_tokens": 1500},
}
# claude-sonnet-4-5 (bundled prices): 500 uncached * 3e-6 + 1500 cached * 3e-7 + 100 out * 1.5e-5
SONNET_COST = 0.00345


def provider() -> RecordingProvider:
    return RecordingProvider("It adds two numbers.", USAGE).start()


@pytest.fixture
def providers() -> Iterator[tuple[RecordingProvider, RecordingProvider]]:
    big, small = provider(), provider()
    yield big, small
    big.stop()
    small.stop()


def make_project(
    tmp_path: Path, big: RecordingProvider, small: RecordingProvider, **extra: Any
) -> Path:
    root = (tmp_path / "proj").resolve()
    root.mkdir()
    (root / "calc.py").write_text(CALC)
    config: dict[str, Any] = {
        "providers": {
            "big": {"kind": "openai", "base_url": big.url, "model": "claude-sonnet-4-5"},
            "small": {"kind": "openai", "base_url": small.url, "model": "gpt-4.1-mini"},
        },
        "routing": {
            "tiers": {"flagship": ["big"], "value": ["small"]},
            "rules": [],
            "default_tier": "flagship",
        },
    }
    config.update(extra)
    (root / ".nearline.toml").write_text(to_toml(config))
    return root


def ledger_file(env: dict[str, str]) -> Path:
    return Path(env["NEARLINE_DATA_DIR"]) / "usage.db"


def spend(env: dict[str, str], root: Path, usd: float, ts: float | None = None) -> None:
    """Put earlier spending for ``root`` in the ledger the server will use."""
    ledger = Ledger(ledger_file(env))
    ledger.record(
        Entry(
            task="refactor",
            outcome="ok",
            tier="flagship",
            provider="big",
            model="claude-sonnet-4-5",
            tokens=Tokens(input=1000, output=100),
            cost_usd=usd,
            project_root=str(root),
            project=root.name,
            cloud=True,
            ts=time.time() if ts is None else ts,
        )
    )
    ledger.close()


def rows(env: dict[str, str]) -> list[dict[str, Any]]:
    with sqlite3.connect(ledger_file(env)) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute("SELECT * FROM requests ORDER BY id")]


@contextlib.asynccontextmanager
async def served(env: dict[str, str], root: Path) -> AsyncIterator[tuple[Client, str]]:
    """A real server for the project at ``root``, with calc.py open; yields (client, its URI)."""
    client = Client()
    await client.start(env, root=root)
    uri = (root / "calc.py").as_uri()
    client.open(uri, CALC)
    try:
        yield client, uri
    finally:
        await client.finish()


async def explain(client: Client, uri: str) -> dict[str, Any]:
    return await run(client, await code_action(client, uri, "explain"))


async def test_completions_are_recorded_and_acceptance_comes_back(
    nearline_env: dict[str, str],
) -> None:
    client = Client()
    await client.start(nearline_env)
    try:
        client.open(URI, DEMO)
        result = await client.text_document_inline_completion_async(
            client.inline_params(URI, LAST, END)
        )
        assert isinstance(result, types.InlineCompletionList) and result.items
        item = result.items[0]
        assert item.command is not None and item.command.command == "nearline.accepted"
        uid = plain(item.command.arguments)[0]["id"]
        await client.workspace_execute_command_async(
            types.ExecuteCommandParams(
                command=item.command.command, arguments=item.command.arguments
            )
        )
        await client.inline(URI, LAST, END)  # the same again: typing-through or the cache
        status = client.statuses[-1]
        assert status["tier"] == "local" and status["spend_today_usd"] == 0.0
    finally:
        await client.finish()
    recorded = rows(nearline_env)
    assert len(recorded) == 2
    first, second = recorded
    assert first["uid"] == uid and first["accepted"] == 1
    assert first["task"] == "completion" and first["tier"] == "local" and first["cost_usd"] == 0
    assert first["outcome"] == "ok" and first["output_tokens"] > 0
    assert first["input_tokens"] + first["cache_read_tokens"] > 0
    assert first["language"] == "python" and first["client"] == "lsp"
    assert second["outcome"] in ("ok", "typed-through", "served-from-cache")
    assert second["accepted"] == 0


async def test_an_escalation_is_recorded_with_its_exact_cost(
    providers: tuple[RecordingProvider, RecordingProvider],
    nearline_env: dict[str, str],
    tmp_path: Path,
) -> None:
    big, small = providers
    root = make_project(tmp_path, big, small)
    async with served(nearline_env, root) as (client, uri):
        result = await run(client, await code_action(client, uri, "explain"))
        assert result["ok"] is True
        status = [s for s in client.statuses if s.get("tier") == "flagship"][-1]
        assert status["cost_usd"] == SONNET_COST
        assert status["spend_today_usd"] == SONNET_COST
    [row] = [r for r in rows(nearline_env) if r["task"] == "explain"]
    assert (row["input_tokens"], row["cache_read_tokens"], row["output_tokens"]) == (500, 1500, 100)
    assert row["cost_usd"] == SONNET_COST and row["cloud"] == 1
    assert row["project_root"] == str(root) and row["project"] == "proj"
    assert row["tier"] == "flagship" and row["model"] == "claude-sonnet-4-5"


async def test_a_spent_budget_refuses_but_autocomplete_goes_on(
    providers: tuple[RecordingProvider, RecordingProvider],
    nearline_env: dict[str, str],
    tmp_path: Path,
) -> None:
    big, small = providers
    root = make_project(tmp_path, big, small, budget={"project": {"daily_usd": 5.0}})
    spend(nearline_env, root, 5.0)
    async with served(nearline_env, root) as (client, uri):
        action = await code_action(client, uri, "explain")
        assert "unavailable: this project's daily budget of $5.00 is spent" in action.title
        result = await run(client, action)
        assert result["ok"] is False and "resets" in result["message"]
        assert big.bodies == [] and small.bodies == []
        client.open(URI, DEMO)
        assert await client.inline(URI, LAST, END)  # autocomplete is never blocked


async def test_a_project_that_says_so_is_downgraded(
    providers: tuple[RecordingProvider, RecordingProvider],
    nearline_env: dict[str, str],
    tmp_path: Path,
) -> None:
    big, small = providers
    root = make_project(
        tmp_path,
        big,
        small,
        budget={"project": {"daily_usd": 5.0}, "on_exceeded": "downgrade", "downgrade_to": "value"},
    )
    spend(nearline_env, root, 4.995)
    async with served(nearline_env, root) as (client, uri):
        action = await code_action(client, uri, "explain")
        assert "→ value (gpt-4.1-mini" in action.title
        result = await run(client, action)
        assert result["ok"] is True and result["provider"] == "small"
        assert len(small.bodies) == 1 and big.bodies == []


async def test_the_soft_threshold_warns_once(
    providers: tuple[RecordingProvider, RecordingProvider],
    nearline_env: dict[str, str],
    tmp_path: Path,
) -> None:
    big, small = providers
    root = make_project(tmp_path, big, small, budget={"project": {"daily_usd": 5.0}})
    spend(nearline_env, root, 4.2)
    async with served(nearline_env, root) as (client, uri):
        for _ in range(2):
            assert (await explain(client, uri))["ok"] is True
        warnings = [
            m.message for m in client.messages if "of this project's daily budget" in m.message
        ]
        assert len(warnings) == 1 and "84% of this project's daily budget" in warnings[0]


async def test_a_spending_spike_is_flagged_once(
    providers: tuple[RecordingProvider, RecordingProvider],
    nearline_env: dict[str, str],
    tmp_path: Path,
) -> None:
    big, small = providers
    root = make_project(tmp_path, big, small)
    now = time.time()
    for days_ago in range(1, 8):
        spend(nearline_env, root, 1.0, now - days_ago * DAY)
    spend(nearline_env, root, 3.5, now)
    async with served(nearline_env, root) as (client, uri):
        for _ in range(2):
            assert (await explain(client, uri))["ok"] is True
        spikes = [m.message for m in client.messages if "unusual spending" in m.message]
        assert len(spikes) == 2  # the project's, and the user's: each once
        assert "7-day average of $1.00" in spikes[0]


async def test_a_runaway_loop_is_stopped(
    providers: tuple[RecordingProvider, RecordingProvider],
    nearline_env: dict[str, str],
    tmp_path: Path,
) -> None:
    big, small = providers
    root = make_project(tmp_path, big, small, alerts={"loop_max_requests": 2})
    async with served(nearline_env, root) as (client, uri):
        results = [await explain(client, uri) for _ in range(3)]
        assert [r["ok"] for r in results] == [True, True, False]
        assert "runaway loop" in results[2]["message"]
        assert len(big.bodies) == 2


async def test_the_editors_usage_command_returns_the_report(
    providers: tuple[RecordingProvider, RecordingProvider],
    nearline_env: dict[str, str],
    tmp_path: Path,
) -> None:
    big, small = providers
    root = make_project(tmp_path, big, small)
    spend(nearline_env, root, 1.25)
    async with served(nearline_env, root) as (client, _):
        result = await client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="nearline.usage", arguments=[{"days": 3}])
        )
        assert isinstance(result, str)
        assert "$1.25" in result and "saved" in result
        assert max(len(line) for line in result.splitlines()) <= 80
        with pytest.raises(Exception, match="days must be an integer"):
            await client.workspace_execute_command_async(
                types.ExecuteCommandParams(command="nearline.usage", arguments=[{"days": "x"}])
            )


async def test_usage_without_arguments_is_the_last_week(nearline_env: dict[str, str]) -> None:
    client = Client()
    await client.start(nearline_env)
    try:
        result = await client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="nearline.usage", arguments=[])
        )
        assert isinstance(result, str) and "no requests recorded" in result
    finally:
        await client.finish()


async def test_a_ledger_that_cannot_be_written_is_one_message_not_a_dead_server(
    nearline_env: dict[str, str], tmp_path: Path
) -> None:
    nearline_env["NEARLINE_LEDGER"] = str(tmp_path)  # a folder: SQLite cannot open it
    client = Client()
    await client.start(nearline_env)
    try:
        client.open(URI, DEMO)
        assert await client.inline(URI, LAST, END)
        assert await client.inline(URI, LAST, END)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any(
            "usage is not being recorded" in m.message for m in client.messages
        ):
            await asyncio.sleep(0.1)
        warnings = [m.message for m in client.messages if "usage" in m.message]
        assert len(warnings) == 1 and "cannot write the usage ledger" in warnings[0], warnings
    finally:
        await client.finish()
