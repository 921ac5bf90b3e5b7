"""Sending this machine's ledger to the team database (the outbox pattern).

Each round reads a batch of waiting rows from the SQLite ledger, sends it in one PostgreSQL
transaction (a request row once, or replaced by a fuller copy; completion buckets replaced,
never added to, and only by a fuller copy), and marks the rows sent only after the commit. A crash,
a ``kill -9`` or a cut connection anywhere leaves the rows waiting; sending them again changes
nothing. One process of a machine sends at a time (a lock file beside the ledger).
"""

from __future__ import annotations

import fcntl
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import psycopg

from nearline.accounting.ledger import outbox
from nearline.accounting.ledger.outbox import Batch, Bucket
from nearline.accounting.ledger.schema import connect, migrate
from nearline.accounting.team import figures
from nearline.accounting.team.connection import TeamTarget
from nearline.accounting.team.schema import COMPLETION_COLUMNS, REFRESH_DAILY, REQUEST_COLUMNS
from nearline.accounting.team.schema import migrate as migrate_team
from nearline.errors import LedgerError, TeamError

log = logging.getLogger(__name__)

BATCH_ROWS = 2000
BACKOFF_S = (2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)
"""Waits between tries while the team database is down (or refuses); then the interval."""

Share = Literal["send", "keep", "other"]
"""A project's rows: sent to this team, kept on this machine, or another team's to send."""

_TOKENS = ("input_tokens", "cache_read_tokens", "cache_write_tokens", "output_tokens")
INSERT_REQUESTS = (
    f"INSERT INTO nearline_requests AS t ({', '.join(REQUEST_COLUMNS)}) "
    f"VALUES ({', '.join(['%s'] * len(REQUEST_COLUMNS))}) ON CONFLICT (uid) DO UPDATE SET "
    + ", ".join(
        f"{c} = excluded.{c}"
        for c in ("model", *_TOKENS, "cache_write_1h_tokens", "cost_usd", "cost_source")
    )
    # Only an imported row grows (another tool's streamed message read again, whole): a
    # copy with as many tokens or fewer, sent twice or late, changes nothing.
    + " WHERE "
    + " + ".join(f"excluded.{c}" for c in _TOKENS)
    + " > "
    + " + ".join(f"t.{c}" for c in _TOKENS)
)
UPSERT_COMPLETIONS = (
    f"INSERT INTO nearline_completions AS t ({', '.join(COMPLETION_COLUMNS)}) "
    f"VALUES ({', '.join(['%s'] * len(COMPLETION_COLUMNS))}) ON CONFLICT (uid) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in COMPLETION_COLUMNS if c != "uid")
    # A bucket only grows (rows are added, suggestions taken): an older copy sent late
    # never replaces a fuller one.
    + " WHERE (excluded.requests, excluded.accepted) >= (t.requests, t.accepted)"
)


@dataclass(frozen=True)
class Identity:
    developer: str
    device: str


def request_params(row: dict[str, Any], who: Identity) -> tuple[Any, ...]:
    """A request row as it leaves the machine: ``REQUEST_COLUMNS`` and nothing else."""
    values = {
        **{c: row[c] for c in REQUEST_COLUMNS if c in row},
        "ts": _utc(float(row["ts"])),
        "developer": who.developer,
        "device": who.device,
        "accepted": None if row["accepted"] is None else bool(row["accepted"]),
    }
    return tuple(values[c] for c in REQUEST_COLUMNS)


def bucket_params(bucket: Bucket, who: Identity) -> tuple[Any, ...]:
    """A completion bucket as it leaves the machine: ``COMPLETION_COLUMNS``."""
    k = bucket.key
    values = {
        "uid": k.uid(who.device),
        "hour": _utc(k.hour),
        "day": k.day,
        "developer": who.developer,
        "device": who.device,
        "project": k.project,
        "client": k.client,
        "model": k.model,
        "language": k.language,
        **{c: getattr(bucket, c) for c in COMPLETION_COLUMNS[9:]},
    }
    return tuple(values[c] for c in COMPLETION_COLUMNS)


