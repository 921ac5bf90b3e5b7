"""The team ledger's sync against a real PostgreSQL: what leaves the machine (exactly), nothing
lost, nothing counted twice (a batch sent twice, a crash between commit and mark, a suggestion
taken after its row went), local-only projects, and a database that is away or wrong."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import psycopg
import pytest

from nearline.accounting.entries import (
    Outcome,
    Project,
    completion_entry,
    escalation_entry,
)
from nearline.accounting.ledger import Ledger, outbox
from nearline.accounting.ledger.imported import UPSERT
from nearline.accounting.ledger.schema import connect
from nearline.accounting.prices import Tokens
from nearline.accounting.team.connection import TeamTarget
from nearline.accounting.team.schema import COMPLETION_COLUMNS, REQUEST_COLUMNS, SCHEMA_VERSION
from nearline.accounting.team.sync import Identity, TeamSyncer, send
from nearline.app.team import ShareRule
from nearline.config import parse_settings
from nearline.errors import TeamError

WHO = Identity("ada@example.com", "dev-1")
SENT_REQUEST_COLUMNS = {
    "uid", "ts", "day", "developer", "device", "project", "client", "task", "tier",
    "provider", "model", "language", "outcome", "accepted", "input_tokens",
    "cache_read_tokens", "cache_write_tokens", "output_tokens", "cost_usd", "latency_ms",
    "cost_source", "cache_write_1h_tokens",
}  # fmt: skip
SENT_COMPLETION_COLUMNS = {
    "uid", "hour", "day", "developer", "device", "project", "client", "model", "language",
    "requests", "shown", "accepted", "chars_accepted", "input_tokens", "cache_read_tokens",
    "output_tokens", "cost_usd", "latency_ms",
}  # fmt: skip


def project(tmp_path: Path, name: str, toml: str = "[team]\n") -> Project:
    root = tmp_path / name
    root.mkdir(exist_ok=True)
    (root / ".nearline.toml").write_text(toml)
    return Project(str(root), name)


def escalation(proj: Project, usd: float, ts: float | None = None) -> object:
    return escalation_entry(
        task="refactor",
        outcome=Outcome.OK,
        tier="flagship",
        provider="anthropic",
        model="claude-sonnet-4-5",
        tokens=Tokens(input=1000, cache_read=500, cache_write=200, output=300),
        latency_ms=900.0,
        cost_usd=usd,
        project=proj,
        language="python",
        ts=ts,
    )


def completion(proj: Project, chars: int = 12) -> object:
    return completion_entry(
        outcome=Outcome.OK,
        model="qwen2.5-coder-0.5b",
        tokens=Tokens(input=40, cache_read=300, output=8),
        latency_ms=120.0,
        project=proj,
        language="python",
        shown=True,
        chars=chars,
    )


def syncer(ledger: Ledger, url_env: str = "NEARLINE_TEAM_URL") -> TeamSyncer:
    return TeamSyncer(TeamTarget.from_env(url_env), ledger.path, WHO, ShareRule(url_env))


def rows(url: str, sql: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as pg:
        return list(pg.execute(sql).fetchall())  # type: ignore[arg-type]


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    made = Ledger(tmp_path / "usage.db")
    yield made
    made.close()


def test_exactly_the_allowed_columns_leave_the_machine(
    ledger: Ledger, tmp_path: Path, team_url: str
) -> None:
    proj = project(tmp_path, "shop")
    ledger.record(escalation(proj, 0.25))
    ledger.record(completion(proj))
    ledger.flush()
    assert syncer(ledger).sync_now() == 2
    assert set(REQUEST_COLUMNS) == SENT_REQUEST_COLUMNS
    assert set(COMPLETION_COLUMNS) == SENT_COMPLETION_COLUMNS
    for table, allowed in (
        ("nearline_requests", SENT_REQUEST_COLUMNS),
        ("nearline_completions", SENT_COMPLETION_COLUMNS),
    ):
        found = rows(
            team_url,
            f"SELECT column_name FROM information_schema.columns WHERE table_name = '{table}'",
        )
        assert {c for (c,) in found} == allowed
    # No path, prompt or code in any value sent.
    sent = rows(team_url, "SELECT * FROM nearline_requests") + rows(
        team_url, "SELECT * FROM nearline_completions"
    )
    assert not any(str(tmp_path) in str(v) for row in sent for v in row)
    (req,) = rows(team_url, "SELECT developer, device, project, cost_usd FROM nearline_requests")
    assert req == ("ada@example.com", "dev-1", "shop", 0.25)


def test_nothing_lost_nothing_doubled(ledger: Ledger, tmp_path: Path, team_url: str) -> None:
    proj = project(tmp_path, "shop")
    uids = [ledger.record(completion(proj, chars=10)) for _ in range(5)]
    for usd in (0.1, 0.2, 0.3):
        ledger.record(escalation(proj, usd))
    ledger.flush()
    sync = syncer(ledger)
    # A batch committed whose marks were lost (a kill -9 between commit and mark) ...
    with connect(ledger.path) as conn:
        batch = outbox.batch_of(conn, outbox.waiting(conn, 100))
    with psycopg.connect(team_url, autocommit=True) as pg:
        from nearline.accounting.team.schema import migrate

        migrate(pg)
        send(pg, batch, WHO)
        send(pg, batch, WHO)  # ... and the same batch delivered twice
    assert sync.sync_now() == 8  # sent again: nothing changes in the team database
    assert sync.sync_now() == 0
    ledger.accept(uids[0])
    ledger.accept(uids[1])
    ledger.flush()
    assert sync.sync_now() == 2  # taken after they went: their bucket goes again
    ((req_n, usd),) = rows(team_url, "SELECT count(*), sum(cost_usd) FROM nearline_requests")
    assert (req_n, round(usd, 2)) == (3, 0.6)
    ((daily_n, daily_usd),) = rows(
        team_url, "SELECT sum(requests), sum(cost_usd) FROM nearline_requests_daily"
    )
    assert (daily_n, round(daily_usd, 2)) == (3, 0.6)  # the daily sums: recomputed, not added
    (bucket,) = rows(
        team_url,
        "SELECT requests, shown, accepted, chars_accepted FROM nearline_completions",
    )
    assert bucket == (5, 5, 2, 20)
    with connect(ledger.path) as conn:
        assert outbox.waiting_count(conn) == 0


def test_a_stale_bucket_never_replaces_a_fuller_one(
    ledger: Ledger, tmp_path: Path, team_url: str
) -> None:
    proj = project(tmp_path, "shop")
    uid = ledger.record(completion(proj))
    ledger.flush()
    with connect(ledger.path) as conn:
        old = outbox.batch_of(conn, outbox.waiting(conn, 100))
    ledger.accept(uid)
    ledger.flush()
    syncer(ledger).sync_now()
    with psycopg.connect(team_url, autocommit=True) as pg:
        send(pg, old, WHO)  # an older copy, late
    assert rows(team_url, "SELECT accepted FROM nearline_completions") == [(1,)]


def test_a_local_only_project_sends_nothing_unless_the_team_says_so(
    ledger: Ledger, tmp_path: Path, team_url: str
) -> None:
    secret = project(tmp_path, "secret", "cloud = false\n[team]\n")
    shared = project(tmp_path, "secret2", "cloud = false\n[team]\nshare_local_only = true\n")
    none = project(tmp_path, "solo", "")
    for proj in (secret, shared, none):
        ledger.record(escalation(proj, 0.5))
    ledger.flush()
    assert syncer(ledger).sync_now() == 1
    assert rows(team_url, "SELECT project FROM nearline_requests") == [("secret2",)]
    with connect(ledger.path) as conn:
        assert outbox.waiting_count(conn) == 0  # the others stay here for good


def test_another_teams_rows_wait_for_their_own_syncer(
    ledger: Ledger, tmp_path: Path, team_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = project(tmp_path, "other", '[team]\nurl_env = "OTHER_TEAM_URL"\n')
    ledger.record(escalation(other, 0.5))
    ledger.flush()
    assert syncer(ledger).sync_now() == 0
    monkeypatch.setenv("OTHER_TEAM_URL", team_url)
    assert syncer(ledger, "OTHER_TEAM_URL").sync_now() == 1


def database_away(ledger: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One escalation waiting, and ``NEARLINE_TEAM_URL`` naming a port nothing listens on."""
    from support.net import closed_port

    ledger.record(escalation(project(tmp_path, "shop"), 0.5))
    ledger.flush()
    monkeypatch.setenv("NEARLINE_TEAM_URL", f"postgresql://nearline:pw@127.0.0.1:{closed_port()}/x")


