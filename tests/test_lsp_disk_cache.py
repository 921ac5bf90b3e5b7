"""Suggestions survive a server restart through the disk cache."""

from __future__ import annotations

from support.lsp_client import DEMO, END, LAST, URI, Client

FULL = {"completion": {"time_budget_ms": 5000, "warmup": False}}


async def test_restart_serves_repeated_request_from_disk(nearline_env: dict[str, str]) -> None:
    first = Client()
    await first.start(nearline_env, FULL)
    try:
        first.open(URI, DEMO)
        shown = await first.inline(URI, LAST, END)
        stats = await first.stats()
        assert stats["model_calls"] == 1 and stats["cache_hits"] == 0
    finally:
        await first.finish()

    second = Client()
    await second.start(nearline_env, FULL)
    try:
        second.open(URI, DEMO)
        assert await second.inline(URI, LAST, END) == shown
        stats = await second.stats()
        assert stats["cache_hits"] == 1
        assert stats["model_calls"] == 0
    finally:
        await second.finish()
