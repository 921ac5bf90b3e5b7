"""Other tools' logs read into usage records (``accounting.imports``): Claude Code's and Codex's
JSONL in the shapes their documentation and source show (these fixtures are written here, not
anyone's logs). Streamed duplicates, copies, a file that grew, bad lines, and privacy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from nearline.accounting.imports import SOURCES, claude_code, codex
from nearline.accounting.imports.records import Usage

SECRET = "sk-ant-api03-DO-NOT-LEAK-0123456789"
CODE = "def leak(password):\n    return password"
PATH = "/home/ada/src/acme-billing/secret_plans.py"


def jsonl(path: Path, *lines: Any, tail: str = "") -> Path:
    with path.open("a", encoding="utf-8") as f:
        for line in lines:
            f.write((line if isinstance(line, str) else json.dumps(line)) + "\n")
        f.write(tail)
    return path


def assistant(mid: str, output: int, *, ts: str = "2026-11-02T10:00:00.000Z", **kw: Any) -> dict:
    return {
        "type": "assistant",
        "cwd": "/home/ada/src/acme-billing",
        "sessionId": "s-1",
        "requestId": f"req_{mid}",
        "timestamp": ts,
        "message": {
            "id": mid,
            "model": kw.pop("model", "claude-sonnet-4-5-20250929"),
            "role": "assistant",
            "content": [{"type": "text", "text": f"{SECRET} {CODE} {PATH}"}],
            "usage": {
                "input_tokens": 4,
                "cache_creation_input_tokens": 1000,
                "cache_read_input_tokens": 20000,
                "output_tokens": output,
            },
        },
        **kw,
    }


def records(source: str, path: Path, start: int = 0, **kw: Any) -> tuple[list[Usage], Any]:
    found, read = SOURCES[source].read(path, start, **kw)
    return list(found), read


def test_claude_code_one_record_per_message_the_biggest(tmp_path: Path) -> None:
    log = jsonl(
        tmp_path / "s-1.jsonl",
        {"type": "user", "message": {"role": "user", "content": f"{SECRET}\n{CODE}"}, "cwd": PATH},
        assistant("msg_a", 1),
        assistant("msg_a", 50),
        assistant("msg_a", 120),  # streaming: the same message, its counts growing
        assistant("msg_b", 7, costUSD=0.0123),
        assistant("msg_c", 3, model="<synthetic>"),
        "{not json",
        {"type": "summary", "summary": CODE},
        {"type": "assistant", "message": {"id": "msg_d", "content": CODE}},  # no usage
        tail='{"type": "assistant", "message": {"id": "msg_e"',  # still being written
    )
    found, read = records("claude-code", log)
    assert [(r.key, r.output_tokens) for r in found] == [
        ("msg_a:req_msg_a", 120),
        ("msg_b:req_msg_b", 7),
    ]
    a, b = found
    assert (a.input_tokens, a.cache_write_tokens, a.cache_read_tokens) == (4, 1000, 20000)
    assert a.project == "acme-billing" and a.model == "claude-sonnet-4-5-20250929"
    assert a.cost_usd is None and b.cost_usd == 0.0123
    assert read.skipped == {"lines not JSON": 1, "assistant lines without usage": 1}
    assert read.end == log.stat().st_size - len('{"type": "assistant", "message": {"id": "msg_e"')
    assert "skipped 1 assistant lines without usage, 1 lines not JSON" in read.summary(len(found))

    again, _ = records("claude-code", log, read.end)  # nothing new
    assert again == []
    jsonl(log, tail=', "usage": {"output_tokens": 9}}, "timestamp": "2026-11-02T11:00:00Z"}\n')
    grown, _ = records("claude-code", log, read.end)
    assert [r.key for r in grown] == ["msg_e"] and grown[0].output_tokens == 9


def test_claude_code_an_open_session_keeps_its_last_message_for_later(tmp_path: Path) -> None:
    log = jsonl(tmp_path / "s.jsonl", assistant("msg_a", 5), assistant("msg_b", 1))
    first, read = records("claude-code", log, hold_last=True)
    assert [r.key for r in first] == ["msg_a:req_msg_a"]
    jsonl(log, assistant("msg_b", 80))  # the answer went on streaming
    later, _ = records("claude-code", log, read.end)
    assert [(r.key, r.output_tokens) for r in later] == [("msg_b:req_msg_b", 80)]


def test_claude_code_a_copy_of_a_session_has_the_same_keys(tmp_path: Path) -> None:
    lines = [assistant("msg_a", 5), assistant("msg_b", 6)]
    one = jsonl(tmp_path / "a.jsonl", *lines)
    copy = jsonl(tmp_path / "copy.jsonl", *lines)
    assert [r.key for r in records("claude-code", one)[0]] == [
        r.key for r in records("claude-code", copy)[0]
    ]


def token_count(
    total: tuple[int, int, int, int], last: tuple[int, int, int, int] | None, ts: str
) -> dict:
    def counts(v: tuple[int, int, int, int]) -> dict:
        return {
            "input_tokens": v[0],
            "cached_input_tokens": v[1],
            "output_tokens": v[2],
            "reasoning_output_tokens": v[3],
            "total_tokens": v[0] + v[2],
        }

    info: dict[str, Any] = {"total_token_usage": counts(total)}
    if last is not None:
        info["last_token_usage"] = counts(last)
    return {"timestamp": ts, "type": "event_msg", "payload": {"type": "token_count", "info": info}}


def test_codex_turns_from_token_counts(tmp_path: Path) -> None:
    log = jsonl(
        tmp_path / "rollout-2026-11-02T10-00-00-abc.jsonl",
        {
            "timestamp": "2026-11-02T10:00:00Z",
            "type": "session_meta",
            "payload": {"id": "abc", "cwd": "/home/ada/src/acme-billing", "instructions": CODE},
        },
        {
            "timestamp": "2026-11-02T10:00:01Z",
            "type": "response_item",
            "payload": {"type": "message", "content": [{"text": SECRET}]},
        },
        {
            "timestamp": "2026-11-02T10:00:01Z",
            "type": "event_msg",
            "payload": {"type": "token_count", "info": None, "rate_limits": {}},
        },
        token_count(
            (1000, 800, 50, 20), (1000, 800, 50, 20), "2026-11-02T10:00:02Z"
        ),  # no model yet
        {
            "timestamp": "2026-11-02T10:00:03Z",
            "type": "turn_context",
            "payload": {"model": "gpt-5-codex", "cwd": "/home/ada/src/acme-billing"},
        },
        token_count((3000, 2400, 150, 60), (2000, 1600, 100, 40), "2026-11-02T10:00:04Z"),
        token_count((3000, 2400, 150, 60), (2000, 1600, 100, 40), "2026-11-02T10:00:04Z"),  # again
        token_count((4000, 3000, 190, 70), None, "2026-11-02T10:00:05Z"),  # total only
        "garbage",
    )
    found, read = records("codex", log)
    assert [(r.input_tokens, r.cache_read_tokens, r.output_tokens) for r in found] == [
        (400, 1600, 100),  # 2000 in, 1600 of them cached; reasoning is part of the 100
        (400, 600, 40),  # the growth of the total
    ]
    assert {r.model for r in found} == {"gpt-5-codex"} and {r.project for r in found} == {
        "acme-billing"
    }
    assert found[0].key == "abc:3150"
    assert read.skipped == {
        "token counts without tokens, a time or a model": 1,
        "lines not JSON": 1,
    }
    assert records("codex", log, read.end)[0] == []
    jsonl(log, token_count((5000, 3500, 230, 80), (1000, 500, 40, 10), "2026-11-02T10:01:00Z"))
    grown, _ = records("codex", log, read.end)
    assert [(r.input_tokens, r.cache_read_tokens, r.output_tokens) for r in grown] == [
        (500, 500, 40)
    ]


def test_nothing_but_the_allow_listed_fields_is_read(tmp_path: Path) -> None:
    claude = jsonl(tmp_path / "c.jsonl", assistant("msg_a", 5))
    rollout = tmp_path / "rollout.jsonl"
    jsonl(
        rollout,
        {"type": "session_meta", "payload": {"id": "abc", "cwd": PATH, "instructions": SECRET}},
        {"type": "turn_context", "payload": {"model": "gpt-5-codex"}},
        token_count((10, 0, 5, 0), (10, 0, 5, 0), "2026-11-02T10:00:04Z"),
    )
    found = records("claude-code", claude)[0] + records("codex", rollout)[0]
    assert len(found) == 2
    for record in found:
        for value in vars(record).values():
            said = str(value)
            assert SECRET not in said and "def leak" not in said and "/home/ada" not in said
    assert found[1].project == "secret_plans.py"  # a folder's name, never its path


def test_where_each_tool_keeps_its_logs() -> None:
    assert claude_code.roots({"HOME": "/h"}) == [
        Path("/h/.claude/projects"),
        Path("/h/.config/claude/projects"),
    ]
    assert claude_code.roots({"CLAUDE_CONFIG_DIR": "/a,/b"}) == [
        Path("/a/projects"),
        Path("/b/projects"),
    ]
    assert codex.roots({"HOME": "/h"}) == [Path("/h/.codex/sessions")]
    assert codex.roots({"CODEX_HOME": "/c"}) == [Path("/c/sessions")]


def test_an_overlong_line_is_skipped_whole(tmp_path: Path, monkeypatch: Any) -> None:
    from nearline.accounting.imports import records as module

    monkeypatch.setattr(module, "MAX_LINE", 1000)
    log = jsonl(tmp_path / "s.jsonl", assistant("msg_a", 5))
    first_end = log.stat().st_size
    jsonl(log, {"type": "user", "message": {"content": "x" * 5000}}, assistant("msg_b", 6))
    found, read = records("claude-code", log, first_end)
    assert [r.key for r in found] == ["msg_b:req_msg_b"]
    assert read.skipped == {"lines too long": 1} and read.end == log.stat().st_size
    jsonl(log, tail='{"type": "user", "message": "' + "y" * 5000)  # overlong, still written
    assert records("claude-code", log, read.end)[1].end == read.end


def gemini_response(n: int, *, ts: str, prompt: int = 12840, **attributes: Any) -> str:
    """One API response as Gemini CLI's file exporter writes it: pretty-printed, 2-space."""
    record = {
        "attributes": {
            "session.id": "6f1c2a8e",
            "event.name": "gemini_cli.api_response",
            "event.timestamp": ts,
            "model": "gemini-2.5-pro",
            "input_token_count": prompt,
            "output_token_count": 412,
            "cached_content_token_count": 8192,
            "thoughts_token_count": 733,
            "tool_token_count": 10,
            "total_token_count": prompt + 412 + 733 + 10,
            "prompt_id": f"6f1c2a8e########{n}",
            "response_text": f"{SECRET} {CODE}",
            **attributes,
        },
        "hrTime": [1773480413, 124000000],
        "_body": f"API response from gemini-2.5-pro. {PATH}",
        "resource": {"_rawAttributes": [["service.name", "gemini-cli"]]},
    }
    return json.dumps(record, indent=2)


