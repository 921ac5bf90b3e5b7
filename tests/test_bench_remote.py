"""The remote completion benchmark's parts that need no model: the replayed llama-server
(hits after their latency, misses answered "" and counted, the simulated prompt cache, a
client that goes away dropped), spoken to by nearline's own ``/infill`` adapter; the
precompute's positions and the request layout; the command line."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nearline.completion.remote import RemotePrompt
from nearline.completion_servers import make_remote
from nearline.config.remote import RemoteSettings

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import bench_quality as bq  # noqa: E402
import bench_remote  # noqa: E402
from remotebench import arms, precompute  # noqa: E402
from remotebench.answers import AnswerTable, Entry, key_of, near_of  # noqa: E402
from remotebench.replay_server import ReplayRemote, cut_answer  # noqa: E402

TINY = "import os\n\n\ndef f(a, b):\n    x = g(a)\n    return x + b\n\n\ndef h():\n    pass\n"
PREFIX = "def add(a, b):\n    return"
SUFFIX = "\n\nprint(add(1, 2))\n"


@pytest.fixture
def tiny(tmp_path: Path) -> bq.Region:
    path = tmp_path / "tiny.py"
    path.write_text(TINY)
    return bq.Region(bq.source_of(path, "tune"), 4, 6)


def test_positions_are_the_replays_pauses_with_nearlines_layout(tiny: bq.Region) -> None:
    assert tiny.target == "    x = g(a)\n    return x + b"
    assert precompute.typed_positions(tiny) == [
        (4, "start"),
        (6, "word"),  # "x "
        (10, "word"),  # "g("
        (12, "word"),  # "a)"
        (17, "line"),  # Enter and the next line's indentation
        (24, "word"),  # "return "
        (26, "word"),  # "x "
    ]
    every = precompute.typed_positions(tiny, every_key=True)
    assert len(every) == 1 + 21  # the start, then after each of the 21 keystrokes (Enter one)
    assert set(precompute.typed_positions(tiny)) <= set(every)
    head, tail = "import os\n\n\ndef f(a, b):\n", "\n\n\ndef h():\n    pass\n"
    by_p = {p.p: p for p in precompute.region_positions(tiny, "tune")}
    word = by_p[6]
    assert word.prefix == head + "    x"  # the space before the cursor left out
    assert word.suffix == tail  # the region's other lines are not in the document
    assert (word.line, word.column, word.line_rest, word.max_tokens) == (4, 6, "", 32)
    line = by_p[17]
    assert line.prefix == head + "    x = g(a)\n"  # the auto-indent left out
    assert (line.line, line.column, line.max_tokens) == (5, 4, 64)
    assert line.pos_id == "tiny.py:6:5 line"
    assert line.key == key_of(head + "    x = g(a)\n", tail)
    assert line.prompt == f"<|fim_prefix|>{line.prefix}<|fim_suffix|>{tail}<|fim_middle|>"
    assert "\n" not in line.stop  # the cursor line has no rest
    # the regions the replay draws: the same rng string as run_replay
    drawn = precompute.positions_for([tiny.source], "tune", 1, 2)
    assert drawn and {p.split for p in drawn} == {"tune"}


def test_key_reads_the_end_of_the_prefix_and_the_start_of_the_suffix() -> None:
    assert key_of("x" * 5000 + PREFIX, SUFFIX) == key_of("y" + "x" * 4000 + PREFIX, SUFFIX)
    assert key_of(PREFIX, SUFFIX + "z" * 300) == key_of(PREFIX, SUFFIX + "z" * 300 + "more")
    assert key_of(PREFIX, SUFFIX) != key_of(PREFIX + " ", SUFFIX)


def test_table_is_saved_as_it_grows_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "answers.json"
    table = AnswerTable(path, {"model": "m"})
    table.add("k1", Entry('a "quoted"\nline', "tune", "f.py:1:1 start", "n1"))
    table.add("k2", Entry("", "held-out", "f.py:2:5 word"))
    again = AnswerTable.load(path)
    assert again.entries == table.entries and again.meta == {"model": "m"}
    assert again.is_near("n1") and "k2" in again and len(again) == 2


def test_cut_answer_as_llama_server() -> None:
    assert cut_answer("a + b\nprint(1)", ["\n"], 0) == "a + b"
    # n_indent: the first later line indented less ends it, after its indentation
    assert cut_answer("x = 1\n    y = 2\n  z\n", [], 4) == "x = 1\n    y = 2\n  "
    assert cut_answer("x = 1\n    y = 2", [], 4) == "x = 1\n    y = 2"


def table_with(answer: str) -> AnswerTable:
    table = AnswerTable()
    table.add(key_of(PREFIX, SUFFIX), Entry(answer, "tune", "t.py:2:11 word", near_of(PREFIX)))
    return table


@pytest.fixture
def replay() -> Iterator[ReplayRemote]:
    server = ReplayRemote(table_with(" a + b\n\nprint(a)"), latency_ms=150).start()
    yield server
    server.stop()


def engine_for(server: ReplayRemote):
    settings = RemoteSettings(kind="llama-server", url=server.url, model="qwen2.5-coder-1.5b")
    return make_remote(settings)


async def test_hit_after_its_latency_miss_empty_and_counted(replay: ReplayRemote) -> None:
    engine = engine_for(replay)
    try:
        assert (await engine.probe()).ok
        replay.tag = "tune"
        t0 = time.perf_counter()
        hit = await engine.complete(RemotePrompt(PREFIX, SUFFIX))
        took = time.perf_counter() - t0
        assert hit.text == " a + b\n\nprint(a)"
        assert 0.15 <= took < 1.0
        cut = await engine.complete(RemotePrompt(PREFIX, SUFFIX, stop=("\n",)))
        assert cut.text == " a + b"
        replay.tag = "held-out"
        t0 = time.perf_counter()
        miss = await engine.complete(RemotePrompt(PREFIX + " x", SUFFIX))
        assert miss.text == "" and time.perf_counter() - t0 >= 0.15
        near = await engine.complete(RemotePrompt(PREFIX, "\n" + SUFFIX))  # same prefix end
        assert near.text == ""
    finally:
        await engine.aclose()
    tune, held = replay.totals("tune"), replay.totals("held-out")
    assert (tune["hits"], tune["misses"], tune["answered"]) == (2, 0, 2)
    assert (held["hits"], held["misses"], held["near_misses"]) == (0, 2, 1)
    assert replay.totals()["health"] == 1
    assert [s["hit"] for s in replay.seen] == [True, True, False, False]


async def test_simulated_prompt_cache(replay: ReplayRemote) -> None:
    engine = engine_for(replay)
    extra = (("util.py", "def helper(): ...\n"),)
    try:
        first = await engine.complete(RemotePrompt(PREFIX, SUFFIX, blocks=extra))
        second = await engine.complete(RemotePrompt(PREFIX + " a", SUFFIX, blocks=extra))
    finally:
        await engine.aclose()
    prompt1 = "util.py" + "def helper(): ...\n" + PREFIX + SUFFIX
    prompt2 = "util.py" + "def helper(): ...\n" + PREFIX + " a" + SUFFIX
    assert first.prompt_tokens == round(len(prompt1) / 4) and first.cached_tokens == 0
    shared = len("util.py" + "def helper(): ...\n" + PREFIX)  # then " a" vs "\n\n"
    assert second.prompt_tokens == round(len(prompt2) / 4)
    assert second.cached_tokens == shared // 4
    assert replay.totals()["cached_tokens"] == shared // 4


async def test_a_client_that_goes_away_is_dropped() -> None:
    server = ReplayRemote(table_with(" a + b"), latency_ms=1000).start()
    engine = engine_for(server)
    try:
        task = asyncio.create_task(engine.complete(RemotePrompt(PREFIX, SUFFIX)))
        await asyncio.sleep(0.2)
        task.cancel()  # nearline cancels: the connection closes
        with pytest.raises(asyncio.CancelledError):
            await task
        give_up = time.perf_counter() + 2
        while server.totals()["dropped"] < 1 and time.perf_counter() < give_up:
            await asyncio.sleep(0.02)
        counts = server.totals()
        assert (counts["dropped"], counts["answered"], counts["hits"]) == (1, 0, 1)
        # the server goes on answering others
        assert (await engine.complete(RemotePrompt(PREFIX, SUFFIX))).text == " a + b"
    finally:
        await engine.aclose()
        server.stop()


def test_parse_args_and_arms() -> None:
    args = bench_remote.parse_args(
        ["--arms", "local,hedged,remote-only@80", "--latencies", "20,50", "--quick"]
        + ["--split", "tune", "--remote-set", "slow_ms=500"]
    )
    assert [a.name for a in args.arm_list] == ["local", "hedged@20", "hedged@50", "remote-only@80"]
    assert (args.regions, args.lines, args.split) == (2, 3, "tune")
    assert args.remote_set == {"slow_ms": 500}
    only = args.arm_list[-1]
    assert (only.mode, only.latency_ms) == ("only", 80)
    options = arms.remote_options(only, "http://127.0.0.1:9", args.remote_set)
    assert options == {
        "completion": {
            "remote": {
                "kind": "llama-server",
                "url": "http://127.0.0.1:9",
                "model": "qwen2.5-coder-1.5b",
                "mode": "only",
                "slow_ms": 500,
            }
        }
    }
    assert arms.remote_options(args.arm_list[0], "", {}) is None
    default = bench_remote.parse_args([])
    assert [a.name for a in default.arm_list] == [
        "local",
        "remote-only@30",
        "hedged@30",
        "hedged@80",
        "hedged@200",
        "hedged-slow",
        "hedged-down",
    ]
    assert default.arm_list[-2].latency_ms == 1000 and default.arm_list[-1].down
    real = arms.arm_named("real")
    assert real is not None and real.real
    assert arms.remote_options(real, "http://127.0.0.1:9/v1", {})["completion"]["remote"][
        "kind"
    ] == ("openai")
    with pytest.raises(SystemExit):
        bench_remote.parse_args(["--arms", "local,nope"])
