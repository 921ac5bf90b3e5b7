"""The team database (started here, or ``--url``'s) and the developers' processes: so many at
a time, the database stopped and started again while they write, two killed in a sync round and
restarted; what they printed; rows in each ledger and in the team database."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from contextlib import closing
from pathlib import Path
from typing import Any

import psycopg

from nearline.accounting.team.schema import migrate
from nearline.tasks import AUTOCOMPLETE
from teambench import SCRIPT, URL_ENV, developer, log

OUTAGE_AT = 0.3
"""Share of the month's rows written when the database is stopped."""


def start_server(args: argparse.Namespace) -> tuple[Any, str]:
    """The team database: PostgreSQL started in a temporary folder (``scripts/pg_local.py``), or
    ``--url``'s, migrated and checked empty; the server (None for ``--url``) and its URL."""
    if args.url:
        with psycopg.connect(args.url, autocommit=True) as pg:
            migrate(pg)
            (rows,) = pg.execute(
                "SELECT (SELECT count(*) FROM nearline_requests) + "
                "(SELECT count(*) FROM nearline_completions)"
            ).fetchone() or (0,)
        if rows:
            raise SystemExit(f"--url: the benchmark needs an empty team database ({rows} rows)")
        return None, str(args.url)
    from pg_local import LocalPostgres

    server = LocalPostgres()
    server.start()
    return server, str(server.url())


@dataclasses.dataclass
class Outage:
    started: float | None = None
    ended: float | None = None
    writing: int = 0
    """Developers' processes running when the database went away."""
    expected: dict[str, tuple[int, int]] = dataclasses.field(default_factory=dict)
    """Developer → (escalations, completion rows) in its ledger when the database came back."""
    drained: float | None = None
    """When the team database held all of them."""
    last_poll: float = 0.0