def _utc(ts: float) -> Any:
    import datetime as dt

    return dt.datetime.fromtimestamp(ts, dt.timezone.utc)


def send(pg: psycopg.Connection[Any], batch: Batch, who: Identity) -> None:
    """One transaction; committed when this returns. Sending a batch twice changes nothing."""
    with pg.transaction(), pg.cursor() as cur:
        if batch.rows:
            # One developer's sends one at a time (their machines' too): the daily sums are
            # recomputed from every row committed before.
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (who.developer,))
            cur.executemany(INSERT_REQUESTS, [request_params(r, who) for r in batch.rows])
            days = sorted({str(r["day"]) for r in batch.rows})
            cur.execute(REFRESH_DAILY, {"developer": who.developer, "days": days})
        if batch.buckets:
            cur.executemany(UPSERT_COMPLETIONS, [bucket_params(b, who) for b in batch.buckets])


@dataclass
class SyncStatus:
    where: str
    last_sync: float | None = None
    """When a round last committed (or found nothing waiting)."""
    last_error: str | None = None
    waiting: int | None = None
    sent: int = 0
    """Rows this process sent."""
    figures: figures.TeamFigures | None = None
    """The team's spend, read after the last round (for team budgets)."""


@dataclass
class TeamSyncer:
    """Sends the ledger at ``ledger_path`` to ``target``; ``share`` says, per project root,
    whether its rows go. ``start`` runs it every ``interval_s`` on a daemon thread."""

    target: TeamTarget
    ledger_path: Path
    who: Identity
    share: Callable[[str], Share]
    interval_s: float = 60.0
    on_notice: Callable[[str], None] | None = None
    """Called once per distinct problem (and once when syncing works again)."""
    baseline_days: int = 14
    identify: Callable[[], Identity] | None = None
    """Finds ``who`` on the syncer's thread before its first round (it may run git)."""
    on_figures: Callable[[figures.TeamFigures], None] | None = None
    status: SyncStatus = field(init=False)
    _pg: psycopg.Connection[Any] | None = field(default=None, init=False)
    _stop: threading.Event = field(default_factory=threading.Event, init=False)
    _wake: threading.Event = field(default_factory=threading.Event, init=False)
    _thread: threading.Thread | None = field(default=None, init=False)
    _told: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.status = SyncStatus(self.target.where)

    # -- one sync --------------------------------------------------------------------------
    def sync_now(self, *, wait_lock: float = 0.0, max_rows: int | None = None) -> int:
        """Send what is waiting; returns the rows sent. ``TeamError`` when the team database
        cannot take them (the rows stay waiting); ``LedgerError`` for the local ledger."""
        try:
            sent = self._sync(wait_lock, max_rows)
        except TeamError as exc:
            try:
                with self._local() as conn:
                    outbox.note(conn, last_error=str(exc))
            except LedgerError as again:
                log.debug("cannot note the sync's error: %s", again)
            raise
        return sent

    def _sync(self, wait_lock: float, max_rows: int | None) -> int:
        sent = 0
        with self._local() as conn, _machine_lock(self.ledger_path, wait_lock) as locked:
            if not locked:
                return 0  # another nearline on this machine is sending
            pg = self._connection()
            skip: set[str] = set()
            while max_rows is None or sent < max_rows:
                rows = outbox.waiting(conn, BATCH_ROWS, skip)
                if not rows:
                    break
                decisions = {root: self.share(root) for root in {r["project_root"] for r in rows}}
                skip |= {root for root, d in decisions.items() if d == "other"}
                kept = [r["id"] for r in rows if decisions[r["project_root"]] == "keep"]
                outbox.keep_local(conn, kept)
                chosen = [r for r in rows if decisions[r["project_root"]] == "send"]
                if not chosen:
                    continue
                batch = outbox.batch_of(conn, chosen)
                round_ = outbox.next_round(conn)
                try:
                    send(pg, batch, self.who)
                except psycopg.Error as exc:
                    self._drop_connection()
                    raise self.target.error(exc, "cannot send to") from None
                sent += outbox.mark_sent(conn, batch, round_)
            self.status.waiting = outbox.waiting_count(conn)
            outbox.note(conn, last_error="", last_sync=self.target.where)
        self.status.sent += sent
        self.status.last_sync = time.time()
        return sent

    def read_figures(self, now: float | None = None) -> figures.TeamFigures:
        """The team's spend this month (and this developer's trailing days), with the round
        it covers (read first: every row of that round is already in the team database)."""
        with self._local() as conn:
            through = outbox.last_round(conn)
        try:
            found = figures.read(
                self._connection(), self.who.developer, through, self.baseline_days, now
            )
        except psycopg.Error as exc:
            self._drop_connection()
            raise self.target.error(exc, "cannot read") from None
        self.status.figures = found
        return found

    @contextmanager
    def _local(self) -> Iterator[sqlite3.Connection]:
        try:
            conn = connect(self.ledger_path)
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot open the usage ledger {self.ledger_path}: {exc}") from None
        try:
            migrate(conn)
            yield conn
        except sqlite3.Error as exc:
            raise LedgerError(f"the usage ledger {self.ledger_path}: {exc}") from None
        finally:
            conn.close()

    def _connection(self) -> psycopg.Connection[Any]:
        if self._pg is None or self._pg.closed or self._pg.broken:
            pg = self.target.connect(autocommit=True)
            try:
                migrate_team(pg)
            except psycopg.Error as exc:
                pg.close()
                raise self.target.error(exc) from None
            except TeamError:
                pg.close()
                raise
            self._pg = pg
        return self._pg

    def _drop_connection(self) -> None:
        if self._pg is not None:
            with suppress(Exception):
                self._pg.close()
        self._pg = None

    # -- in the background -------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="nearline-team", daemon=True)
            self._thread.start()

    def wake(self) -> None:
        """Sync now rather than at the next interval."""
        self._wake.set()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop after the round in progress (waits up to ``timeout`` for it)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None and timeout > 0:
            self._thread.join(timeout)
        if self._thread is None or not self._thread.is_alive():
            self._drop_connection()

    def _loop(self) -> None:
        failures = 0
        if self.identify is not None:
            self.who = self.identify()
        while not self._stop.is_set():
            try:
                self.sync_now()
                found = self.read_figures()
                if self.on_figures is not None:
                    self.on_figures(found)
                if self._told:
                    self._tell(
                        f"nearline: the team database {self.target.where} is back; "
                        "the waiting usage rows were sent"
                    )
                self._told = False
                self.status.last_error = None
                failures = 0
            except (TeamError, LedgerError) as exc:
                self.status.last_error = str(exc)
                if not self._told:  # once an outage, not once a try
                    self._told = True
                    self._tell(f"nearline: {exc}; usage is kept on this machine and sent later")
                failures += 1
            except Exception as exc:  # never let the thread die: report, back off, go on
                log.exception("team sync failed")
                self.status.last_error = f"team sync failed: {exc!r}"
                failures += 1
            wait = BACKOFF_S[min(failures, len(BACKOFF_S)) - 1] if failures else self.interval_s
            self._wake.wait(wait)
            self._wake.clear()
        self._drop_connection()

    def _tell(self, message: str) -> None:
        log.info("%s", message)
        if self.on_notice is None:
            return
        try:
            self.on_notice(message)
        except Exception:
            log.debug("on_notice failed", exc_info=True)


@contextmanager
def _machine_lock(ledger: Path, wait: float) -> Iterator[bool]:
    """One sender per machine: True when this process holds the lock."""
    path = ledger.with_name(ledger.name + ".sync-lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    yield False
                    return
                time.sleep(0.1)
        try:
            yield True
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