def test_a_database_away_keeps_the_rows_until_it_is_back(
    ledger: Ledger, tmp_path: Path, team_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    database_away(ledger, tmp_path, monkeypatch)
    with pytest.raises(TeamError) as err:
        syncer(ledger).sync_now()
    assert err.value.down and "127.0.0.1" in str(err.value)
    with connect(ledger.path) as conn:
        assert outbox.waiting_count(conn) == 1
    monkeypatch.setenv("NEARLINE_TEAM_URL", team_url)
    assert syncer(ledger).sync_now() == 1


def test_the_background_sync_tells_once_and_drains(
    ledger: Ledger, tmp_path: Path, team_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    database_away(ledger, tmp_path, monkeypatch)
    told: list[str] = []
    sync = syncer(ledger)
    sync.on_notice = told.append
    sync.start()
    deadline = time.monotonic() + 10
    while not told and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(told) == 1 and "kept on this machine" in told[0] and ":pw@" not in told[0]
    sync.target = TeamTarget("NEARLINE_TEAM_URL", team_url)  # the database is back
    sync.wake()
    while sync.status.sent == 0 and time.monotonic() < deadline + 10:
        sync.wake()
        time.sleep(0.1)
    sync.stop()
    assert sync.status.sent == 1 and len(told) == 2 and "is back" in told[1]


def test_wrong_password_newer_schema_dropped_table_read_only_user(
    ledger: Ledger, tmp_path: Path, team_url: str, postgres: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    proj = project(tmp_path, "shop")
    ledger.record(escalation(proj, 0.5))
    ledger.flush()
    password = team_url.split(":")[2].split("@")[0]
    wrong = team_url.replace(password, "not-the-password-42")
    monkeypatch.setenv("NEARLINE_TEAM_URL", wrong)
    with pytest.raises(TeamError) as err:
        syncer(ledger).sync_now()
    assert not err.value.down and "authentication failed" in str(err.value)
    assert "not-the-password-42" not in str(err.value)

    monkeypatch.setenv("NEARLINE_TEAM_URL", team_url)
    assert syncer(ledger).sync_now() == 1
    db = team_url.rsplit("/", 1)[1]
    pg = postgres  # the server: a read-only role on this database
    pg.sql(f"CREATE ROLE reader_{db} LOGIN PASSWORD 'r3ad'")  # type: ignore[attr-defined]
    pg.sql(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO reader_{db}", db)  # type: ignore[attr-defined]
    ledger.record(escalation(proj, 0.5))
    ledger.flush()
    reader = team_url.replace(f"nearline:{password}", f"reader_{db}:r3ad")
    monkeypatch.setenv("NEARLINE_TEAM_URL", reader)
    with pytest.raises(TeamError) as err:
        syncer(ledger).sync_now()
    assert "lacks rights" in str(err.value) and "r3ad" not in str(err.value)

    monkeypatch.setenv("NEARLINE_TEAM_URL", team_url)
    rows(team_url, "UPDATE nearline_schema SET version = 99 RETURNING version")
    with pytest.raises(TeamError, match="newer than this nearline knows"):
        syncer(ledger).sync_now()
    rows(team_url, f"UPDATE nearline_schema SET version = {SCHEMA_VERSION} RETURNING version")
    with psycopg.connect(team_url, autocommit=True) as c:
        c.execute("DROP TABLE nearline_completions")
    with pytest.raises(TeamError, match="no table nearline_completions"):
        syncer(ledger).sync_now()
    with connect(ledger.path) as conn:
        assert outbox.waiting_count(conn) == 1  # still here, sent once the database is fixed


def test_share_rule_reads_each_projects_own_settings(tmp_path: Path) -> None:
    rule = ShareRule("NEARLINE_TEAM_URL")
    assert rule.decide(parse_settings({"team": {}})) == "send"
    assert rule.decide(parse_settings({})) == "keep"
    assert rule.decide(parse_settings({"team": {"sync": False}})) == "keep"
    assert rule.decide(parse_settings({"team": {"url_env": "B"}})) == "other"
    local = {"team": {}, "privacy": {"local_only": ["**"]}}
    assert rule.decide(parse_settings(local)) == "keep"
    local["team"] = {"share_local_only": True}
    assert rule.decide(parse_settings(local)) == "send"


def test_an_old_ledger_is_migrated_and_all_its_history_waits(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    from nearline.accounting.ledger.schema import MIGRATIONS

    for step in MIGRATIONS[:3]:
        conn.executescript(step)
    conn.execute("PRAGMA user_version = 3")
    conn.execute(
        "INSERT INTO requests (uid, ts, day, task, outcome) VALUES ('a', 1, '2026-01-01', "
        "'refactor', 'ok')"
    )
    conn.commit()
    conn.close()
    ledger = Ledger(path)
    ledger.flush()
    with connect(path) as c:
        assert outbox.waiting_count(c) == 1
    ledger.close()


def test_another_tool_s_rows_go_grow_and_spend_no_team_budget(
    ledger: Ledger, tmp_path: Path, team_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nearline.accounting.entries import CostSource, imported_entry

    config = tmp_path / "user.toml"
    config.write_text("[team]\n")  # rows outside a project go as the user's settings say
    monkeypatch.setenv("NEARLINE_CONFIG", str(config))

    def streamed(output: int) -> object:
        return imported_entry(
            source="claude-code",
            key="msg_a:req_a",
            ts=time.time(),
            provider="anthropic",
            model="claude-sonnet-4-5",
            tokens=Tokens(input=4, cache_read=2000, cache_write=100, output=output),
            cost_usd=0.001 * output,
            cost_source=CostSource.PRICE_TABLE,
            project="acme",
        )

    ledger.record(streamed(10))
    ledger.flush()
    assert syncer(ledger).sync_now() == 1
    with connect(ledger.path) as conn:  # the same message read again, whole
        conn.execute(UPSERT, streamed(400).row())
        conn.execute(UPSERT, streamed(5).row())  # a shorter copy changes nothing
    assert syncer(ledger).sync_now() == 1
    assert syncer(ledger).sync_now() == 0
    assert rows(team_url, "SELECT client, task, output_tokens, cost_source, cost_usd "
                "FROM nearline_requests") == [
        ("claude-code", "imported", 400, "price-table", pytest.approx(0.4))
    ]  # fmt: skip
    assert rows(team_url, "SELECT billed, output_tokens FROM nearline_requests_daily") == [
        (False, 400)
    ]