@dataclasses.dataclass
class Fleet:
    args: argparse.Namespace
    tmp: Path
    server: Any
    """The LocalPostgres, or None for ``--url``."""
    url: str
    waiting: list[int]
    running: dict[int, subprocess.Popen[bytes]] = dataclasses.field(default_factory=dict)
    killed: dict[int, dict[str, Any]] = dataclasses.field(default_factory=dict)
    failed: dict[int, str] = dataclasses.field(default_factory=dict)
    outage: Outage = dataclasses.field(default_factory=Outage)
    victims: dict[int, str] = dataclasses.field(default_factory=dict)
    duplicator: int = 0

    def launch(self, dev: int, first: bool) -> None:
        command = [sys.executable, str(SCRIPT), "--worker", str(dev), "--tmp", str(self.tmp)]
        if first and dev in self.victims:
            command += ["--die", self.victims[dev]]
        if first and dev == self.duplicator:
            command.append("--duplicate")
        out = (self.tmp / f"worker-{dev}.log").open("ab")
        env = dict(os.environ, **{URL_ENV: self.url})
        self.running[dev] = subprocess.Popen(command, stdout=out, stderr=out, env=env)
        out.close()

    def tick(self) -> None:
        for dev, proc in list(self.running.items()):
            rc = proc.poll()
            if rc is None:
                continue
            del self.running[dev]
            if dev in self.killed and "restarted" not in self.killed[dev]:
                self.killed[dev]["restarted"] = time.time()
                self.launch(dev, first=False)
            elif rc != 0:
                tail = (self.tmp / f"worker-{dev}.log").read_text(errors="replace")[-1500:]
                self.failed[dev] = f"exit {rc}: {tail}"
        while self.waiting and len(self.running) < self.args.concurrency:
            self.launch(self.waiting.pop(0), first=True)
        self.kill_when_asked()

    def kill_when_asked(self) -> None:
        for dev in list(self.victims):
            marker = self.tmp / f"kill-{dev}.json"
            if dev in self.killed or not marker.exists():
                continue
            asked = json.loads(marker.read_text())
            os.kill(int(asked["pid"]), signal.SIGKILL)
            self.killed[dev] = asked
            log(f"killed dev{dev:02d} (SIGKILL) in a sync round: {asked['mode']} batch")

    def progress(self) -> float:
        """Share of the month's rows written so far (the unstarted guessed from the started)."""
        seen = []
        for dev in range(self.args.developers):
            path = self.tmp / f"progress-{dev}.json"
            if path.exists():
                seen.append(json.loads(path.read_text()))
        if not seen:
            return 0.0
        per_dev = sum(total for _, total in seen) / len(seen)
        return sum(done for done, _ in seen) / (per_dev * self.args.developers)

    def run(self) -> float:
        t0 = time.perf_counter()
        o = self.outage
        while self.running or self.waiting or (o.started is not None and o.ended is None):
            self.tick()
            self.steer_outage()
            time.sleep(0.1)
        while o.started is not None and o.drained is None:
            self.poll_drained(force=True)
            time.sleep(0.5)
        return time.perf_counter() - t0

    def steer_outage(self) -> None:
        o = self.outage
        if self.server is None:
            return
        if o.started is None and self.progress() >= OUTAGE_AT:
            o.started, o.writing = time.time(), len(self.running)
            self.server.stop()
            log(f"team database stopped ({o.writing} developers writing)")
        elif o.started is not None and o.ended is None:
            if time.time() - o.started >= self.args.outage_s:
                o.expected = ledger_counts(self.tmp, self.args.developers)
                self.server.start()
                o.ended = time.time()
                log(f"team database started again after {o.ended - o.started:.0f} s")
        elif o.ended is not None and o.drained is None:
            self.poll_drained()

    def poll_drained(self, force: bool = False) -> None:
        o = self.outage
        if o.ended is None or (not force and time.time() - o.last_poll < 0.5):
            return
        o.last_poll = time.time()
        present = team_counts(self.url)
        if all(
            present.get(who, (0, 0))[0] >= esc and present.get(who, (0, 0))[1] >= comp
            for who, (esc, comp) in o.expected.items()
        ):
            o.drained = time.time()
            log(f"every row written before the restart arrived {o.drained - o.ended:.1f} s later")


def worker_messages(tmp: Path) -> Counter[str]:
    """What the developers' processes printed (logged problems), paths left out."""
    found: Counter[str] = Counter()
    for path in tmp.glob("worker-*.log"):
        for line in path.read_text(errors="replace").splitlines():
            if line.strip():
                found[re.sub(r"/\S+", "...", line.strip())[:160]] += 1
    return found


def ledger_counts(tmp: Path, developers: int) -> dict[str, tuple[int, int]]:
    """Developer → (escalations, completion rows) in each ledger now."""
    out = {}
    for dev in range(developers):
        path = tmp / f"ledger-{dev}.db"
        if not path.exists():
            continue
        try:
            with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
                esc, comp = conn.execute(
                    "SELECT COALESCE(SUM(task != ?), 0), COALESCE(SUM(task = ?), 0) FROM requests",
                    (AUTOCOMPLETE, AUTOCOMPLETE),
                ).fetchone()
        except sqlite3.Error:
            continue  # a ledger being made: nothing in it yet
        out[developer(dev).developer] = (int(esc), int(comp))
    return out


def team_counts(url: str) -> dict[str, tuple[int, int]]:
    """Developer → (escalation rows, completion requests) in the team database."""
    try:
        with psycopg.connect(url, connect_timeout=2) as pg:
            esc: dict[str, int] = dict(
                pg.execute("SELECT developer, count(*) FROM nearline_requests GROUP BY 1")
            )
            comp: dict[str, int] = dict(
                pg.execute("SELECT developer, sum(requests) FROM nearline_completions GROUP BY 1")
            )
    except psycopg.Error:
        return {}
    return {str(d): (int(esc.get(d, 0)), int(comp.get(d, 0))) for d in {*esc, *comp}}
