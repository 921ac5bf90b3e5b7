"""The ledger's file and schema: where it lives, its migrations, and connections to it."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from nearline.errors import LedgerError
from nearline.paths import data_dir

MIGRATIONS: tuple[str, ...] = (
    # 1: the request table
    """
    CREATE TABLE requests (
        id INTEGER PRIMARY KEY,
        uid TEXT NOT NULL UNIQUE,
        ts REAL NOT NULL,
        day TEXT NOT NULL,
        project_root TEXT NOT NULL DEFAULT '',
        project TEXT NOT NULL DEFAULT '',
        language TEXT NOT NULL DEFAULT '',
        task TEXT NOT NULL,
        tier TEXT NOT NULL DEFAULT '',
        provider TEXT NOT NULL DEFAULT '',
        model TEXT NOT NULL DEFAULT '',
        input_tokens INTEGER NOT NULL DEFAULT 0,
        cache_read_tokens INTEGER NOT NULL DEFAULT 0,
        cache_write_tokens INTEGER NOT NULL DEFAULT 0,
        output_tokens INTEGER NOT NULL DEFAULT 0,
        latency_ms REAL NOT NULL DEFAULT 0,
        cost_usd REAL NOT NULL DEFAULT 0,
        outcome TEXT NOT NULL,
        accepted INTEGER
    );
    CREATE INDEX requests_day ON requests(day);
    CREATE INDEX requests_project_day ON requests(project_root, day);
    """,
    # 2: where a request came from, and warnings already shown
    """
    ALTER TABLE requests ADD COLUMN client TEXT NOT NULL DEFAULT 'lsp';
    ALTER TABLE requests ADD COLUMN cloud INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE notices (key TEXT PRIMARY KEY, ts REAL NOT NULL);
    """,
    # 3: budgets read only what was sent off the machine (a month of completions is thousands
    # of local rows), through a small index; rows from before v2 get their ``cloud`` flag
    """
    UPDATE requests SET cloud = 1 WHERE provider NOT IN ('', 'local') OR cost_usd > 0;
    CREATE INDEX requests_cloud_day ON requests(day, project_root) WHERE cloud = 1;
    """,
    # 4: the team ledger's outbox: each row's sync state (``SYNC_*``), and a shown
    # suggestion's length (the characters Tab writes when it is taken)
    """
    ALTER TABLE requests ADD COLUMN chars INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE requests ADD COLUMN synced INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX requests_waiting ON requests(id) WHERE synced = 0;
    CREATE INDEX requests_synced ON requests(synced) WHERE synced > 0;
    CREATE TABLE sync_state (key TEXT PRIMARY KEY, value TEXT NOT NULL, ts REAL NOT NULL);
    """,
    # 5: other tools' usage (issue 23): where a row's cost came from ('' for nearline's own
    # requests), how far each of their log files was read (by a hash of its path: no path is
    # kept), and Copilot's daily aggregates
    """
    ALTER TABLE requests ADD COLUMN cost_source TEXT NOT NULL DEFAULT '';
    CREATE TABLE import_files (
        source TEXT NOT NULL,
        file TEXT NOT NULL,
        device INTEGER NOT NULL,
        inode INTEGER NOT NULL,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        end_offset INTEGER NOT NULL,
        ts REAL NOT NULL,
        PRIMARY KEY (source, file)
    );
    CREATE TABLE tool_days (
        uid TEXT PRIMARY KEY,
        source TEXT NOT NULL,
        day TEXT NOT NULL,
        user TEXT NOT NULL DEFAULT '',
        editor TEXT NOT NULL DEFAULT '',
        language TEXT NOT NULL DEFAULT '',
        model TEXT NOT NULL DEFAULT '',
        suggestions INTEGER NOT NULL DEFAULT 0,
        acceptances INTEGER NOT NULL DEFAULT 0,
        lines_suggested INTEGER NOT NULL DEFAULT 0,
        lines_accepted INTEGER NOT NULL DEFAULT 0,
        chats INTEGER NOT NULL DEFAULT 0,
        active_users INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX tool_days_day ON tool_days(day);
    """,
    # 6: cache writes kept an hour (Anthropic's ttl "1h", priced at 2x input), a part of
    # cache_write_tokens
    """
    ALTER TABLE requests ADD COLUMN cache_write_1h_tokens INTEGER NOT NULL DEFAULT 0;
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)

COLUMNS = (
    "uid",
    "ts",
    "day",
    "project_root",
    "project",
    "language",
    "task",
    "tier",
    "provider",
    "model",
    "input_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "output_tokens",
    "latency_ms",
    "cost_usd",
    "outcome",
    "accepted",
    "client",
    "cloud",
    "chars",
    "cost_source",
    "cache_write_1h_tokens",
)
SYNC_WAITING = 0
"""A row not yet in the team database (or changed since: a suggestion taken after it went)."""
SYNC_KEPT = -1
"""A row that stays on this machine (its project is local-only, or it has no team)."""
# A positive ``synced`` is the sync round that sent the row (rounds grow; see ``outbox``).
BILLED = "cloud = 1"
"""The rows budgets and spend count (only these cost money); the partial index's condition."""


def ledger_path() -> Path:
    """``NEARLINE_LEDGER``, else ``usage.db`` in the data dir (``NEARLINE_DATA_DIR``)."""
    value = os.environ.get("NEARLINE_LEDGER")
    return Path(value).expanduser() if value else data_dir() / "usage.db"


def check_not_a_folder(path: Path) -> None:
    if path.is_dir():
        raise LedgerError(f"the usage ledger {path} is a folder; NEARLINE_LEDGER must name a file")


def connect(path: Path, *, timeout: float = 5.0, writer: bool = True) -> sqlite3.Connection:
    """A connection; the writer's also puts the file in WAL mode (a reader leaves the mode
    alone: switching it needs the lock the writer may hold while it migrates)."""
    conn = sqlite3.connect(str(path), timeout=timeout, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    if writer:
        _wal(conn, timeout)
        conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def _wal(conn: sqlite3.Connection, timeout: float) -> None:
    """WAL mode; switching a new file needs a lock SQLite does not wait for (two processes
    opening it at once): retried until ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                conn.close()
                raise
            time.sleep(0.02)


def _version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema to ``SCHEMA_VERSION``; returns the version found. A newer schema than
    this nearline knows is refused (``LedgerError``) rather than guessed at. Safe while another
    process migrates the same file (the ledger's writer and the team sync open it at once)."""
    found = _version(conn)
    if found > SCHEMA_VERSION:
        raise LedgerError(
            f"the ledger's schema is version {found}, newer than this nearline knows "
            f"({SCHEMA_VERSION}); upgrade nearline"
        )
    for version in range(found, SCHEMA_VERSION):
        # One transaction per step, taking the write lock first (waiting for another
        # process's step): a crash or an error leaves a whole version.
        script = (
            f"BEGIN IMMEDIATE;\n{MIGRATIONS[version]}\n"
            f"PRAGMA user_version = {version + 1};\nCOMMIT;"
        )
        try:
            conn.executescript(script)
        except sqlite3.OperationalError:
            if conn.in_transaction:
                conn.rollback()
            if _version(conn) <= version:
                raise
            # another process made this version while this one waited for the lock
        except BaseException:
            if conn.in_transaction:
                conn.rollback()
            raise
    return found


def connect_read_only(path: Path, timeout: float = 5.0) -> sqlite3.Connection:
    """A connection that can only read: it never creates, migrates or moves the file."""
    if path.is_dir():
        raise sqlite3.OperationalError("a folder, not a ledger file")
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=timeout)
    conn.row_factory = sqlite3.Row
    return conn
