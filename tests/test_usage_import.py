"""``nearline usage import``: other tools' logs into the ledger, end to end through the CLI, with
totals that equal the fixtures' sums exactly, however often and from however many copies the
logs are read. The fixtures are written here in the shapes the tools' documentation and source
show (never anyone's real logs)."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from nearline.accounting.entries import CostSource
from nearline.accounting.ledger import Ledger
from nearline.accounting.prices import PriceTable, Tokens
from nearline.cli import main
from test_imports import CODE, PATH, SECRET, assistant, jsonl, token_count

SONNET = PriceTable().get("claude-sonnet-4-5")
OPUS = PriceTable().get("claude-opus-4-1")
GPT5 = PriceTable().get("gpt-5")
WINDOW = ["--since", "2026-11-01", "--until", "2026-11-30"]


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home with the tools' folders, an isolated ledger and config; the CLI runs here."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("CLAUDE_CONFIG_DIR", raising=False)
    monkeypatch.delenv("CODEX_HOME", raising=False)
    monkeypatch.delenv("GEMINI_TELEMETRY_OUTFILE", raising=False)
    monkeypatch.setenv("NEARLINE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("NEARLINE_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.setenv("NEARLINE_LEDGER", str(tmp_path / "usage.db"))
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def aged(path: Path, seconds: float = 3600) -> Path:
    """A log no session writes to any more."""
    then = time.time() - seconds
    os.utime(path, (then, then))
    return path


def claude_logs(home: Path) -> list[Path]:
    acme = home / ".claude" / "projects" / "-home-ada-src-acme"
    beta = home / ".config" / "claude" / "projects" / "-home-ada-src-beta"
    acme.mkdir(parents=True)
    beta.mkdir(parents=True)
    session = [
        {"type": "user", "message": {"role": "user", "content": f"{SECRET}\n{CODE}"}, "cwd": PATH},
        assistant("msg_a", 1, cwd="/home/ada/src/acme"),
        assistant("msg_a", 50, cwd="/home/ada/src/acme"),
        assistant("msg_a", 120, cwd="/home/ada/src/acme"),  # streamed: one message
        assistant("msg_b", 7, costUSD=0.0123, cwd="/home/ada/src/acme"),
        "{not json",
    ]
    one = jsonl(acme / "s-1.jsonl", *session)
    copy = jsonl(acme / "s-1-copy.jsonl", *session)  # a copy of the same session
    other = jsonl(
        beta / "s-2.jsonl",
        assistant("msg_c", 30, model="claude-opus-4-1-20250805", cwd="/home/ada/src/beta"),
        tail='{"type": "assistant", "message": {"id": "msg_x"',  # a torn last line
    )
    return [aged(p) for p in (one, copy, other)]


def claude_expected() -> dict[str, Any]:
    """The fixtures' sums, by hand: msg_a and msg_c priced, msg_b at its own figure."""
    assert SONNET is not None and OPUS is not None
    a = SONNET.cost(Tokens(input=4, cache_read=20000, cache_write=1000, output=120))
    c = OPUS.cost(Tokens(input=4, cache_read=20000, cache_write=1000, output=30))
    return {
        "requests": 3,
        "input_tokens": 12,
        "cache_write_tokens": 3000,
        "cache_read_tokens": 60000,
        "output_tokens": 157,
        "cost_usd": pytest.approx(a + 0.0123 + c, abs=1e-12),
    }


def codex_log(home: Path) -> Path:
    sessions = home / ".codex" / "sessions" / "2026" / "11" / "02"
    sessions.mkdir(parents=True)
    return aged(
        jsonl(
            sessions / "rollout-2026-11-02T10-00-00-abc.jsonl",
            {
                "timestamp": "2026-11-02T10:00:00Z",
                "type": "session_meta",
                "payload": {"id": "abc", "cwd": "/home/ada/src/acme", "instructions": CODE},
            },
            {
                "timestamp": "2026-11-02T10:00:01Z",
                "type": "turn_context",
                "payload": {"model": "gpt-5", "cwd": "/home/ada/src/acme"},
            },
            token_count((1000, 200, 50, 20), (1000, 200, 50, 20), "2026-11-02T10:00:02Z"),
            token_count((4000, 2700, 130, 20), (3000, 2500, 80, 0), "2026-11-02T10:00:04Z"),
        )
    )


