"""The project map at the head of cloud prompts: deterministic, within its budget, without
local-only or secret-bearing files, stable between rebuilds; and the prompt it goes into, as
the Anthropic engine sends it (cache breakpoints after the system prompt and the map)."""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import pytest

from nearline.config import parse_settings
from nearline.errors import ConfigError
from nearline.escalation.escalator import Document, Escalator, Task
from nearline.escalation.project_map import (
    HEADER,
    MapHolder,
    MapOptions,
    estimate_tokens,
    render_map,
)
from nearline.escalation.prompts import (
    POINT_AT_LINES,
    SYSTEM,
    Selection,
    SourceFile,
    build_messages,
    project_cache_key,
)
from nearline.escalation.results import Answered, EscalationResult
from nearline.index import FileEntry, scan_text
from nearline.tasks import TaskKind
from support.engines import close_engines, server, servers, transcript
from support.fake_provider import RecordingProvider, Reply, ScriptedServer

__all__ = ["close_engines", "server", "servers"]

TOKEN = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"


def module(i: int, rng: random.Random) -> str:
    funcs = "\n\n".join(
        f'def f{i}_{k}(a: int, b: str = "x") -> int:\n    """Do thing {k} of {i}."""\n'
        "    return a\n"
        for k in range(rng.randint(1, 6))
    )
    return f"import pkg.mod{(i + 1) % 7}\n\nLIMIT: int = 3\n\n\nclass C{i}:\n    x: int\n\n{funcs}"


def entries(n: int = 30, seed: int = 1) -> list[FileEntry]:
    rng = random.Random(seed)
    out = [scan_text(f"pkg/mod{i}.py", module(i, rng), "python") for i in range(n)]
    out.append(scan_text("web/app.ts", "export const a = 1;\n", "typescript"))
    return out


def test_the_map_is_deterministic_and_sorted() -> None:
    es = entries()
    first = render_map(es, 4000)
    shuffled = list(es)
    random.Random(7).shuffle(shuffled)
    assert render_map(shuffled, 4000).text == first.text
    paths = [line for line in first.text.splitlines() if line.startswith(("pkg/", "web/"))]
    assert paths == sorted(paths) and len(paths) == len(es)
    assert first.text.startswith(HEADER)
    assert "  def f1_0(a: int, b: str = 'x') -> int  # Do thing 0 of 1." in first.text
    assert "web/app.ts\n" in first.text  # no symbols: the path only


def test_the_map_keeps_to_its_budget_dropping_detail_first() -> None:
    es = entries(60)
    full = render_map(es, 100_000)
    assert full.detailed == 60 and "# Do thing" in full.text
    for budget in (1000, 1500, 3000):
        m = render_map(es, budget)
        assert estimate_tokens(m.text) <= budget
        assert m.files == len(es) and m.detailed < 60
    tight = render_map(es, 200)  # not even every path fits
    assert estimate_tokens(tight.text) <= 200
    assert "more files not listed" in tight.text and tight.files < len(es)


def test_most_imported_files_get_detail_first() -> None:
    base = [scan_text(f"pkg/m{i}.py", f"def g{i}(x):\n    return x\n", "python") for i in range(40)]
    users = [scan_text(f"app/u{i}.py", "import pkg.m39\n", "python") for i in range(3)]
    m = render_map(base + users, 210)
    assert "def g39(x)" in m.text  # imported three times: first to get its definitions
    assert "def g38(x)" not in m.text and 0 < m.detailed < 10


def test_local_only_and_secret_bearing_files_stay_out() -> None:
    leaky = scan_text("pkg/leaky.py", f'def call():\n    """Uses {TOKEN}."""\n', "python")
    private = scan_text("secrets/keys.py", "def load():\n    pass\n", "python")
    plain = scan_text("pkg/ok.py", "def fine():\n    pass\n", "python")
    m = render_map([leaky, private, plain], 4000, local_only=("secrets/**",))
    assert "pkg/ok.py" in m.text
    assert "leaky" not in m.text and TOKEN not in m.text and "secrets/" not in m.text
    assert m.left_out == 2 and m.files == 1
    assert "leaky" in render_map([leaky], 4000, scan=False).text  # the scan is what removed it


