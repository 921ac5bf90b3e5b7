"""The server's background import (``app/import_run.py`` in a child process): paused whenever
the engine works, it stops only between ledger transactions, so a paused import never holds
the ledger's lock (the server's own rows, and another window's import, would wait on it)."""

from __future__ import annotations

import sqlite3
import sys
import time
from pathlib import Path

import pytest

from nearline.app.child import Child
from nearline.app.usage_import import BackgroundImport

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))


def state_of(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return "gone"
    return stat[stat.rindex(b")") + 2 :].split()[0].decode()


def test_a_paused_import_holds_no_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bench_usage_import import make_big

    logs = tmp_path / "claude" / "projects" / "p"
    make_big(logs / "big.jsonl", 0.06)  # some 9,000 answers: a few seconds of import
    ledger = tmp_path / "usage.db"
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "claude"))
    monkeypatch.setenv("NEARLINE_LEDGER", str(ledger))
    monkeypatch.setenv("NEARLINE_CONFIG", str(tmp_path / "none.toml"))
    importer = BackgroundImport(["claude-code"], 3600, None)
    said: list[dict[str, object]] = []
    importer.on_result = said.append
    importer.start()
    child: Child = importer.child
    try:
        deadline = time.monotonic() + 60
        while child.process is None or not ledger.exists():
            assert time.monotonic() < deadline, "the import never began"
            time.sleep(0.01)
        process = child.process
        paused = 0
        while process.poll() is None and not said:
            child.hold(True)
            until = time.monotonic() + 5
            while state_of(process.pid) not in ("T", "t", "gone", "Z") and not said:
                assert time.monotonic() < until, "the import did not stop"
                time.sleep(0.005)
            if state_of(process.pid) in ("T", "t"):
                paused += 1
                with sqlite3.connect(ledger, timeout=0.2) as conn:
                    conn.execute("BEGIN IMMEDIATE")  # "database is locked" if it held it
                    conn.rollback()
            child.hold(False)
            time.sleep(0.03)
        deadline = time.monotonic() + 60
        while not said:
            assert time.monotonic() < deadline, "the import did not finish"
            time.sleep(0.05)
        assert paused >= 5, paused
        assert "error" not in said[0] and int(str(said[0]["records"])) > 8000, said
    finally:
        importer.stop()
