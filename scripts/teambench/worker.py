"""A developer's process: its ledger written a chunk at a time, its ``TeamSyncer`` in a thread,
killed in a sync round when asked (``--die``), one batch sent twice (``--duplicate``), then left
to send the rest; what it did in ``stats-<dev>.json``."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from nearline.accounting.entries import Entry
from nearline.accounting.ledger import Ledger, outbox
from nearline.accounting.ledger.schema import connect
from nearline.accounting.team import sync as team_sync
from nearline.accounting.team.connection import TeamTarget
from nearline.accounting.team.schema import migrate
from nearline.accounting.team.sync import Identity, TeamSyncer
from nearline.errors import TeamError
from teambench import URL_ENV, developer, write_json
from teambench.workload import month_plan

CHUNK = 500
"""Rows a worker records between two flushes (the ledger commits them in one transaction)."""
KILL_AT = 0.4
"""Share of its rows a developer has written before it may be killed in a sync round."""
DUPLICATE_AT = 0.2


class MeteredSyncer(TeamSyncer):
    """A ``TeamSyncer`` that keeps the wall time and rows of its rounds and its thread's CPU."""

    busy_s = 0.0
    busy_rows = 0
    rounds = 0
    thread_cpu = 0.0
    first_round: tuple[float, float] | None = None
    """(wall clock, thread CPU) when its first round ended."""

    def sync_now(self, *, wait_lock: float = 0.0, max_rows: int | None = None) -> int:
        t0 = time.perf_counter()
        try:
            sent = super().sync_now(wait_lock=wait_lock, max_rows=max_rows)
        finally:
            self.rounds += 1
        if sent:
            self.busy_s += time.perf_counter() - t0
            self.busy_rows += sent
        return sent

    def _loop(self) -> None:
        try:
            super()._loop()
        finally:
            self.thread_cpu = time.thread_time()

    def read_figures(self, now: float | None = None) -> Any:
        found = super().read_figures(now)
        if self.first_round is None:
            self.first_round = (time.perf_counter(), time.thread_time())
        return found


def kill_hook(marker: Path, mode: str, progress: Callable[[], float]) -> None:
    """Stop in a sync round (inside the open transaction of a batch, or after its commit and
    before the mark) and tell the benchmark, which kills this process with SIGKILL."""
    real = team_sync.send
    fired: list[bool] = []

    def send(pg: psycopg.Connection[Any], batch: outbox.Batch, who: Identity) -> None:
        if fired or progress() < KILL_AT:
            return real(pg, batch, who)
        if mode == "open":
            with pg.transaction():
                real(pg, batch, who)  # a savepoint inside the transaction still open
                await_kill(marker, mode, len(batch), fired)
        else:
            real(pg, batch, who)  # a connection cut by the outage fails here: tried again
            await_kill(marker, mode, len(batch), fired)

    team_sync.send = send  # type: ignore[assignment]


def await_kill(marker: Path, mode: str, rows: int, fired: list[bool]) -> None:
    fired.append(True)
    write_json(marker, {"pid": os.getpid(), "mode": mode, "rows": rows})
    time.sleep(60)  # the benchmark kills this process long before


def send_twice(target: TeamTarget, ledger: Path, who: Identity) -> int:
    """One batch of waiting rows delivered twice, before the syncer marks it; its rows."""
    with connect(ledger) as conn:
        batch = outbox.batch_of(conn, outbox.waiting(conn, team_sync.BATCH_ROWS))
    if not len(batch):
        return 0
    pg = target.connect(autocommit=True)
    try:
        migrate(pg)
        team_sync.send(pg, batch, who)
        team_sync.send(pg, batch, who)
    except psycopg.Error as exc:
        raise target.error(exc) from None
    finally:
        pg.close()
    return len(batch)


def committed(path: Path) -> tuple[int, set[str]]:
    """Rows the ledger holds, and the uids of its shown suggestions not taken yet."""
    if not path.exists():
        return 0, set()
    with connect(path) as conn:
        (count,) = conn.execute("SELECT COUNT(*) FROM requests").fetchone()
        open_ = {u for (u,) in conn.execute("SELECT uid FROM requests WHERE accepted = 0")}
    return int(count), open_