def test_the_holder_keeps_the_same_bytes_until_the_period_ends_or_much_changes() -> None:
    current = entries(10)
    holder = MapHolder(lambda: current)
    opts = MapOptions(4000, 60.0, 0.2, (), True)
    hour = 3600.0 * 1000
    first = holder.get(opts, hour + 10)
    # One file of eleven changes (9%): the same map, bytes and all, within the hour.
    current = [*current[:8], scan_text("pkg/mod8.py", "def changed():\n    pass\n", "python")]
    current += entries(10)[9:]
    assert holder.get(opts, hour + 3000) is first and holder.builds == 1
    # The next hour (a boundary every machine shares): rebuilt from the current entries.
    later = holder.get(opts, hour + 3600)
    assert holder.builds == 2 and "def changed()" in later.text
    # A third of the files change: rebuilt at once.
    current = [scan_text(e.path, "def moved():\n    pass\n", "python") for e in current[:4]]
    current += entries(10)[4:]
    assert "def moved()" in holder.get(opts, hour + 3700).text and holder.builds == 3
    # Other options (a new budget): rebuilt.
    smaller = MapOptions(2000, 60.0, 0.2, (), True)
    kept = holder.get(smaller, hour + 3800)
    assert holder.builds == 4
    # Hours later, nothing changed: the same map (a rebuild would make the same bytes).
    assert holder.get(smaller, hour + 5 * 3600) is kept and holder.builds == 4


def test_prompt_layout_puts_the_stable_blocks_first() -> None:
    messages = build_messages("explain", [], None, "why?", project_map="MAP")
    assert [(m.role, m.cache) for m in messages] == [
        ("system", True),
        ("user", True),
        ("user", False),
        ("user", False),
    ]
    assert messages[0].content == SYSTEM and messages[1].content == "MAP"
    assert [m.cache for m in build_messages("explain", [], None, "why?")] == [True, False, False]
    # The same key on every machine of the team: the name's sha256, not a per-process hash.
    assert project_cache_key("acme") == "nearline-822b33ad87c148a0"
    assert project_cache_key("other") != project_cache_key("acme")


async def explain_through_claude(
    server: ScriptedServer, tmp_path: Path, index: list[FileEntry], **extra: object
) -> tuple[EscalationResult, dict[str, Any]]:
    """One small explain through an Anthropic provider (``server``) with this project index;
    the result and the request's body."""
    server.script(
        Reply(chunks=transcript("anthropic_cached.sse"), content_type="text/event-stream")
    )
    settings = parse_settings(
        {
            "providers": {
                "claude": {"kind": "anthropic", "base_url": server.url, "model": "claude-x"}
            },
            "routing": {"tiers": {"value": ["claude"], "flagship": ["claude"]}},
            **extra,
        }
    )
    esc = Escalator(settings, tmp_path, lambda: Path("m.gguf"), project_entries=lambda: index)
    path = tmp_path / "main.py"
    doc = Document(path.as_uri(), str(path), "x = 1\n", 1)
    result = await esc.run(Task(TaskKind.EXPLAIN, doc.uri, 0, 0), [doc])
    await esc.aclose()
    return result, server.received[-1].json


