"""The usage ledger: one SQLite row per request (completions included), written off the hot path.

The database lives in the user data dir (``NEARLINE_LEDGER`` names another file). It runs in WAL
mode; each batch is one transaction, so a crash (even ``kill -9``) loses nothing committed.
``record`` only queues a row: a writer thread commits it. A locked database is retried; a
damaged one is moved aside (never deleted) and a new one started; either is reported once
through ``on_error`` and the server carries on.
"""

from __future__ import annotations

import logging
import os
import queue
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nearline.accounting.prices import Tokens
from nearline.errors import LedgerError
from nearline.paths import data_dir

log = logging.getLogger(__name__)

OUTCOMES = ("ok", "error", "cancelled", "served-from-cache", "typed-through")

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
)
BILLED = "cloud = 1"
"""The rows budgets and spend count (only these cost money); the partial index's condition."""
BATCH = 500
MAX_PENDING = 100_000
"""Rows kept in memory while the database cannot be written; older ones are dropped past this."""
RETRY_S = (0.05, 0.2, 1.0, 5.0)
COALESCE_S = 0.25
"""How long the writer gathers rows before a commit (a crash can lose these, never committed
ones)."""


def ledger_path() -> Path:
    """``NEARLINE_LEDGER``, else ``usage.db`` in the data dir (``NEARLINE_DATA_DIR``)."""
    value = os.environ.get("NEARLINE_LEDGER")
    return Path(value).expanduser() if value else data_dir() / "usage.db"


def _check_not_a_folder(path: Path) -> None:
    if path.is_dir():
        raise LedgerError(f"the usage ledger {path} is a folder; NEARLINE_LEDGER must name a file")


def day_of(ts: float) -> str:
    return time.strftime("%Y-%m-%d", time.localtime(ts))


@dataclass(frozen=True)
class Entry:
    """One request."""

    task: str
    outcome: str
    tier: str = "local"
    provider: str = "local"
    model: str = ""
    tokens: Tokens = field(default_factory=Tokens)
    latency_ms: float = 0.0
    cost_usd: float = 0.0
    project_root: str = ""
    project: str = ""
    language: str = ""
    client: str = "lsp"
    """"lsp" or the CLI command ("complete", ...)."""
    cloud: bool = False
    """Sent off this machine (what token budgets count)."""
    accepted: bool | None = None
    """For completions shown to the person: whether they took it (None: not a suggestion)."""
    uid: str = field(default_factory=lambda: uuid.uuid4().hex)
    ts: float = field(default_factory=time.time)

    def row(self) -> tuple[Any, ...]:
        return (
            self.uid,
            self.ts,
            day_of(self.ts),
            self.project_root,
            self.project,
            self.language,
            self.task,
            self.tier,
            self.provider,
            self.model,
            self.tokens.input,
            self.tokens.cache_read,
            self.tokens.cache_write,
            self.tokens.output,
            round(self.latency_ms, 2),
            self.cost_usd,
            self.outcome,
            None if self.accepted is None else int(self.accepted),
            self.client,
            int(self.cloud),
        )


@dataclass(frozen=True)
class Spend:
    """What was spent in one period, for budgets and the status bar."""

    usd: float = 0.0
    cloud_tokens: int = 0


@dataclass(frozen=True)
class Spending:
    project_day: Spend = Spend()
    project_month: Spend = Spend()
    user_day: Spend = Spend()
    user_month: Spend = Spend()


