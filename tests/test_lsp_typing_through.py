"""Typing what the ghost text shows is answered from the suggestion, not the model."""

from __future__ import annotations

from support.lsp_client import DEMO, END, LAST, URI, Client


async def test_typing_through_answers_without_a_model_call(nearline_env: dict[str, str]) -> None:
    client = Client()
    await client.start(nearline_env, {"completion": {"time_budget_ms": 5000}})
    try:
        client.open(URI, DEMO)
        [shown] = await client.inline(URI, LAST, END)
        assert len(shown) >= 3, shown
        before = await client.stats()

        col = END
        for i, ch in enumerate(shown[:-1]):
            client.insert(URI, LAST, col, ch)
            col += 1
            assert await client.inline(URI, LAST, col) == [shown[i + 1 :]]

        after = await client.stats()
        assert after["model_calls"] == before["model_calls"]
        assert after["typed_through"] - before["typed_through"] == len(shown) - 1
        sources = [r["source"] for r in after["recent"][-(len(shown) - 1) :]]
        assert set(sources) == {"typing-through"}
    finally:
        await client.finish()


async def test_typing_something_else_asks_the_model_again(nearline_env: dict[str, str]) -> None:
    client = Client()
    await client.start(nearline_env, {"completion": {"time_budget_ms": 5000}})
    try:
        client.open(URI, DEMO)
        [shown] = await client.inline(URI, LAST, END)
        before = await client.stats()
        other = "#" if not shown.startswith("#") else "@"
        client.insert(URI, LAST, END, other)
        await client.inline(URI, LAST, END + 1)
        after = await client.stats()
        assert after["typed_through"] == before["typed_through"]
        assert (
            after["model_calls"] + after["cache_hits"]
            > before["model_calls"] + before["cache_hits"]
        )
    finally:
        await client.finish()