def worker(dev: int, tmp: Path, die: str | None, duplicate: bool) -> int:
    cfg = json.loads((tmp / "config.json").read_text())
    who = developer(dev)
    path = tmp / f"ledger-{dev}.db"
    plan = month_plan(dev, cfg)
    done, untaken = committed(path)  # a restarted process carries on where the ledger ends
    target = TeamTarget(URL_ENV, os.environ[URL_ENV])
    ledger = Ledger(path)
    for entry, taken in plan[:done]:
        if taken and entry.uid in untaken:
            ledger.accept(entry.uid)
    written = [done]
    if die:
        kill_hook(tmp / f"kill-{dev}.json", die, lambda: written[0] / len(plan))
    syncer = MeteredSyncer(target, path, who, lambda root: "send", cfg["sync_interval_s"])
    syncer.start()
    duplicated = write_month(
        ledger, plan, done, written, tmp, dev, cfg, target if duplicate else None
    )
    ledger.close(60)
    wait_sent(syncer, time.time())
    syncer.stop(30)
    drain(syncer)  # what the last round left, if it timed out
    stats = {
        "planned": len(plan),
        "taken": sum(1 for _, taken in plan if taken),
        "uids": hashlib.sha256("".join(sorted(e.uid for e, _ in plan)).encode()).hexdigest(),
        "resumed_from": done,
        "busy_s": syncer.busy_s,
        "busy_rows": syncer.busy_rows,
        "duplicated": duplicated,
    }
    write_json(tmp / f"stats-{dev}.json", stats)
    return 0


def write_month(
    ledger: Ledger,
    plan: list[tuple[Entry, bool]],
    done: int,
    written: list[int],
    tmp: Path,
    dev: int,
    cfg: dict[str, Any],
    duplicate: TeamTarget | None,
) -> int:
    """Record the plan from ``done`` on, a chunk at a time (suggestions taken one chunk
    later), at least ``min_write_s`` for the month; returns the rows sent twice."""
    taken: list[str] = []
    duplicated = 0
    t0 = time.perf_counter()
    for at in range(done, len(plan), CHUNK):
        later = []
        for entry, take in plan[at : at + CHUNK]:
            ledger.record(entry)
            if take:
                later.append(entry.uid)
        for uid in taken:
            ledger.accept(uid)
        taken = later
        ledger.flush(60)
        written[0] = min(at + CHUNK, len(plan))
        write_json(tmp / f"progress-{dev}.json", [written[0], len(plan)])
        if duplicate is not None and not duplicated and written[0] >= DUPLICATE_AT * len(plan):
            duplicated = try_send_twice(duplicate, ledger.path, developer(dev))
        ahead = cfg["min_write_s"] * written[0] / len(plan) - (time.perf_counter() - t0)
        if ahead > 0:
            time.sleep(ahead)
    for uid in taken:
        ledger.accept(uid)
    ledger.flush(60)
    if duplicate is not None and not duplicated:
        duplicated = try_send_twice(duplicate, ledger.path, developer(dev))
    return duplicated


def try_send_twice(target: TeamTarget, ledger: Path, who: Identity) -> int:
    try:
        return send_twice(target, ledger, who)
    except TeamError:
        return 0  # the database is away: tried again after the next chunk


def wait_sent(syncer: TeamSyncer, since: float, limit_s: float = 300.0) -> None:
    """Leave the syncer to send the rest (as a server left open does: after an outage, at
    its back-off's pace) until a round after ``since`` left nothing waiting, at most
    ``limit_s``."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < limit_s:
        status = syncer.status
        if status.last_sync is not None and status.last_sync > since and status.waiting == 0:
            return
        time.sleep(0.1)


def drain(syncer: TeamSyncer, limit_s: float = 600.0) -> None:
    """Sync until the outbox is empty, trying again while the database is away (``limit_s`` at
    most)."""
    t0 = time.perf_counter()
    while True:
        try:
            syncer.sync_now(wait_lock=10)
            if syncer.status.waiting == 0:
                return
        except TeamError:
            if time.perf_counter() - t0 > limit_s:
                raise
            time.sleep(1.0)