def codex_expected() -> dict[str, Any]:
    assert GPT5 is not None
    cost = GPT5.cost(Tokens(input=800, cache_read=200, output=50)) + GPT5.cost(
        Tokens(input=500, cache_read=2500, output=80)
    )
    return {
        "requests": 2,
        "input_tokens": 1300,
        "cache_write_tokens": 0,
        "cache_read_tokens": 2700,
        "output_tokens": 130,
        "cost_usd": pytest.approx(cost, abs=1e-12),
    }


def by_client(capsys: pytest.CaptureFixture[str]) -> dict[str, dict[str, Any]]:
    capsys.readouterr()
    assert main(["usage", "--by", "client", "--json", *WINDOW]) == 0
    groups = json.loads(capsys.readouterr().out)["groups"]
    keys = ("requests", *claude_expected())
    return {g["key"]: {k: g[k] for k in keys if k != "requests"} | {"requests": g["requests"]}
            for g in groups}  # fmt: skip


def imported(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    capsys.readouterr()
    assert main(["usage", "import", *argv]) == 0
    return capsys.readouterr().out


def test_claude_code_and_codex_totals_equal_the_fixtures_twice(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    claude_logs(home)
    codex_log(home)
    said = imported(capsys, "claude-code")
    assert "s-1.jsonl: 2 records from 6 lines; skipped 1 lines not JSON" in said
    assert "claude-code: 5 records in 3 files read (0 unchanged), 3 rows added or updated" in said
    assert "codex: 2 records in 1 files read" in imported(capsys, "codex")
    expected = {"claude-code": claude_expected(), "codex": codex_expected()}
    assert by_client(capsys) == expected

    again = imported(capsys, "claude-code")
    # s-2.jsonl ends in a torn line: looked at again (from where it was left), nothing new
    assert "claude-code: 0 records in 1 files read (2 unchanged), 0 rows added" in again
    imported(capsys, "codex")
    assert by_client(capsys) == expected

    # every file read again from its start (the positions lost): still once each
    with sqlite3.connect(home / "usage.db") as conn:
        conn.execute("DELETE FROM import_files")
    imported(capsys, "claude-code")
    imported(capsys, "codex")
    assert by_client(capsys) == expected


def test_a_log_that_grew_and_a_message_still_streaming(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    one, _, other = claude_logs(home)
    imported(capsys, "claude-code")
    # the torn line is finished, and the session goes on: a message streamed in two imports
    jsonl(other, tail=', "usage": {"output_tokens": 9}}, "timestamp": "2026-11-02T11:00:00Z"}\n')
    jsonl(other, assistant("msg_d", 5), assistant("msg_d", 10))  # the session is open
    said = imported(capsys, "claude-code")
    assert "s-2.jsonl: 1 records" in said  # msg_x; msg_d, the open session's last, waits
    assert "no price for (no model)" in said  # the torn line had none
    jsonl(other, assistant("msg_d", 400))  # its final count, in the next import
    aged(other)
    imported(capsys, "claude-code")
    found = by_client(capsys)["claude-code"]
    assert found["requests"] == 5
    assert found["output_tokens"] == 157 + 9 + 400
    with sqlite3.connect(home / "usage.db") as conn:
        outputs = conn.execute("SELECT output_tokens FROM requests ORDER BY output_tokens")
        assert [r[0] for r in outputs] == [7, 9, 30, 120, 400]
    shutil.copy(one, one.with_name("s-1-again.jsonl"))  # yet another copy
    imported(capsys, "claude-code")
    assert by_client(capsys)["claude-code"]["requests"] == 5


def test_nothing_but_the_allow_listed_fields_reaches_the_ledger(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    claude_logs(home)
    codex_log(home)
    imported(capsys, "claude-code")
    imported(capsys, "codex")
    Ledger(home / "usage.db").close()  # everything checkpointed into the file
    data = (home / "usage.db").read_bytes()
    for leak in (SECRET, "def leak", "password", "secret_plans", "/home/ada", "instructions"):
        assert leak.encode() not in data
    with sqlite3.connect(home / "usage.db") as conn:
        conn.row_factory = sqlite3.Row
        found = [dict(r) for r in conn.execute("SELECT * FROM requests ORDER BY ts, uid")]
    assert {r["project"] for r in found} == {"acme", "beta"}
    assert {r["project_root"] for r in found} == {""}
    assert {(r["client"], r["task"], r["provider"], r["cloud"]) for r in found} == {
        ("claude-code", "imported", "anthropic", 0),
        ("codex", "imported", "openai", 0),
    }
    assert sorted(r["cost_source"] for r in found) == sorted(
        [CostSource.TOOL, *[CostSource.PRICE_TABLE] * 4]
    )


def test_imported_rows_spend_no_nearline_budget(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = jsonl(
        home / "today.jsonl",
        assistant("msg_t", 100, ts=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())),
    )
    imported(capsys, "claude-code", str(aged(log)))
    ledger = Ledger(home / "usage.db")
    try:
        spent = ledger.spending("")
        assert spent.user_day.usd == 0 and spent.user_month.cloud_tokens == 0
    finally:
        ledger.close()


def test_bad_requests_say_what_to_do(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["usage", "import", "cursor"]) == 1
    assert "unknown usage source 'cursor': expected claude-code | codex" in capsys.readouterr().err
    assert main(["usage", "import"]) == 1
    assert "[usage.import] sources" in capsys.readouterr().err
    assert main(["usage", "import", "codex", str(home / "missing")]) == 1
    assert "missing: no such file or folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["usage", "claude-code"])
    assert "invalid choice: 'claude-code' (choose from 'report', 'import')" in (
        capsys.readouterr().err
    )
    # nothing there yet: an import of nothing is no error
    assert "claude-code: 0 records in 0 files read" in imported(capsys, "claude-code")


def test_the_configured_sources_through_the_real_command(home: Path) -> None:
    claude_logs(home)
    codex_log(home)
    (home / "config.toml").write_text('[usage.import]\nsources = ["claude-code", "codex"]\n')
    run = subprocess.run(
        [sys.executable, "-m", "nearline", "usage", "import", "--quiet"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert run.stdout.splitlines() == [
        "claude-code: 5 records in 3 files read (0 unchanged), 3 rows added or updated",
        "codex: 2 records in 1 files read (0 unchanged), 2 rows added or updated",
    ]
    table = subprocess.run(
        [sys.executable, "-m", "nearline", "usage", "--by", "client", *WINDOW],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={**os.environ, "COLUMNS": "120"},
    ).stdout
    assert "claude-code" in table and "codex" in table


COPILOT_ORG = [
    {
        "date": "2026-11-02",
        "total_active_users": 24,
        "copilot_ide_code_completions": {
            "total_engaged_users": 18,
            "languages": [{"name": "python", "total_engaged_users": 12}],
            "editors": [
                {
                    "name": "vscode",
                    "models": [
                        {
                            "name": "default",
                            "languages": [
                                {
                                    "name": "python",
                                    "total_engaged_users": 12,
                                    "total_code_suggestions": 840,
                                    "total_code_acceptances": 233,
                                    "total_code_lines_suggested": 1310,
                                    "total_code_lines_accepted": 402,
                                },
                                {
                                    "name": "go",
                                    "total_code_suggestions": 160,
                                    "total_code_acceptances": 17,
                                    "total_code_lines_suggested": 190,
                                    "total_code_lines_accepted": 18,
                                },
                            ],
                        }
                    ],
                }
            ],
        },
        "copilot_ide_chat": {
            "editors": [{"name": "vscode", "models": [{"name": "default", "total_chats": 57}]}]
        },
    },
    {"date": "2026-11-03", "copilot_ide_code_completions": None},  # a quiet day
]
COPILOT_USERS = [
    {
        "day": "2026-11-04",
        "user_login": "octo-dev",
        "user_initiated_interaction_count": 6,
        "totals_by_language_feature": [
            {
                "language": "python",
                "feature": "code_completion",
                "code_generation_activity_count": 5,
                "code_acceptance_activity_count": 2,
                "loc_suggested_to_add_sum": 12,
                "loc_added_sum": 6,
            },
            {"language": "python", "feature": "chat_panel_agent_mode", "loc_added_sum": 25},
        ],
    },
    {"day": "2026-11-04", "user_login": "ada", "user_initiated_interaction_count": 1},
]


def test_copilot_daily_aggregates_kept_apart(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    org = home / "copilot-metrics.json"
    org.write_text(json.dumps(COPILOT_ORG, indent=2))
    users = home / "users-28-day.ndjson"
    users.write_text("".join(json.dumps(u) + "\n" for u in COPILOT_USERS) + "not json\n")
    said = imported(capsys, "copilot", str(org), str(users))
    assert "copilot-metrics.json: 3 records from 1 lines" in said
    assert "users-28-day.ndjson: 3 records from 3 lines; skipped 1 lines not JSON" in said
    imported(capsys, "copilot", str(org), str(users))  # again: the same days, replaced
    org.write_text(json.dumps(COPILOT_ORG))  # downloaded again, the same days in it
    imported(capsys, "copilot", str(org))
    assert main(["usage", "--json", *WINDOW]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["tools"] == [
        {
            "source": "copilot",
            "days": 2,
            "suggestions": 840 + 160 + 5,
            "acceptances": 233 + 17 + 2,
            "lines_suggested": 1310 + 190 + 12,
            "lines_accepted": 402 + 18 + 6,
            "chats": 57 + 6 + 1,
            "acceptance_rate": (233 + 17 + 2) / (840 + 160 + 5),
        }
    ]
    assert report["total"]["suggestions_shown"] == 0  # not nearline's suggestions
    assert main(["usage", *WINDOW]) == 0
    assert (
        "copilot (daily aggregates, 2 days): 1,005 suggestions, 252 accepted (25%), "
        "426 of 1,512 lines accepted, 64 chats"
    ) in " ".join(capsys.readouterr().out.split())


def test_gemini_cli_telemetry_through_the_command(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from test_imports import gemini_response

    log = home / "gemini-telemetry.log"
    log.write_text(
        gemini_response(1, ts="2026-11-02T09:26:53.123Z")
        + "\n"
        + gemini_response(2, ts="2026-11-02T09:27:53.123Z")
        + "\n"
    )
    monkeypatch.setenv("GEMINI_TELEMETRY_OUTFILE", str(aged(log)))
    assert "gemini-cli: 2 records in 1 files read" in imported(capsys, "gemini-cli")
    imported(capsys, "gemini-cli")
    price = PriceTable().get("gemini-2.5-pro")
    assert price is not None
    one = Tokens(input=12840 - 8192 + 10, cache_read=8192, output=412 + 733)
    assert by_client(capsys) == {
        "gemini-cli": {
            "requests": 2,
            "input_tokens": 2 * one.input,
            "cache_write_tokens": 0,
            "cache_read_tokens": 2 * one.cache_read,
            "output_tokens": 2 * one.output,
            "cost_usd": pytest.approx(2 * price.cost(one), abs=1e-12),
        }
    }


def anthropic_export(output: int) -> dict[str, Any]:
    return {
        "data": [
            {
                "starting_at": "2026-11-02T00:00:00Z",
                "ending_at": "2026-11-03T00:00:00Z",
                "results": [
                    {
                        "uncached_input_tokens": 1500,
                        "cache_read_input_tokens": 200,
                        "cache_creation": {
                            "ephemeral_5m_input_tokens": 500,
                            "ephemeral_1h_input_tokens": 1000,
                        },
                        "output_tokens": output,
                        "model": "claude-sonnet-4-5-20250929",
                        "api_key_id": "apikey_01Example",
                    },
                    {
                        "uncached_input_tokens": 100,
                        "cache_read_input_tokens": 0,
                        "cache_creation": None,
                        "output_tokens": 10,
                        "model": "claude-sonnet-4-5-20250929",
                        "api_key_id": "apikey_02Example",
                    },
                ],
            }
        ],
        "has_more": False,
        "next_page": None,
    }


def test_provider_exports_less_nearline_s_own_escalations(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import calendar

    from nearline.accounting.entries import Outcome, Project, escalation_entry

    (home / "config.toml").write_text('[providers.claude]\nkind = "anthropic"\n')
    ledger = Ledger(home / "usage.db")
    ledger.record(
        escalation_entry(
            task="refactor",
            outcome=Outcome.OK,
            tier="flagship",
            provider="claude",
            model="claude-sonnet-4-5",
            tokens=Tokens(input=600, cache_read=200, cache_write=0, output=100),
            latency_ms=900,
            cost_usd=0.01,
            project=Project("/w/acme", "acme"),
            language="python",
            ts=calendar.timegm((2026, 11, 2, 15, 0, 0)),
        )
    )
    assert ledger.flush()
    ledger.close()
    export = home / "anthropic-usage.json"
    export.write_text(json.dumps(anthropic_export(500), indent=2))
    said = imported(capsys, "anthropic-usage", str(export))
    assert "less 1 of nearline's own requests, in the ledger already" in said
    imported(capsys, "anthropic-usage", str(export))
    export.write_text(json.dumps(anthropic_export(900)))  # the day downloaded again, later
    imported(capsys, "anthropic-usage", str(export))
    found = by_client(capsys)["anthropic-usage"]
    remainder = Tokens(
        input=1600 - 600, cache_read=0, cache_write=1500, output=910 - 100, cache_write_1h=1000
    )
    assert SONNET is not None
    assert found == {
        "requests": 1,
        "input_tokens": remainder.input,
        "cache_write_tokens": remainder.cache_write,
        "cache_read_tokens": remainder.cache_read,
        "output_tokens": remainder.output,
        "cost_usd": pytest.approx(SONNET.cost(remainder), abs=1e-12),
    }


def test_openai_export_input_includes_the_cached(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page = {
        "object": "page",
        "data": [
            {
                "object": "bucket",
                "start_time": 1793577600,  # 2026-11-02, UTC
                "end_time": 1793664000,
                "results": [
                    {
                        "object": "organization.usage.completions.result",
                        "input_tokens": 7162,
                        "input_cached_tokens": 1280,
                        "output_tokens": 1419,
                        "num_model_requests": 5,
                        "model": "gpt-5-2025-08-07",
                    }
                ],
            },
            {"object": "bucket", "start_time": 1793664000},  # no end, no results
            {"start_time": 1793664000000, "end_time": 1793750400000, "results": []},  # in ms
        ],
    }
    export = home / "openai.jsonl"
    export.write_text(json.dumps(page) + "\n")
    said = imported(capsys, "openai-usage", str(export))
    assert "skipped 2 buckets without a start, an end or results" in said
    wrong = imported(capsys, "anthropic-usage", str(export))  # another provider's: nothing
    assert "openai.jsonl: 0 records" in wrong and "anthropic-usage: 0 records" in wrong
    found = by_client(capsys)["openai-usage"]
    assert (found["input_tokens"], found["cache_read_tokens"], found["output_tokens"]) == (
        7162 - 1280,
        1280,
        1419,
    )


def test_a_damaged_ledger_or_an_unreadable_log_is_said_and_loses_nothing(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    one, _, other = claude_logs(home)
    (home / "usage.db").write_bytes(b"this is not a database" * 100)
    assert main(["usage", "import", "claude-code"]) == 1
    said = capsys.readouterr().err
    assert "the usage ledger" in said and "file is not a database" in said
    (home / "usage.db").unlink()
    if os.geteuid() != 0:  # root reads any file
        other.chmod(0)
        try:
            said = imported(capsys, "claude-code")
            assert "s-2.jsonl: cannot read (Permission denied); skipped" in said
        finally:
            other.chmod(0o644)
        assert by_client(capsys)["claude-code"]["requests"] == 2
    imported(capsys, "claude-code")  # readable again: read this time
    assert by_client(capsys) == {"claude-code": claude_expected()}


def test_a_file_named_from_another_folder_is_the_same_file(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    codex_log(home)
    imported(capsys, "codex", ".codex/sessions")  # relative to the home
    monkeypatch.chdir(home / ".codex")
    said = imported(capsys, "codex", "sessions")
    assert "codex: 0 records in 0 files read (1 unchanged)" in said


def test_a_message_held_while_its_session_was_open_is_read_once_it_is_closed(
    home: Path,
) -> None:
    from nearline.accounting.imports.run import import_source
    from nearline.accounting.ledger.schema import connect, migrate

    log = jsonl(home / "open.jsonl", assistant("msg_a", 5), assistant("msg_b", 9))
    written = log.stat().st_mtime
    conn = connect(home / "usage.db")
    migrate(conn)
    try:
        first = import_source("claude-code", [log], conn, PriceTable(), now=written + 60)
        assert first.records == 1  # msg_b may still grow: it waits
        # the session ended: the file never changes again, and the next import comes later
        later = import_source("claude-code", [log], conn, PriceTable(), now=written + 600)
        assert (later.unchanged, later.records) == (0, 1)
        again = import_source("claude-code", [log], conn, PriceTable(), now=written + 900)
        assert (again.unchanged, again.records) == (1, 0)
        counts = conn.execute("SELECT COUNT(*), SUM(output_tokens) FROM requests").fetchone()
        assert tuple(counts) == (2, 14)
    finally:
        conn.close()


def test_copilot_s_organisation_and_users_reports_of_one_day_count_once(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    org = home / "copilot-metrics.json"
    org.write_text(json.dumps(COPILOT_ORG))
    users = home / "users.ndjson"  # the same day, told per user
    users.write_text(json.dumps({**COPILOT_USERS[0], "day": "2026-11-02"}) + "\n")
    imported(capsys, "copilot", str(org), str(users))
    assert main(["usage", "--json", *WINDOW]) == 0
    (tool,) = json.loads(capsys.readouterr().out)["tools"]
    assert (tool["days"], tool["suggestions"], tool["chats"]) == (1, 840 + 160, 57)