async def test_anthropic_request_has_breakpoints_after_system_and_map(
    server: ScriptedServer, tmp_path: Path
) -> None:
    index = [
        scan_text("pkg/api.py", 'def serve(port: int) -> None:\n    """Serve."""\n', "python"),
        scan_text("secrets/vault.py", "def unlock():\n    pass\n", "python"),
    ]
    result, body = await explain_through_claude(
        server,
        tmp_path,
        index,
        privacy={"local_only": ["secrets/**"]},
        project_map={"tiers": ["value", "flagship"]},
    )
    assert isinstance(result, Answered), result
    ephemeral = {"type": "ephemeral", "ttl": "1h"}  # the map's lifetime, the system's too
    assert body["system"] == [{"type": "text", "text": SYSTEM, "cache_control": ephemeral}]
    blocks = body["messages"][0]["content"]
    assert blocks[0]["cache_control"] == ephemeral
    assert (
        blocks[0]["text"].startswith(HEADER) and "def serve(port: int) -> None" in blocks[0]["text"]
    )
    assert "vault" not in blocks[0]["text"]
    assert [("cache_control" in b) for b in blocks[1:]] == [False, False]
    assert "x = 1" in blocks[1]["text"]
    assert blocks[2]["text"].endswith("Selection: main.py, lines 1-1:\n```\nx = 1\n```")

    _, five = await explain_through_claude(
        server, tmp_path, index, project_map={"tiers": ["value"], "cache_ttl": "5m"}
    )
    assert five["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert five["messages"][0]["content"][0]["cache_control"] == {"type": "ephemeral"}


def test_the_map_s_lifetime_goes_on_every_breakpoint_before_it() -> None:
    hour = build_messages("explain", [], None, "why?", project_map="MAP", cache_ttl="1h")
    assert [(m.cache, m.ttl) for m in hour] == [
        (True, "1h"),
        (True, "1h"),
        (False, ""),
        (False, ""),
    ]
    five = build_messages("explain", [], None, "why?", project_map="MAP", cache_ttl="5m")
    assert [m.ttl for m in five] == ["", "", "", ""]
    no_map = build_messages("explain", [], None, "why?", cache_ttl="1h")
    assert [m.ttl for m in no_map] == ["", "", ""]  # the system prompt alone: the default


def test_a_long_selection_in_a_file_the_prompt_carries_is_pointed_at() -> None:
    body = "".join(f"    total += {i}\n" for i in range(POINT_AT_LINES - 2))
    selected = f"def b():\n{body}    return total\n"
    text = "def a():\n    return 1\n\n\n" + selected
    sel = Selection("pkg/m.py", 4, 4 + POINT_AT_LINES - 1, selected)
    carried = [SourceFile("pkg/m.py", text)]
    pointed = build_messages("refactor", carried, sel)[-1].content
    assert (
        f"Selection: pkg/m.py, lines 5-{4 + POINT_AT_LINES} (in the file above, "
        "from `def b():` to `return total`)."
    ) in pointed
    assert "total += 1" not in pointed
    for files in ([], [SourceFile("pkg/other.py", text)], [SourceFile("pkg/m.py", "changed\n")]):
        sent = build_messages("refactor", files, sel)[-1].content
        assert f"```\n{selected}```" in sent
    short = Selection("pkg/m.py", 4, 5, "def b():\n    total = 0\n")  # anchors the diff
    assert (
        "```\ndef b():\n    total = 0\n```"
        in build_messages("refactor", carried, short)[-1].content
    )


@pytest.mark.parametrize("price", [0.0, 3e-6])
async def test_a_long_selection_is_pointed_at_only_for_a_provider_that_bills_input(
    tmp_path: Path, price: float
) -> None:
    """Pointing saves input tokens at a cost in diffs that apply (scripts/bench_selection.py):
    a provider that bills nothing for input (a team's own server) gets the selection again."""
    provider = RecordingProvider().start()
    try:
        facts: dict[str, object] = {"kind": "openai", "base_url": provider.url, "model": "m"}
        if price:
            facts["input_cost_per_token"] = price
        settings = parse_settings(
            {"providers": {"p": facts}, "routing": {"tiers": {"value": ["p"], "flagship": ["p"]}}}
        )
        body = "".join(f"    total += {i}\n" for i in range(POINT_AT_LINES))
        text = f"def b():\n    total = 0\n{body}    return total\n"
        path = tmp_path / "m.py"
        doc = Document(path.as_uri(), str(path), text, 1)
        last = POINT_AT_LINES + 2
        esc = Escalator(settings, tmp_path, lambda: Path("m.gguf"), project_entries=list)
        decision = esc.decide(Task(TaskKind.REFACTOR, doc.uri, 0, last, "rename total"), [doc])
        await esc.run(Task(TaskKind.REFACTOR, doc.uri, 0, last, "rename total"), [doc])
        await esc.aclose()
    finally:
        provider.stop()
    request = provider.bodies[-1]["messages"][-1]["content"]
    assert decision.bills_input is bool(price)
    if price:
        assert f"lines 1-{last + 1} (in the file above" in request and "total += 1" not in request
    else:
        assert f"lines 1-{last + 1}:\n```\n{text.rstrip()}\n```" in request
    # The estimate counts what is sent: the selection once more for the free provider.
    selection_tokens = decision.est_tokens - (
        esc.decide(Task(TaskKind.REFACTOR, doc.uri, 0, 1, "rename total"), [doc]).est_tokens
    )
    assert (selection_tokens > 100) is not bool(price), selection_tokens


def test_map_settings_are_checked() -> None:
    assert parse_settings({}).project_map.max_tokens == 8000
    for key, value, allowed in (
        ("max_tokens", 10, "1000..100000"),
        ("refresh_minutes", 0, "1..1440"),
        ("rebuild_changed_share", 0.0, "(0, 1]"),
    ):
        with pytest.raises(ConfigError, match=rf"project_map\.{key} = .*{re.escape(allowed)}"):
            parse_settings({"project_map": {key: value}}, "t.toml")


async def test_only_the_tiers_named_get_the_map(server: ScriptedServer, tmp_path: Path) -> None:
    index = [scan_text("pkg/api.py", "def serve(port: int) -> None: ...\n", "python")]
    result, body = await explain_through_claude(server, tmp_path, index)  # default tiers
    assert isinstance(result, Answered) and result.decision.tier == "value"  # a small explain
    texts = [b["text"] for b in body["messages"][0]["content"]]
    assert not any("def serve" in t for t in texts)
    assert parse_settings({}).project_map.tiers == ("flagship",)
