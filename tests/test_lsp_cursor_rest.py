"""``nearline/cursorRest`` with the real server and model: the window where the cursor rests
is evaluated before the first key, so that key's suggestion evaluates almost nothing; bad
params and unknown documents are dropped without an answer or a crash."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from support.lsp_client import DEMO, END, LAST, URI, Client

OPTIONS = {"completion": {"time_budget_ms": 5000}}


def rest(client: Client, params: Any) -> None:
    client.protocol.notify("nearline/cursorRest", params)


async def last_rest(client: Client, key: str, timeout_s: float = 60) -> dict[str, Any]:
    give_up = time.monotonic() + timeout_s
    while True:
        stats = await client.stats()
        record = stats.get("last_rest") or {}
        if record.get(key) is not None or time.monotonic() > give_up:
            return stats
        await asyncio.sleep(0.05)


async def test_the_window_where_the_cursor_rests_is_evaluated_before_the_first_key(
    nearline_env: dict[str, str],
) -> None:
    client = Client()
    await client.start(nearline_env, OPTIONS)
    try:
        client.open(URI, DEMO)
        rest(client, {"textDocument": {"uri": URI}, "position": {"line": LAST, "character": END}})
        stats = await last_rest(client, "full_ms")
        assert stats["rests"] == 1
        assert stats["last_rest"]["uri"] == URI and stats["last_rest"]["line"] == LAST
        assert stats["last_rest"]["full_ms"] > 0
        await client.inline(URI, LAST, END)
        record = (await client.stats())["recent"][-1]
        assert record["source"] == "model"
        assert record["evaluated_tokens"] <= 1  # the window was there: only its last token
    finally:
        await client.finish()


async def test_bad_rests_are_dropped(nearline_env: dict[str, str]) -> None:
    client = Client()
    await client.start(nearline_env, OPTIONS)
    try:
        client.open(URI, DEMO)
        for params in (
            None,
            {"textDocument": {"uri": URI}},
            {"textDocument": {"uri": URI}, "position": {"line": -1, "character": 0}},
            {"textDocument": {"uri": URI}, "position": {"line": "1", "character": 0}},
            {
                "textDocument": {"uri": "file:///never/opened.py"},
                "position": {"line": 0, "character": 0},
            },
            {"textDocument": {"uri": URI}, "position": {"line": 10_000, "character": 0}},
        ):
            rest(client, params)
        stats = await client.stats()  # the server still answers
        assert stats["rests"] == 0 and stats["last_rest"] is None
        assert await client.inline(URI, LAST, END) is not None
    finally:
        await client.finish()