def connect(path: Path, *, timeout: float = 5.0, writer: bool = True) -> sqlite3.Connection:
    """A connection; the writer's also puts the file in WAL mode (a reader leaves the mode
    alone: switching it needs the lock the writer may hold while it migrates)."""
    conn = sqlite3.connect(str(path), timeout=timeout, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    if writer:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema to ``SCHEMA_VERSION``; returns the version found. A newer schema than
    this nearline knows is refused (``LedgerError``) rather than guessed at."""
    found = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if found > SCHEMA_VERSION:
        raise LedgerError(
            f"the ledger's schema is version {found}, newer than this nearline knows "
            f"({SCHEMA_VERSION}); upgrade nearline"
        )
    for version in range(found, SCHEMA_VERSION):
        # One transaction per step: a crash or an error leaves a whole version.
        script = f"BEGIN;\n{MIGRATIONS[version]}\nPRAGMA user_version = {version + 1};\nCOMMIT;"
        try:
            conn.executescript(script)
        except BaseException:
            if conn.in_transaction:
                conn.rollback()
            raise
    return found


class Ledger:
    """Writes rows on its own thread; reads open their own connection."""

    def __init__(
        self,
        path: Path | None = None,
        *,
        on_error: Callable[[str], None] | None = None,
        busy_timeout: float = 5.0,
    ) -> None:
        self.path = path or ledger_path()
        self.busy_timeout = busy_timeout
        """Seconds a write waits for another connection's lock before it is retried later."""
        self.on_error = on_error
        self.error: str | None = None
        """The last problem with the database, or None while it works."""
        self.dropped = 0
        self._queue: queue.Queue[Any] = queue.Queue()
        self._reported: set[str] = set()
        self._lock = threading.Lock()
        self._today: tuple[str, float] | None = None
        self._cloud_queued = 0
        """Rows sent off the machine that were queued, and (below) that were committed: a
        budget waits for the writer only while they differ."""
        self._cloud_written = 0
        self._writer = threading.Thread(
            target=self._write_loop, name="nearline-ledger", daemon=True
        )
        self._conn: sqlite3.Connection | None = None
        self._refresh = threading.Event()
        self._wake = threading.Event()
        self._writer.start()
        self._ask_refresh()

    # -- writing -----------------------------------------------------------------------------
    def record(self, entry: Entry) -> str:
        """Queue ``entry``; returns its uid at once (never waits for the disk)."""
        if self._queue.qsize() >= MAX_PENDING:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 10_000 == 0:
                self._report(
                    f"{self.dropped} usage rows dropped: the ledger cannot keep up or cannot write"
                )
            return entry.uid
        self._queue.put(("row", entry))
        with self._lock:
            if entry.cloud:
                self._cloud_queued += 1
            day = day_of(entry.ts)
            if self._today is not None and self._today[0] == day:
                self._today = (day, self._today[1] + entry.cost_usd)
        return entry.uid

    def _ask_refresh(self) -> None:
        """Have the writer read today's spend (for ``spend_today``), off the caller's thread."""
        self._refresh.set()
        self._queue.put(("refresh", None))

    def accept(self, uid: str) -> None:
        """Mark the suggestion ``uid`` as accepted."""
        self._queue.put(("accept", uid))

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued row is committed (or given up); False on timeout."""
        done = threading.Event()
        self._queue.put(("flush", done))
        self._wake.set()
        return done.wait(timeout)

    def close(self, timeout: float = 10.0) -> bool:
        """Write what is queued and stop; False when that took longer than ``timeout``."""
        if self._writer.is_alive():
            self._queue.put(("stop", None))
            self._wake.set()
            self._writer.join(timeout)
        return not self._writer.is_alive()

    def _report(self, message: str) -> None:
        self.error = message
        # Whoever gave on_error shows the message; the log gets it once more only at INFO.
        log.log(logging.INFO if self.on_error else logging.WARNING, "ledger: %s", message)
        if message not in self._reported and self.on_error is not None:
            self._reported.add(message)
            try:
                self.on_error(message)
            except Exception:
                log.debug("on_error failed", exc_info=True)

    def _open(self) -> sqlite3.Connection:
        _check_not_a_folder(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = connect(self.path, timeout=self.busy_timeout)
        try:
            migrate(conn)
            conn.execute("PRAGMA quick_check").fetchone()
        except BaseException:
            conn.close()
            raise
        return conn

    def _quarantine(self, exc: Exception) -> None:
        """Move a damaged database aside (with its WAL) and start a new one."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        moved = self.path.with_name(f"{self.path.name}.damaged-{stamp}")
        for suffix in ("", "-wal", "-shm"):
            src = Path(str(self.path) + suffix)
            if src.exists():
                src.replace(Path(str(moved) + suffix))
        self._report(
            f"{self.path} was damaged ({exc}); moved it to {moved} and started a new ledger"
        )

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            try:
                self._conn = self._open()
            except sqlite3.DatabaseError as exc:
                if isinstance(exc, sqlite3.OperationalError):
                    raise  # locked, unwritable or no folder: retried, the file is left alone
                self._quarantine(exc)
                self._conn = self._open()
        return self._conn

    def _write(self, batch: Sequence[tuple[str, Any]]) -> None:
        conn = self._connection()
        rows = [item.row() for kind, item in batch if kind == "row"]
        accepted = [(uid,) for kind, uid in batch if kind == "accept"]
        placeholders = ", ".join("?" for _ in COLUMNS)
        cloud = sum(1 for kind, item in batch if kind == "row" and item.cloud)
        with conn:
            if rows:
                conn.executemany(
                    f"INSERT OR IGNORE INTO requests ({', '.join(COLUMNS)}) "
                    f"VALUES ({placeholders})",
                    rows,
                )
            if accepted:
                conn.executemany("UPDATE requests SET accepted = 1 WHERE uid = ?", accepted)
        with self._lock:
            self._cloud_written += cloud

    def _write_loop(self) -> None:
        pending: list[tuple[str, Any]] = []
        waiters: list[threading.Event] = []
        stop = False
        failures = 0
        while not stop or pending:
            if not pending or failures:
                try:
                    item = self._queue.get(timeout=RETRY_S[min(failures, 3)] if failures else None)
                except queue.Empty:
                    item = None
                if item is not None:
                    self._take(item, pending, waiters)
                    stop = stop or item[0] == "stop"
                    if item[0] == "row" and not failures:
                        # Rows come one per keystroke: gather them into one transaction, away
                        # from the moment an answer is being sent (a flush ends the wait).
                        self._wake.wait(COALESCE_S)
                        self._wake.clear()
            while len(pending) < BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                self._take(item, pending, waiters)
                stop = stop or item[0] == "stop"
            work = [p for p in pending if p[0] in ("row", "accept")]
            try:
                if work:
                    self._write(work)
                elif waiters:
                    self._connection()  # a flush also means: the schema is migrated
                if self._refresh.is_set():
                    self._refresh.clear()  # asked again by spend_today while it has no figure
                    self._read_today()
                pending.clear()
                failures = 0
                if self.error is not None:
                    log.info("ledger: writing again")
                    self.error = None
            except (sqlite3.Error, OSError, LedgerError) as exc:
                failures += 1
                self._close_conn()
                self._report(f"cannot write the usage ledger {self.path}: {exc}")
                if stop and failures > len(RETRY_S):
                    for done in waiters:
                        done.set()
                    break  # shutting down: the rows cannot be saved
                if len(pending) > MAX_PENDING:
                    self.dropped += len(pending) - MAX_PENDING
                    del pending[: len(pending) - MAX_PENDING]
            if not pending or stop:
                for done in waiters:
                    done.set()
                waiters.clear()
        self._close_conn()

    def _take(
        self, item: tuple[str, Any], pending: list[tuple[str, Any]], waiters: list[threading.Event]
    ) -> None:
        if item[0] == "flush":
            waiters.append(item[1])
        elif item[0] in ("row", "accept"):
            pending.append(item)

    def _read_today(self) -> None:
        day = day_of(time.time())
        row = (
            self._connection()
            .execute(f"SELECT SUM(cost_usd) FROM requests WHERE {BILLED} AND day = ?", (day,))
            .fetchone()
        )
        with self._lock:
            self._today = (day, float(row[0] or 0))

    def _close_conn(self) -> None:
        if self._conn is not None:
            with suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None

    # -- reading -----------------------------------------------------------------------------
    @contextmanager
    def reader(self, timeout: float = 5.0) -> Iterator[sqlite3.Connection]:
        """A connection for queries; ``LedgerError`` when the database cannot be read."""
        _check_not_a_folder(self.path)
        if not self.path.exists():
            conn = sqlite3.connect(":memory:")
            conn.row_factory = sqlite3.Row
            migrate(conn)
        else:
            try:
                conn = connect(self.path, timeout=timeout, writer=False)
                found = int(conn.execute("PRAGMA user_version").fetchone()[0])
                if found < SCHEMA_VERSION:
                    conn.close()
                    self.flush(timeout)  # the writer migrates
                    conn = connect(self.path, timeout=timeout, writer=False)
                    if int(conn.execute("PRAGMA user_version").fetchone()[0]) < SCHEMA_VERSION:
                        conn.close()
                        raise sqlite3.OperationalError("its schema is still being upgraded")
            except sqlite3.Error as exc:
                raise LedgerError(f"cannot read the usage ledger {self.path}: {exc}") from None
        try:
            yield conn
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot read the usage ledger {self.path}: {exc}") from None
        finally:
            conn.close()

    def rows(
        self,
        since: str | None = None,
        until: str | None = None,
        project_root: str | None = None,
    ) -> list[dict[str, Any]]:
        """Rows with ``since <= day <= until`` (``YYYY-MM-DD``, local time), oldest first."""
        with self.reader() as conn:
            return select_rows(conn, since, until, project_root)

    def daily(
        self,
        since: str | None = None,
        until: str | None = None,
        project_root: str | None = None,
    ) -> dict[str, tuple[float, int]]:
        """Day → (USD, tokens sent off this machine)."""
        where, args = _where(since, until, project_root, billed=True)
        sql = (
            "SELECT day, SUM(cost_usd), SUM(input_tokens + cache_read_tokens + "
            f"cache_write_tokens + output_tokens) FROM requests {where} GROUP BY day"
        )
        with self.reader() as conn:
            return {d: (float(u or 0), int(t or 0)) for d, u, t in conn.execute(sql, args)}

    def first_day(self, project_root: str | None = None) -> str | None:
        """The day of the oldest row (of ``project_root``'s, when given); None when empty."""
        with self.reader() as conn:
            return select_first_day(conn, project_root)

    def spending(self, project_root: str, now: float | None = None) -> Spending:
        """Today's and this month's spend, for the project and for the user; waits for rows
        still queued, so a budget sees the request just made."""
        now = time.time() if now is None else now
        with self._lock:
            unwritten = self._cloud_queued > self._cloud_written
        if unwritten:  # on the editor's request path: a locked database costs 1 s
            self.flush(0.5)
        today = day_of(now)
        month_start = today[:8] + "01"
        sql = (
            "SELECT project_root = ?, day = ?, SUM(cost_usd), SUM(input_tokens + "
            "cache_read_tokens + cache_write_tokens + output_tokens) "
            f"FROM requests WHERE {BILLED} AND day >= ? AND day <= ? GROUP BY 1, 2"
        )
        totals: dict[tuple[bool, bool], Spend] = {}
        with self.reader(timeout=0.5) as conn:
            for mine, is_today, usd, tokens in conn.execute(
                sql, (project_root, today, month_start, today)
            ):
                totals[(bool(mine), bool(is_today))] = Spend(float(usd or 0), int(tokens or 0))

        def add(*keys: tuple[bool, bool]) -> Spend:
            parts = [totals.get(k, Spend()) for k in keys]
            return Spend(sum(p.usd for p in parts), sum(p.cloud_tokens for p in parts))

        result = Spending(
            project_day=add((True, True)),
            project_month=add((True, True), (True, False)),
            user_day=add((True, True), (False, True)),
            user_month=add((True, True), (True, False), (False, True), (False, False)),
        )
        with self._lock:
            self._today = (today, result.user_day.usd)
        return result

    def spend_today(self) -> float:
        """The user's spend today, kept in memory (for status notifications); never waits for
        the database: a new day's figure is read in the background."""
        with self._lock:
            cached = self._today
        if cached is None or cached[0] != day_of(time.time()):
            if not self._refresh.is_set():
                self._ask_refresh()
            return 0.0 if cached is None or cached[0] != day_of(time.time()) else cached[1]
        return cached[1]

    def notice_once(self, key: str) -> bool:
        """True the first time ``key`` is noted in this ledger (a warning shown once, even
        across restarts); False after that, or when the database cannot be written."""
        try:
            self.flush(2.0)
            with self.reader() as conn, conn:
                cur = conn.execute(
                    "INSERT OR IGNORE INTO notices (key, ts) VALUES (?, ?)", (key, time.time())
                )
                return cur.rowcount == 1
        except LedgerError as exc:
            log.warning("ledger: %s", exc)
            return False


def connect_read_only(path: Path, timeout: float = 5.0) -> sqlite3.Connection:
    """A connection that can only read: it never creates, migrates or moves the file."""
    if path.is_dir():
        raise sqlite3.OperationalError("a folder, not a ledger file")
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=timeout)
    conn.row_factory = sqlite3.Row
    return conn


