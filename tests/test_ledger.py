"""The usage ledger on real SQLite files: schema and migrations, concurrent writers, a kill -9
in the middle of writes, a locked and a damaged database."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from contextlib import closing
from pathlib import Path

import pytest

from nearline.accounting.entries import Entry, day_of
from nearline.accounting.ledger import SCHEMA_VERSION, Ledger, ledger_path
from nearline.accounting.ledger.schema import MIGRATIONS
from nearline.accounting.prices import Tokens
from nearline.tasks import AUTOCOMPLETE

DAY = 86_400.0


def completion(**kw: object) -> Entry:
    values: dict[str, object] = dict(
        task=AUTOCOMPLETE, outcome="ok", model="smollm2", tokens=Tokens(input=12, output=5)
    )
    values.update(kw)
    return Entry(**values)  # type: ignore[arg-type]


def escalation(cost: float, root: str = "/p", **kw: object) -> Entry:
    values: dict[str, object] = dict(
        task="refactor",
        outcome="ok",
        tier="flagship",
        provider="cloud",
        model="claude-sonnet-4-5",
        tokens=Tokens(input=1000, cache_read=200, cache_write=0, output=300),
        cost_usd=cost,
        project_root=root,
        project=Path(root).name,
        cloud=True,
    )
    values.update(kw)
    return Entry(**values)  # type: ignore[arg-type]


def count(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM requests").fetchone()[0])


def test_rows_are_written_with_every_field(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "usage.db")
    uid = ledger.record(escalation(0.25, language="python", latency_ms=812.345))
    ledger.record(completion(outcome="typed-through", tokens=Tokens()))
    assert ledger.flush()
    rows = ledger.rows()
    ledger.close()
    assert len(rows) == 2
    row = next(r for r in rows if r["uid"] == uid)
    assert row["task"] == "refactor" and row["tier"] == "flagship" and row["cloud"] == 1
    assert (row["input_tokens"], row["cache_read_tokens"], row["output_tokens"]) == (1000, 200, 300)
    assert row["cost_usd"] == 0.25 and row["latency_ms"] == 812.35
    assert row["project"] == "p" and row["language"] == "python"
    assert row["day"] == day_of(row["ts"])
    with sqlite3.connect(tmp_path / "usage.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_the_location_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEARLINE_DATA_DIR", str(tmp_path / "data"))
    assert ledger_path() == tmp_path / "data" / "usage.db"
    monkeypatch.setenv("NEARLINE_LEDGER", str(tmp_path / "elsewhere.db"))
    assert ledger_path() == tmp_path / "elsewhere.db"


def test_an_old_schema_is_migrated_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(MIGRATIONS[0] + "\nPRAGMA user_version = 1;")
        conn.execute(
            "INSERT INTO requests (uid, ts, day, task, outcome) VALUES ('old', 1, '2026-01-01', "
            "'completion', 'ok')"
        )
    ledger = Ledger(path)
    ledger.record(completion())
    assert ledger.flush()
    rows = ledger.rows()
    ledger.close()
    assert [r["uid"] for r in rows][0] == "old"
    assert rows[0]["client"] == "lsp" and len(rows) == 2
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_rows_from_before_the_cloud_flag_still_count_for_budgets(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    today = day_of(time.time())
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.executescript(MIGRATIONS[0] + "\nPRAGMA user_version = 1;")
        conn.execute(
            "INSERT INTO requests (uid, ts, day, project_root, task, provider, cost_usd, "
            "input_tokens, outcome) VALUES ('sent', ?, ?, '/p', 'refactor', 'claude', 0.25, "
            "100, 'ok')",
            (time.time(), today),
        )
        conn.execute(
            "INSERT INTO requests (uid, ts, day, project_root, task, provider, input_tokens, "
            "outcome) VALUES ('kept', ?, ?, '/p', 'completion', 'local', 900, 'ok')",
            (time.time(), today),
        )
    ledger = Ledger(path)
    s = ledger.spending("/p")
    ledger.close()
    assert s.project_day.usd == pytest.approx(0.25)
    assert s.project_day.cloud_tokens == 100  # the local completion's tokens never left


def test_a_newer_schema_is_reported_not_guessed_at(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    errors: list[str] = []
    ledger = Ledger(path, on_error=errors.append)
    ledger.record(completion())
    assert not ledger.flush(1.0)
    ledger.close(timeout=1.0)
    assert errors and "upgrade nearline" in errors[0]


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    first, second = Ledger(path), Ledger(path)  # two servers on one user's ledger

    def write(ledger: Ledger, n: int, make: object) -> None:
        for i in range(n):
            ledger.record(make(i))  # type: ignore[operator]

    threads = [
        threading.Thread(target=write, args=(first, 500, lambda i: completion())),
        threading.Thread(target=write, args=(first, 500, lambda i: completion(language="go"))),
        threading.Thread(target=write, args=(second, 300, lambda i: escalation(0.01))),
        threading.Thread(target=write, args=(second, 500, lambda i: completion())),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert first.flush() and second.flush()
    first.close()
    second.close()
    assert count(path) == 1800
    spending = Ledger(path).spending("/p")
    assert spending.project_day.usd == pytest.approx(3.0)
    assert spending.user_day.cloud_tokens == 300 * 1500


WRITER = textwrap.dedent(
    """
    import sys
    from nearline.accounting.entries import Entry
    from nearline.accounting.ledger import Ledger
    from nearline.accounting.prices import Tokens

    ledger = Ledger()
    total = 0
    while True:
        for _ in range(50):
            ledger.record(Entry(task="completion", outcome="ok", tokens=Tokens(input=9)))
        ledger.flush()
        total += 50
        print(total, flush=True)
    """
)


def test_kill_9_in_the_middle_of_writes_loses_no_committed_row(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    env = dict(os.environ, NEARLINE_LEDGER=str(path))
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER], stdout=subprocess.PIPE, text=True, env=env
    )
    committed = 0
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        while committed < 2000 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            committed = int(line)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert committed >= 2000, "the writer did not get going"
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert count(path) >= committed
    ledger = Ledger(path)  # and it opens and writes again
    ledger.record(completion())
    assert ledger.flush()
    ledger.close()


def test_a_locked_database_is_retried_and_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    Ledger(path).close()  # create it
    errors: list[str] = []
    ledger = Ledger(path, on_error=errors.append, busy_timeout=0.1)
    assert ledger.flush()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    uid = ledger.record(completion())
    assert not ledger.flush(1.0)
    assert errors and "cannot write" in errors[0] and ledger.error
    holder.execute("COMMIT")
    holder.close()
    assert ledger.flush(15.0)
    assert ledger.error is None
    assert [r["uid"] for r in ledger.rows()] == [uid]
    ledger.close()


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs /proc")
def test_a_folder_it_cannot_write_gives_one_message_and_moves_nothing() -> None:
    # /proc takes no new files, even from root (a read-only folder would not stop root).
    path = Path(f"/proc/nearline-test-{os.getpid()}.db")
    errors: list[str] = []
    ledger = Ledger(path, on_error=errors.append)
    ledger.record(completion())
    assert not ledger.flush(2.0)  # retried at 0.05, 0.2 and 1 s: still one message
    ledger.close(0.1)
    assert len(errors) == 1 and errors[0].startswith(f"cannot write the usage ledger {path}")
    assert "damaged" not in errors[0]


def test_a_damaged_database_is_moved_aside_and_a_new_one_started(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    path.write_bytes(b"this is not a database" * 100)
    errors: list[str] = []
    ledger = Ledger(path, on_error=errors.append)
    ledger.record(completion())
    assert ledger.flush()
    ledger.close()
    assert errors and "damaged" in errors[0]
    moved = list(tmp_path.glob("usage.db.damaged-*"))
    assert moved and moved[0].read_bytes().startswith(b"this is not a database")
    assert count(path) == 1


def test_accepting_a_suggestion_marks_its_row(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "usage.db")
    shown = ledger.record(completion(accepted=False))
    other = ledger.record(completion(accepted=False))
    ledger.accept(shown)
    ledger.accept("no-such-id")
    assert ledger.flush()
    accepted = {r["uid"]: r["accepted"] for r in ledger.rows()}
    ledger.close()
    assert accepted == {shown: 1, other: 0}


def test_spending_splits_project_and_user_day_and_month(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "usage.db")
    now = time.time()
    first_of_month = time.mktime(time.strptime(day_of(now)[:8] + "01", "%Y-%m-%d")) + 3600
    ledger.record(escalation(1.0, "/p", ts=now))
    ledger.record(escalation(2.0, "/other", ts=now))
    ledger.record(escalation(4.0, "/p", ts=first_of_month))
    ledger.record(escalation(8.0, "/p", ts=first_of_month - 3 * DAY))  # last month
    ledger.record(completion(ts=now))
    s = ledger.spending("/p", now)
    if day_of(first_of_month) == day_of(now):  # the 1st: the "earlier this month" row is today
        assert s.project_day.usd == pytest.approx(5.0)
    else:
        assert s.project_day.usd == pytest.approx(1.0)
    assert s.project_month.usd == pytest.approx(5.0)
    assert s.user_month.usd == pytest.approx(7.0)
    assert s.user_day.cloud_tokens >= 2 * 1500
    assert ledger.spend_today() == pytest.approx(s.user_day.usd)
    ledger.record(escalation(0.5, "/p", ts=now))
    assert ledger.spend_today() == pytest.approx(s.user_day.usd + 0.5)
    ledger.close()


def test_a_notice_is_given_once_even_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    ledger = Ledger(path)
    assert ledger.notice_once("budget:project:daily:usd:2026-11-23")
    assert not ledger.notice_once("budget:project:daily:usd:2026-11-23")
    ledger.close()
    again = Ledger(path)
    assert not again.notice_once("budget:project:daily:usd:2026-11-23")
    assert again.notice_once("budget:project:daily:usd:2026-11-24")
    again.close()


def test_recording_never_waits_for_the_disk(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    Ledger(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # every write would block
    ledger = Ledger(path, busy_timeout=5.0)
    t0 = time.perf_counter()
    for _ in range(100):
        ledger.record(completion())
    elapsed = time.perf_counter() - t0
    holder.execute("COMMIT")
    holder.close()
    assert ledger.flush(20.0)
    ledger.close()
    assert elapsed < 1.0  # a queue put each, not a 5 s lock wait
    assert count(path) == 100


OPEN_AND_MIGRATE = (
    "import sys; from pathlib import Path; "
    "from nearline.accounting.ledger.schema import connect, migrate; "
    "c = connect(Path(sys.argv[1])); migrate(c); c.close()"
)


def test_processes_opening_a_new_ledger_at_once_all_succeed(tmp_path: Path) -> None:
    """The writer and the team sync (or two servers) make the file and migrate it together.
    (Fresh interpreters: a fork of this process could inherit a lock another thread holds.)"""
    for i in range(25):
        path = str(tmp_path / f"u{i}.db")
        procs = [
            subprocess.Popen([sys.executable, "-c", OPEN_AND_MIGRATE, path], stderr=subprocess.PIPE)
            for _ in range(4)
        ]
        errors = [p.communicate(timeout=60)[1].decode() for p in procs]
        assert [p.returncode for p in procs] == [0, 0, 0, 0], errors