def test_gemini_cli_telemetry_records_of_pretty_printed_json(tmp_path: Path) -> None:
    other = {
        "attributes": {"event.name": "gen_ai.client.inference.operation.details"},
        "hrTime": [1, 2],
    }
    log = jsonl(
        tmp_path / "telemetry.log",
        gemini_response(1, ts="2026-11-02T09:26:53.123Z"),
        json.dumps(other, indent=2),  # the same response again, in other words: not counted
        json.dumps({"scopeMetrics": [{"metrics": []}]}),  # a metric dump, on one line
        "garbage between records",
        gemini_response(2, ts="2026-11-02T09:27:00.000Z", model=None),
        gemini_response(3, ts="2026-11-02T09:28:00.000Z"),
        tail=gemini_response(4, ts="2026-11-02T09:29:00.000Z")[:200],  # still being written
    )
    found, read = records("gemini-cli", log)
    assert [(r.input_tokens, r.cache_read_tokens, r.output_tokens) for r in found] == [
        (12840 - 8192 + 10, 8192, 412 + 733),  # cached input apart, thinking in the output
        (12840 - 8192 + 10, 8192, 412 + 733),
    ]
    assert found[0].key == "6f1c2a8e:6f1c2a8e########1:2026-11-02T09:26:53.123Z:gemini-2.5-pro"
    assert read.skipped == {
        "lines outside a record": 1,
        "API responses without a time, a model or token counts": 1,
    }
    with log.open("a") as f:
        f.write(gemini_response(4, ts="2026-11-02T09:29:00.000Z")[200:] + "\n")
    grown, _ = records("gemini-cli", log, read.end)
    assert [r.key.split(":")[1] for r in grown] == ["6f1c2a8e########4"]
    for record in found:
        assert SECRET not in str(vars(record)) and "/home/ada" not in str(vars(record))


def test_claude_code_s_one_hour_cache_writes_are_told_apart(tmp_path: Path) -> None:
    line = assistant("msg_h", 5)
    line["message"]["usage"]["cache_creation"] = {
        "ephemeral_5m_input_tokens": 200,
        "ephemeral_1h_input_tokens": 800,
    }
    (found,), _ = records("claude-code", jsonl(tmp_path / "h.jsonl", line))
    assert (found.cache_write_tokens, found.cache_write_1h_tokens) == (1000, 800)


def test_gemini_cli_skips_a_line_too_long_and_reads_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nearline.accounting.imports import gemini_cli
    from nearline.accounting.imports import records as record_module

    monkeypatch.setattr(gemini_cli, "MAX_LINE", 4096)
    monkeypatch.setattr(record_module, "MAX_LINE", 4096)
    log = jsonl(
        tmp_path / "telemetry.log",
        gemini_response(1, ts="2026-11-02T09:26:53.123Z"),
        "x" * 10_000,  # a prompt logged whole, on one line
        gemini_response(2, ts="2026-11-02T09:27:53.123Z"),
    )
    found, read = records("gemini-cli", log)
    assert len(found) == 2 and read.skipped == {"lines too long": 1}
    assert read.end == log.stat().st_size
