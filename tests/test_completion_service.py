"""The completion service with a fake engine: typing-through, supersede, carry-on, the time
budget, settings that change, and the disk cache read off the event loop. Fast: no model (the
real one is in the end-to-end tests)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from nearline.completion import CompletionService, Source
from nearline.completion.cache import CompletionCache
from nearline.config import parse_settings
from nearline.documents import DocumentView, split_lines
from support.fake_engine import FakeEngine

URI = "file:///w/a.py"
CODE = "def add(a, b):\n    return a"
BLOCK = "def f(x):\n    "


def view(text: str, version: int = 1) -> DocumentView:
    return DocumentView(URI, version, split_lines(text))


def end_of(text: str) -> tuple[int, int]:
    lines = text.split("\n")
    return len(lines) - 1, len(lines[-1])


def make(
    services: list[CompletionService],
    engine: FakeEngine,
    cache: CompletionCache | None = None,
    **completion: object,
) -> CompletionService:
    settings = parse_settings({"completion": {"warmup": False, **completion}})
    service = CompletionService(settings, engine, cache or CompletionCache(None))
    services.append(service)
    return service


async def test_the_model_answers_then_typing_through_answers_the_rest(
    services: list[CompletionService],
) -> None:
    engine = FakeEngine(" + b")
    service = make(services, engine)
    first = await service.complete(view(CODE), *end_of(CODE), "utf-32")
    assert (first.source, first.text) == (Source.MODEL, " + b")
    typed = CODE + " +"
    second = await service.complete(view(typed, 2), *end_of(typed), "utf-32")
    assert (second.source, second.text) == (Source.TYPING_THROUGH, " b")
    assert len(engine.calls) == 1 and service.stats.typed_through == 1


async def test_a_newer_request_supersedes_the_one_in_flight(
    services: list[CompletionService],
) -> None:
    engine = FakeEngine(" + b + c + d + e", token_s=0.02)
    service = make(services, engine, time_budget_ms=5000)
    older = asyncio.ensure_future(service.complete(view(CODE), *end_of(CODE), "utf-32"))
    await asyncio.sleep(0.05)  # the older one is generating
    typed = CODE + " "
    newer = await service.complete(view(typed, 2), *end_of(typed), "utf-32")
    assert (await older).source is Source.SUPERSEDED
    assert newer.source is Source.MODEL and newer.text
    assert service.stats.superseded == 1


async def test_the_time_budget_cuts_the_answer_and_the_rest_follows_in_the_background(
    services: list[CompletionService],
) -> None:
    engine = FakeEngine(" + b + c + d", token_s=0.01)
    service = make(services, engine, time_budget_ms=35)
    ready = threading.Event()
    service.on_extended = lambda uri, ctx: ready.set()
    cut = await service.complete(view(CODE), *end_of(CODE), "utf-32")
    assert cut.source is Source.MODEL and cut.text and len(cut.text) < len(" + b + c + d")
    assert cut.generation is not None and cut.generation.stop_reason.value == "budget"
    assert service.stats.budget_hits == 1
    assert await asyncio.to_thread(ready.wait, 5.0), "the carry-on never finished"
    again = await service.complete(view(CODE), *end_of(CODE), "utf-32")
    assert (again.source, again.text) == (Source.CACHE, " + b + c + d")


async def test_a_rest_where_the_cut_suggestion_is_shown_lets_its_rest_follow(
    services: list[CompletionService],
) -> None:
    """VS Code says the cursor rests 200 ms after the key, often while the cut suggestion is
    being finished: the rest there must not cancel it (the ghost text would stay cut)."""
    engine = FakeEngine(" + b + c + d", token_s=0.01)
    service = make(services, engine, time_budget_ms=35, warmup=True)
    ready = threading.Event()
    service.on_extended = lambda uri, ctx: ready.set()
    cut = await service.complete(view(CODE), *end_of(CODE), "utf-32")
    assert cut.generation is not None and cut.generation.stop_reason.value == "budget"
    service.rest(view(CODE), *end_of(CODE), "utf-32")
    assert await asyncio.to_thread(ready.wait, 5.0), "the rest cancelled the carry-on"
    again = await service.complete(view(CODE), *end_of(CODE), "utf-32")
    assert again.text == " + b + c + d"


async def test_a_rest_elsewhere_cancels_the_carry_on(services: list[CompletionService]) -> None:
    engine = FakeEngine(" + b + c + d", token_s=0.01)
    service = make(services, engine, time_budget_ms=35, warmup=True)
    ready = threading.Event()
    service.on_extended = lambda uri, ctx: ready.set()
    await service.complete(view(CODE), *end_of(CODE), "utf-32")
    service.rest(view(CODE), 0, 3, "utf-32")
    await asyncio.to_thread(_wait_idle, service)
    assert not ready.is_set()


def _wait_idle(service: CompletionService) -> None:
    for _ in range(500):
        if service.scheduler.idle():
            return
        threading.Event().wait(0.01)
    raise AssertionError("the engine thread never went idle")


async def test_a_budget_still_gives_at_least_one_token(services: list[CompletionService]) -> None:
    service = make(services, FakeEngine("+b", token_s=0.05), time_budget_ms=10)
    result = await service.complete(view(CODE), *end_of(CODE), "utf-32")
    assert result.text == "+"
    assert result.generation is not None and len(result.generation.tokens) == 1


async def test_reconfigure_rebuilds_what_comes_from_the_settings(
    services: list[CompletionService],
) -> None:
    body = "\n".join(f"    y{i} = x" for i in range(5))
    service = make(services, FakeEngine(body + "\n"), max_block_lines=2)
    first = await service.complete(view(BLOCK), *end_of(BLOCK), "utf-32")
    assert first.text.count("\n") == 1  # two lines
    service.reconfigure(parse_settings({"completion": {"warmup": False, "max_block_lines": 8}}))
    other = "def g(x):\n    "
    second = await service.complete(view(other, 2), *end_of(other), "utf-32")
    # Generation and post-processing both take the new limit (post-processing kept 2 lines).
    assert second.text.count("\n") == 4, second.text


async def test_the_disk_cache_is_read_on_the_engine_thread(
    services: list[CompletionService], tmp_path: Path
) -> None:
    disk = tmp_path / "cache"
    first = CompletionCache(disk)
    service = make(services, FakeEngine(" + b"), first)
    await service.complete(view(CODE), *end_of(CODE), "utf-32")
    first.flush()
    service.close()
    services.remove(service)

    reads: list[str] = []
    cache = CompletionCache(disk)
    load = cache.load

    def recorded(key: str) -> str | None:
        reads.append(threading.current_thread().name)
        return load(key)

    cache.load = recorded  # type: ignore[method-assign]
    engine = FakeEngine("never asked")
    again = make(services, engine, cache)
    result = await again.complete(view(CODE), *end_of(CODE), "utf-32")
    assert (result.source, result.text) == (Source.CACHE, " + b")
    assert reads and all(name != threading.main_thread().name for name in reads), reads
    assert engine.calls == []


def test_a_keystroke_changes_only_the_end_of_a_line_layout_prompt() -> None:
    from nearline.completion.context import build_context
    from nearline.completion.engine.templates import get_template
    from nearline.completion.service import build_prompt

    def prompt(template: str, typed: str) -> str:
        lines = split_lines(f"def f(x):\n    return x{typed}\n\nprint(f(1))\n")
        ctx = build_context(
            lines,
            1,
            12 + len(typed),
            previous_anchor=0,
            max_prefix_chars=1200,
            max_suffix_chars=400,
        )
        return build_prompt(get_template(template), ctx, "a.py")

    before, after = prompt("qwen2.5-coder-line", ""), prompt("qwen2.5-coder-line", " +")
    cut = before.index("<|fim_suffix|>")
    assert after.startswith(before[:cut])  # the code below the cursor came first: unchanged
    assert "print(f(1))" in before[:cut] and before[cut:] == "<|fim_suffix|><|fim_middle|>"
    psm_before, psm_after = prompt("qwen2.5-coder", ""), prompt("qwen2.5-coder", " +")
    assert "print(f(1))" in psm_before[psm_before.index("<|fim_suffix|>") :]  # after the prefix
    assert not psm_after.startswith(psm_before[: psm_before.index("<|fim_middle|>")])


async def test_a_suggestion_the_model_is_unsure_of_is_not_shown(
    services: list[CompletionService],
) -> None:
    import math

    unsure = make(services, FakeEngine(" + b", logprob=math.log(0.3)), min_confidence=0.5)
    gated = await unsure.complete(view(CODE), *end_of(CODE), "utf-32")
    assert (gated.source, gated.text) == (Source.NONE, "") and unsure.stats.gated == 1
    assert unsure.stats.recent[-1]["confidence"] == 0.3
    sure = make(services, FakeEngine(" + b", logprob=math.log(0.9)), min_confidence=0.5)
    shown = await sure.complete(view(CODE), *end_of(CODE), "utf-32")
    assert (shown.source, shown.text) == (Source.MODEL, " + b") and sure.stats.gated == 0