def select_rows(
    conn: sqlite3.Connection,
    since: str | None = None,
    until: str | None = None,
    project_root: str | None = None,
) -> list[dict[str, Any]]:
    """Rows with ``since <= day <= until`` (``YYYY-MM-DD``, local time), oldest first;
    ``project_root`` matches a project's root path or its name."""
    where, args = _where(since, until, project_root)
    cur = conn.execute(f"SELECT * FROM requests {where} ORDER BY ts, id", args)
    return [dict(r) for r in cur]


def select_first_day(conn: sqlite3.Connection, project_root: str | None = None) -> str | None:
    """The day of the oldest row (``project_root``: a project's root path or its name)."""
    where, args = _where(None, None, project_root)
    found = conn.execute(f"SELECT MIN(day) FROM requests {where}", args).fetchone()[0]
    return str(found) if found else None


def _where(
    since: str | None, until: str | None, project_root: str | None, *, billed: bool = False
) -> tuple[str, list[Any]]:
    clauses: list[str] = [BILLED] if billed else []
    args: list[Any] = []
    if since:
        clauses.append("day >= ?")
        args.append(since)
    if until:
        clauses.append("day <= ?")
        args.append(until)
    if project_root is not None:
        clauses.append("(project_root = ? OR project = ?)")
        args.extend([project_root, project_root])
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", args
