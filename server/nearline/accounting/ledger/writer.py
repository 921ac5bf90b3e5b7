"""The usage ledger: one SQLite row per request (completions included), written off the hot path.

The database lives in the user data dir (``NEARLINE_LEDGER`` names another file). It runs in WAL
mode; each batch is one transaction, so a crash (even ``kill -9``) loses nothing committed.
``record`` only queues a row: a writer thread commits it. A locked database is retried; a
damaged one is moved aside (never deleted) and a new one started; either is reported once
through ``on_error`` and the server carries on.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import nearline.accounting.ledger.queries as queries
from nearline.accounting.budget import Spend, Spending
from nearline.accounting.entries import Entry, day_of
from nearline.accounting.ledger.schema import (
    COLUMNS,
    SCHEMA_VERSION,
    check_not_a_folder,
    connect,
    ledger_path,
    migrate,
)
from nearline.errors import LedgerError

log = logging.getLogger(__name__)

BATCH = 500
MAX_PENDING = 100_000
"""Rows kept in memory while the database cannot be written; older ones are dropped past this."""
RETRY_S = (0.05, 0.2, 1.0, 5.0)
COALESCE_S = 0.25
"""How long the writer gathers rows before a commit (a crash can lose these, never committed
ones)."""


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
        check_not_a_folder(self.path)
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
                # A row already in the team database goes again with its new mark.
                conn.executemany(
                    "UPDATE requests SET accepted = 1, synced = MIN(synced, 0) WHERE uid = ?",
                    accepted,
                )
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
        spent = queries.today_spend(self._connection(), day)
        with self._lock:
            self._today = (day, spent)

    def _close_conn(self) -> None:
        if self._conn is not None:
            with suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None

    # -- reading -----------------------------------------------------------------------------
    @contextmanager
    def reader(self, timeout: float = 5.0) -> Iterator[sqlite3.Connection]:
        """A connection for queries; ``LedgerError`` when the database cannot be read."""
        check_not_a_folder(self.path)
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
            return queries.select_rows(conn, since, until, project_root)

    def daily(
        self,
        since: str | None = None,
        until: str | None = None,
        project_root: str | None = None,
    ) -> dict[str, tuple[float, int]]:
        """Day → (USD, tokens sent off this machine)."""
        with self.reader() as conn:
            return queries.daily(conn, since, until, project_root)

    def first_day(self, project_root: str | None = None) -> str | None:
        """The day of the oldest row (of ``project_root``'s, when given); None when empty."""
        with self.reader() as conn:
            return queries.select_first_day(conn, project_root)

    def spending(self, project_root: str, now: float | None = None) -> Spending:
        """Today's and this month's spend, for the project and for the user; waits for rows
        still queued, so a budget sees the request just made."""
        now = time.time() if now is None else now
        with self._lock:
            unwritten = self._cloud_queued > self._cloud_written
        if unwritten:  # on the editor's request path: a locked database costs 1 s
            self.flush(0.5)
        today = day_of(now)
        with self.reader(timeout=0.5) as conn:
            totals = queries.spent(conn, project_root, today[:8] + "01", today)

        def add(*keys: tuple[bool, bool]) -> Spend:
            parts = [totals.get(k, (0.0, 0)) for k in keys]
            return Spend(sum(p[0] for p in parts), sum(p[1] for p in parts))

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
