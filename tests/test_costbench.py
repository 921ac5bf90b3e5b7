"""The cost benchmark: its simulated provider's prompt caching (the rules each provider bills
by), the Anthropic Messages API it speaks to nearline's own engine, and a short run that prints
the report's baselines, levers and targets."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from nearline.accounting.prices import PriceTable
from nearline.providers import ChatMessage, ChatRequest
from support.engines import close_engines, engine, settings

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from costbench.caching import Block, PromptCache, anthropic_min  # noqa: E402
from costbench.provider import CloudModel, Tokenizer  # noqa: E402
from support.fake_provider import FakeProvider  # noqa: E402

__all__ = ["close_engines"]

SONNET, HAIKU = "claude-sonnet-4-5", "claude-haiku-4-5"


def prompt(stable: int, tail: int = 300, mark: bool = True) -> list[Block]:
    return [
        Block("system", 200, mark),
        Block("map", stable - 200, mark),
        Block(f"request {tail}", tail),
    ]


def test_anthropic_caches_only_at_breakpoints_past_the_model_minimum() -> None:
    assert (anthropic_min(SONNET), anthropic_min(HAIKU), anthropic_min("claude-opus-4-5")) == (
        1024,
        4096,
        4096,
    )
    cache = PromptCache(300)
    small = cache.anthropic(SONNET, prompt(1000), now=0)
    assert (small.input, small.cache_read, small.cache_write) == (1300, 0, 0)
    assert cache.anthropic(SONNET, prompt(1000), now=1).cache_read == 0  # never written
    no_mark = cache.anthropic(SONNET, prompt(5000, mark=False), now=2)
    assert (
        no_mark.cache_write,
        cache.anthropic(SONNET, prompt(5000, mark=False), now=3).cache_read,
    ) == (0, 0)
    # 3000 tokens: cacheable on Sonnet (written, then read), not on Haiku.
    first = cache.anthropic(SONNET, prompt(3000), now=10)
    assert (first.input, first.cache_read, first.cache_write) == (300, 0, 3000)
    second = cache.anthropic(SONNET, prompt(3000, tail=50), now=20)
    assert (second.input, second.cache_read, second.cache_write) == (50, 3000, 0)
    assert cache.anthropic(HAIKU, prompt(3000), now=30).cache_write == 0
    assert cache.anthropic(HAIKU, prompt(5000), now=40).cache_write == 5000


def test_anthropic_ttl_is_five_minutes_refreshed_by_each_hit() -> None:
    cache = PromptCache(300)
    assert cache.anthropic(SONNET, prompt(2000), now=0).cache_write == 2000
    assert cache.anthropic(SONNET, prompt(2000), now=290).cache_read == 2000
    assert cache.anthropic(SONNET, prompt(2000), now=580).cache_read == 2000  # 290 s after a hit
    late = cache.anthropic(SONNET, prompt(2000), now=881)  # 301 s after the last use
    assert (late.cache_read, late.cache_write) == (0, 2000)


def test_a_longer_breakpoint_prefix_writes_only_what_is_new() -> None:
    cache = PromptCache(300)
    cache.anthropic(SONNET, [Block("s", 1500, True), Block("q", 10)], now=0)
    billed = cache.anthropic(
        SONNET, [Block("s", 1500, True), Block("m", 800, True), Block("q", 10)], now=5
    )
    assert (billed.cache_read, billed.cache_write, billed.input) == (1500, 800, 10)


def test_openai_caches_automatically_in_128_token_steps_without_writes() -> None:
    cache = PromptCache(300)
    blocks = [Block("a", 1100), Block("b", 300), Block("q", 50)]
    assert cache.openai("gpt-4.1", blocks, now=0).cache_read == 0
    again = cache.openai("gpt-4.1", blocks, now=10)
    assert (again.cache_read, again.cache_write, again.input) == (1024 + 256, 0, 1450 - 1280)
    assert cache.openai("gpt-4.1", blocks[:1] + [Block("z", 5)], now=20).cache_read == 1024


def test_cache_writes_cost_a_quarter_more_than_input_and_reads_a_tenth() -> None:
    table = PriceTable()
    for model in (SONNET, HAIKU):
        price = table.get(model)
        assert price is not None and price.cache_creation_input_token_cost is not None
        assert price.cache_creation_input_token_cost == pytest.approx(
            1.25 * price.input_cost_per_token
        )
        assert price.cache_read_input_token_cost == pytest.approx(0.1 * price.input_cost_per_token)


@pytest.fixture
def cloud() -> Iterator[FakeProvider]:
    server = FakeProvider(CloudModel(Tokenizer(None), 300).respond, keep=False).start()
    yield server
    server.stop()


async def test_the_simulated_provider_speaks_anthropic_and_bills_its_cache(
    cloud: FakeProvider,
) -> None:
    claude = engine(settings(cloud, "claude", kind="anthropic", model=SONNET))  # type: ignore[arg-type]
    stable = "def handler(request, context):\n    return request\n" * 120
    request = ChatRequest(
        messages=(
            ChatMessage("system", "You are a careful engineer.", cache=True),
            ChatMessage("user", stable, cache=True),
            ChatMessage("user", "Explain: what does handler return?"),
        )
    )
    first = await claude.chat(request)
    second = await claude.chat(request)
    assert first.text and first.usage.cache_read_tokens == 0
    assert first.usage.cache_write_tokens >= 1024
    assert second.usage.cache_read_tokens == first.usage.cache_write_tokens
    assert second.usage.cache_write_tokens == 0
    assert second.usage.input_tokens == first.usage.input_tokens > 0
    assert second.usage.output_tokens > 0


def test_bench_costs_reports_baselines_levers_and_targets(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench_costs.py"), "--devs", "2", "--days", "1"]
        + ["--files", "60", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode in (0, 1), done.stderr[-2000:]
    report = json.loads(done.stdout)
    for key in ("saved_vs_naive_flagship", "saved_vs_same_prompt_flagship"):
        assert -5 < report[key] < 1
    assert 0 <= report["flagship_cache_hit_share"] <= 1
    levers = report["levers"]
    assert set(levers) == {"diffs", "project_map", "provider_caching", "local_model", "routing"}
    assert levers["project_map"]["usd"] < 0  # the map costs tokens; caching may win them back
    steps = report["baselines_usd"]
    total = sum(v["usd"] for v in levers.values())
    assert total == pytest.approx(steps["naive_all_flagship"] - steps["actual"])
    assert steps["actual"] == pytest.approx(report["total"]["cost_usd"])
    assert steps["same_prompt_flagship"] == pytest.approx(report["total"]["all_flagship_usd"])
    assert report["project_map_tokens"] > 1000
    assert report["pass"] is (done.returncode == 0)


def test_a_one_hour_breakpoint_lives_an_hour_and_its_writes_are_billed_apart() -> None:
    cache = PromptCache(300)
    blocks = [Block("s", 200, True, 3600.0), Block("map", 1800, True, 3600.0), Block("q", 10)]
    first = cache.anthropic(SONNET, blocks, now=0)
    assert (first.cache_write, first.cache_write_1h) == (2000, 2000)
    later = cache.anthropic(SONNET, blocks, now=3000)  # 50 minutes on: still there
    assert (later.cache_read, later.cache_write) == (2000, 0)
    gone = cache.anthropic(SONNET, blocks, now=3000 + 3601)
    assert (gone.cache_read, gone.cache_write_1h) == (0, 2000)
    mixed = [Block("s", 1500, True, 3600.0), Block("m", 800, True), Block("q", 10)]
    billed = PromptCache(300).anthropic(SONNET, mixed, now=0)
    assert (billed.cache_write, billed.cache_write_1h) == (2300, 1500)
