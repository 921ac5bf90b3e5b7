"""The checks: the team database against the machines' ledgers."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import psycopg

from nearline.accounting.ledger import outbox
from nearline.tasks import AUTOCOMPLETE
from teambench import developer
from teambench.fleet import Fleet


@dataclasses.dataclass
class Figures:
    escalations: int = 0
    requests: int = 0
    """Completion requests (rows on a machine, summed buckets in the team database)."""
    shown: int = 0
    accepted: int = 0
    chars: int = 0
    cost: float = 0.0
    duplicates: int = 0
    """Request rows alike in every column but the uid, past the first of each."""

    def __add__(self, other: Figures) -> Figures:
        pairs = zip(dataclasses.astuple(self), dataclasses.astuple(other), strict=True)
        return Figures(*(a + b for a, b in pairs))

    def same(self, other: Figures) -> bool:
        """Equal, the cost to the cent (sums of floats differ in the last digits)."""
        return round(self.cost, 2) == round(other.cost, 2) and dataclasses.replace(
            self, cost=0.0
        ) == dataclasses.replace(other, cost=0.0)


LEDGER_FIGURES = """
    SELECT COALESCE(SUM(task != :c), 0), COALESCE(SUM(task = :c), 0),
        COALESCE(SUM(task = :c AND accepted IS NOT NULL), 0),
        COALESCE(SUM(task = :c AND accepted = 1), 0),
        COALESCE(SUM(CASE WHEN task = :c AND accepted = 1 THEN chars ELSE 0 END), 0),
        COALESCE(SUM(cost_usd), 0),
        (SELECT COUNT(*) FROM requests WHERE task != :c) - (SELECT COUNT(*) FROM (SELECT DISTINCT
            ts, task, model, cost_usd, input_tokens, output_tokens FROM requests
            WHERE task != :c))
    FROM requests
"""


@dataclasses.dataclass
class Machine:
    figures: Figures
    rows: int
    taken: int
    uids: str
    waiting: int


def read_machine(path: Path) -> Machine:
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        found = conn.execute(LEDGER_FIGURES, {"c": AUTOCOMPLETE}).fetchone()
        uids = "".join(u for (u,) in conn.execute("SELECT uid FROM requests ORDER BY uid"))
        waiting = outbox.waiting_count(conn)
        (rows,) = conn.execute("SELECT COUNT(*) FROM requests").fetchone()
    figures = Figures(*found)
    return Machine(
        figures, int(rows), figures.accepted, hashlib.sha256(uids.encode()).hexdigest(), waiting
    )


TEAM_REQUESTS = """
    SELECT developer, count(*), sum(cost_usd), count(*) - count(DISTINCT
        (ts, task, model, cost_usd, input_tokens, output_tokens))
    FROM nearline_requests GROUP BY developer
"""
TEAM_COMPLETIONS = """
    SELECT developer, sum(requests), sum(shown), sum(accepted), sum(chars_accepted),
        sum(cost_usd), count(*), count(*) - count(DISTINCT
        (device, project, model, language, client, hour))
    FROM nearline_completions GROUP BY developer
"""


def read_team(url: str) -> tuple[dict[str, Figures], int, int]:
    """Developer → figures; the buckets, and the buckets alike but for the uid."""
    out: dict[str, Figures] = {}
    with psycopg.connect(url) as pg:
        for who, n, usd, dup in pg.execute(TEAM_REQUESTS):
            out[who] = Figures(escalations=n, cost=float(usd), duplicates=dup)
        buckets = twins = 0
        for who, req, shown, acc, chars, usd, n, dup in pg.execute(TEAM_COMPLETIONS):
            f = out.setdefault(who, Figures())
            f.requests, f.shown, f.accepted, f.chars = int(req), int(shown), int(acc), int(chars)
            f.cost += float(usd)
            buckets, twins = buckets + n, twins + dup
    return out, buckets, twins


@dataclasses.dataclass
class Check:
    name: str
    ok: bool | None
    """None: not run (said why in ``detail``)."""
    detail: str


def compare(fleet: Fleet) -> tuple[list[Check], dict[str, Any]]:
    devs = range(fleet.args.developers)
    machines = {developer(d).developer: read_machine(fleet.tmp / f"ledger-{d}.db") for d in devs}
    stats = {d: json.loads((fleet.tmp / f"stats-{d}.json").read_text()) for d in devs}
    team, buckets, twins = read_team(fleet.url)
    mine = sum((m.figures for m in machines.values()), Figures())
    theirs = sum(team.values(), Figures())
    same_each = all(team.get(w, Figures()).same(m.figures) for w, m in machines.items())
    checks = [
        Check(
            "escalation rows: team = machines",
            theirs.escalations == mine.escalations,
            f"{theirs.escalations:,} = {mine.escalations:,}",
        ),
        Check(
            "each developer: team = that machine (every figure)",
            same_each and set(team) == set(machines),
            f"{sum(team.get(w, Figures()).same(m.figures) for w, m in machines.items())} of "
            f"{len(machines)}",
        ),
        Check(
            "completions: team buckets = machines' rows",
            (theirs.requests, theirs.shown, theirs.accepted, theirs.chars)
            == (mine.requests, mine.shown, mine.accepted, mine.chars),
            f"requests {theirs.requests:,}/{mine.requests:,}, shown {theirs.shown:,}/"
            f"{mine.shown:,}, accepted {theirs.accepted:,}/{mine.accepted:,}, characters "
            f"{theirs.chars:,}/{mine.chars:,}",
        ),
        Check(
            "no duplicates",
            theirs.duplicates == mine.duplicates and twins == 0,
            f"alike request rows {theirs.duplicates} (machines {mine.duplicates}), "
            f"alike buckets {twins} of {buckets:,}",
        ),
        Check(
            "team cost = machines' ledgers, to the cent",
            round(theirs.cost, 2) == round(mine.cost, 2),
            f"${theirs.cost:,.2f} = ${mine.cost:,.2f}",
        ),
        Check(
            "every outbox empty",
            all(m.waiting == 0 for m in machines.values()),
            f"{sum(m.waiting for m in machines.values())} rows waiting",
        ),
        Check(
            "every ledger holds its plan exactly (nothing written twice after a restart)",
            all(
                (m.rows, m.uids, m.taken)
                == (stats[d]["planned"], stats[d]["uids"], stats[d]["taken"])
                for d, m in zip(devs, machines.values(), strict=True)
            ),
            f"{sum(m.rows for m in machines.values()):,} rows",
        ),
    ]
    totals = {"machines": mine, "stats": stats}
    return checks, totals
