"""Supersede and cancel: a storm of requests leaves the server responsive."""

from __future__ import annotations

import asyncio

from lsprotocol import types
from pygls.exceptions import JsonRpcException

from support.lsp_client import DEMO, END, LAST, URI, Client


async def test_cancel_storm_answers_the_last_request(nearline_env: dict[str, str]) -> None:
    client = Client()
    await client.start(nearline_env)
    try:
        # Start from an empty last line so that every keystroke changes the prompt.
        text = DEMO.rsplit("fibonacci(n - 1) + ", 1)[0]
        client.open(URI, text)
        line, col = LAST, len(text.splitlines()[LAST])
        futures: list[asyncio.Future] = []
        previous_id = None
        typed = "fibonacci(n - 1) + fibonacci(n - 2)  # the sum of the two before it, " * 3
        for i in range(200):
            client.insert(URI, line, col, typed[i])
            col += 1
            if previous_id is not None:
                client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=previous_id))
            previous_id = f"storm-{i}"
            futures.append(
                asyncio.wrap_future(
                    client.protocol.send_request(
                        types.TEXT_DOCUMENT_INLINE_COMPLETION,
                        client.inline_params(URI, line, col),
                        msg_id=previous_id,
                    )
                )
            )
        results = await asyncio.wait_for(
            asyncio.gather(*futures, return_exceptions=True), timeout=60
        )
        last = results[-1]
        assert isinstance(last, types.InlineCompletionList), last
        for r in results[:-1]:
            # Each earlier one is answered: cancelled (-32800) or a (possibly empty) result.
            assert isinstance(r, types.InlineCompletionList) or (
                isinstance(r, JsonRpcException) and r.code == -32800
            ), r

        # Still responsive: a fresh request at the end of the line is answered promptly.
        answer = await asyncio.wait_for(client.inline(URI, line, col), timeout=10)
        assert isinstance(answer, list)
        stats = await client.stats()
        assert stats["model_calls"] < 200  # superseded work was dropped, not run
        assert stats["errors"] == 0
    finally:
        await client.finish()


async def test_newer_request_supersedes_older_for_the_same_document(
    nearline_env: dict[str, str],
) -> None:
    client = Client()
    await client.start(nearline_env, {"completion": {"time_budget_ms": 5000}})
    try:
        client.open(URI, DEMO)
        first = asyncio.ensure_future(client.inline(URI, LAST, END))
        second = asyncio.ensure_future(client.inline(URI, LAST - 1, 0))
        a, b = await asyncio.wait_for(asyncio.gather(first, second), timeout=60)
        assert isinstance(a, list) and isinstance(b, list)
        stats = await client.stats()
        assert stats["errors"] == 0
    finally:
        await client.finish()
