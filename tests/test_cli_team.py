"""``nearline team status|sync`` and ``nearline doctor`` against a real PostgreSQL: where the
database is (host and database, never the password), the rows waiting, the last error, and a
clear message for each way the database can be wrong."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from nearline.accounting.entries import Outcome, Project, escalation_entry
from nearline.accounting.ledger import Ledger
from nearline.accounting.prices import Tokens
from nearline.accounting.team.schema import SCHEMA_VERSION
from nearline.cli import main
from support.net import closed_port


@pytest.fixture
def configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project with ``[team]`` (the cwd) and one escalation in this machine's ledger."""
    root = tmp_path / "shop"
    root.mkdir()
    (root / ".nearline.toml").write_text('[team]\ndeveloper = "ada@example.com"\n')
    monkeypatch.chdir(root)
    record_one(root)
    return root


def record_one(root: Path) -> None:
    ledger = Ledger()
    ledger.record(
        escalation_entry(
            task="explain",
            outcome=Outcome.OK,
            tier="flagship",
            provider="anthropic",
            model="claude-sonnet-4-5",
            tokens=Tokens(input=100, output=50),
            latency_ms=500,
            cost_usd=0.02,
            project=Project(str(root), "shop"),
            language="python",
        )
    )
    ledger.close()


def status(capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, object], str]:
    code = main(["team", "status", "--json"])
    out = capsys.readouterr()
    return code, json.loads(out.out), out.out + out.err


def test_status_then_sync_then_status(
    configured: Path, team_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    password = team_url.split(":")[2].split("@")[0]
    code, found, text = status(capsys)
    assert code == 0 and found["waiting"] == 1 and found["last_sync"] is None
    assert found["developer"] == "ada@example.com"
    assert "no nearline tables yet" in str(found["check"])
    assert password not in text
    assert main(["team", "sync"]) == 0
    out = capsys.readouterr().out
    assert "sent 1 usage rows" in out and "rows waiting: 0" in out
    assert "127.0.0.1:" in out and "/t_" in out and password not in out
    code, found, _ = status(capsys)
    assert found["waiting"] == 0 and found["last_sync"] and found["last_error"] == ""
    assert f"schema version {SCHEMA_VERSION}" in str(found["check"])
    assert main(["doctor"]) in (0, 1)  # the model may be missing; the team line is what counts
    out = capsys.readouterr().out
    assert "[ok ] team database: 127.0.0.1" in out and password not in out


@pytest.mark.parametrize("case", ["unset", "down", "password", "garbage"])
def test_a_wrong_connection_string_is_said_plainly(
    case: str,
    configured: Path,
    team_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    password = team_url.split(":")[2].split("@")[0]
    urls = {
        "unset": None,
        "down": f"postgresql://nearline:{password}@127.0.0.1:{closed_port()}/x",
        "password": team_url.replace(password, "s3cret-wrong-pw"),
        "garbage": "postgresql://nearline:s3cret-wrong-pw@[::1:5432/x?sslmode=nope",
    }
    if urls[case] is None:
        monkeypatch.delenv("NEARLINE_TEAM_URL")
    else:
        monkeypatch.setenv("NEARLINE_TEAM_URL", urls[case])
    assert main(["team", "sync"]) == 1
    out = capsys.readouterr()
    said = out.out + out.err
    expected = {
        "unset": "$NEARLINE_TEAM_URL",
        "down": "cannot connect",
        "password": "authentication failed",
        "garbage": "NEARLINE_TEAM_URL",
    }[case]
    assert expected in said, said
    assert "s3cret-wrong-pw" not in said and password not in said
    code, found, text = status(capsys)
    assert code == 1 and found["waiting"] == 1  # the row is still here
    assert "s3cret-wrong-pw" not in text and password not in text
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "[FAIL] team database" in out and "s3cret-wrong-pw" not in out


def test_newer_schema_dropped_table_read_only_user(
    configured: Path,
    team_url: str,
    postgres: object,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["team", "sync"]) == 0
    capsys.readouterr()
    with psycopg.connect(team_url, autocommit=True) as pg:
        pg.execute("UPDATE nearline_schema SET version = 7")
    code, found, _ = status(capsys)
    assert code == 1 and "newer than this nearline knows" in str(found["check"])
    with psycopg.connect(team_url, autocommit=True) as pg:
        pg.execute("UPDATE nearline_schema SET version = %s", (SCHEMA_VERSION,))
        pg.execute("DROP TABLE nearline_requests")
    code, found, _ = status(capsys)
    assert code == 1 and "no table nearline_requests" in str(found["check"])
    main(["doctor"])
    assert "no table nearline_requests" in capsys.readouterr().out

    with psycopg.connect(team_url, autocommit=True) as pg:
        from nearline.accounting.team.schema import MIGRATIONS

        pg.execute("DROP TABLE nearline_completions, nearline_requests_daily")
        for migration in MIGRATIONS:
            pg.execute(migration)  # type: ignore[arg-type]
    db = team_url.rsplit("/", 1)[1]
    postgres.sql(f"CREATE ROLE ro_{db} LOGIN PASSWORD 'ro-pass-77'")  # type: ignore[attr-defined]
    postgres.sql(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO ro_{db}", db)  # type: ignore[attr-defined]
    password = team_url.split(":")[2].split("@")[0]
    monkeypatch.setenv(
        "NEARLINE_TEAM_URL", team_url.replace(f"nearline:{password}", f"ro_{db}:ro-pass-77")
    )
    record_one(configured)
    assert main(["team", "sync"]) == 1
    said = capsys.readouterr()
    assert "lacks rights" in said.err and "ro-pass-77" not in said.err + said.out


def test_no_team_section(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["team", "status"]) == 1
    assert "not configured" in capsys.readouterr().out
    assert main(["team", "sync"]) == 1
    assert "no [team] section" in capsys.readouterr().err
