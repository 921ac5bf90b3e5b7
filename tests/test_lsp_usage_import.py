"""``[usage.import]``: the real server imports other tools' logs in the background, in a process
of its own, again every interval, and takes that process with it when it leaves."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from pathlib import Path

from test_imports import assistant, jsonl
from test_lsp_exit import EXIT_S, alive, children_of, start, wait_gone


def imported_rows(ledger: Path) -> int:
    if not ledger.exists():
        return 0
    try:
        with sqlite3.connect(f"{ledger.as_uri()}?mode=ro", uri=True) as conn:
            found = conn.execute("SELECT COUNT(*) FROM requests WHERE task = 'imported'")
            return int(found.fetchone()[0])
    except sqlite3.OperationalError:  # not made yet
        return 0


def wait_rows(ledger: Path, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while imported_rows(ledger) < count:
        assert time.monotonic() < deadline, f"{imported_rows(ledger)} rows, not {count}"
        time.sleep(0.2)


def test_the_server_imports_in_the_background_and_takes_the_import_along(
    tmp_path: Path, nearline_env: dict[str, str]
) -> None:
    logs = tmp_path / "claude" / "projects" / "-home-ada-src-acme"
    logs.mkdir(parents=True)
    log = jsonl(logs / "s-1.jsonl", assistant("msg_a", 10), assistant("msg_b", 20))
    old = time.time() - 3600
    os.utime(log, (old, old))
    Path(nearline_env["NEARLINE_CONFIG"]).write_text(
        '[usage.import]\nsources = ["claude-code"]\ninterval_minutes = 0.1\n'
    )
    ledger = tmp_path / "usage.db"
    env = {**nearline_env, "CLAUDE_CONFIG_DIR": str(tmp_path / "claude")}
    env["NEARLINE_LEDGER"] = str(ledger)
    workspace = tmp_path / "ws"
    workspace.mkdir()
    raw = start(env, workspace, processes=0)
    try:
        wait_rows(ledger, 2)
        jsonl(log, assistant("msg_c", 30), assistant("msg_d", 40))  # the session goes on
        wait_rows(ledger, 3)  # the next round; msg_d, the open session's last, waits
        started = children_of(raw.proc.pid)
        raw.request("shutdown", None)
        raw.notify("exit", None)
        t0 = time.monotonic()
        assert raw.proc.wait(timeout=10) == 0
        assert wait_gone(started, t0 + EXIT_S) == set(), "processes left behind"
    finally:
        if raw.proc.poll() is None:
            raw.proc.kill()
        for pid in alive(children_of(raw.proc.pid)):
            os.kill(pid, signal.SIGKILL)
