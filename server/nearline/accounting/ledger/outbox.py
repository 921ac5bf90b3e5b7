"""The ledger as the team ledger's outbox: rows not yet sent, marked only after the team
database committed them.

``synced`` on each row: ``SYNC_WAITING`` (0), ``SYNC_KEPT`` (-1: stays here), or the sync round
that sent it (1, 2, ...). Rounds only grow, so "the rounds up to N are in the team database"
is one number: team budgets add this machine's rows of later rounds (and waiting ones) to the
team's figure read after round N. A row changed after it went (a suggestion taken) is waiting
again; marking checks the row is still as it was sent.

Completions go as hourly buckets (``Bucket``): the whole bucket is recomputed from its rows
whenever one of them waits, so sending it twice replaces it, never adds to it.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from nearline.accounting.ledger.schema import BILLED, SYNC_KEPT, SYNC_WAITING
from nearline.tasks import AUTOCOMPLETE

HOUR_S = 3600
TOKENS = ("input_tokens", "cache_read_tokens", "cache_write_tokens", "output_tokens")


@dataclass(frozen=True)
class BucketKey:
    """One hour of one project's completions on one model, language and client."""

    project: str
    model: str
    language: str
    client: str
    day: str
    hour: int
    """The hour's start, in seconds since the epoch."""

    def uid(self, device: str) -> str:
        parts = (device, self.project, self.model, self.language, self.client, self.day)
        text = "\x1f".join((*parts, str(self.hour)))
        return "c-" + hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Bucket:
    key: BucketKey
    requests: int
    shown: int
    accepted: int
    chars_accepted: int
    input_tokens: int
    cache_read_tokens: int
    output_tokens: int
    cost_usd: float
    latency_ms: float
    """The sum over its requests."""
    members: tuple[tuple[int, int | None], ...]
    """(row id, accepted) of its waiting rows, to mark once it is committed."""


@dataclass(frozen=True)
class Batch:
    """What one sync round sends: request rows (escalations and the like) and buckets."""

    rows: tuple[dict[str, Any], ...]
    buckets: tuple[Bucket, ...]

    def __len__(self) -> int:
        return len(self.rows) + sum(len(b.members) for b in self.buckets)


def key_of(row: sqlite3.Row | dict[str, Any]) -> BucketKey:
    ts = float(row["ts"])
    return BucketKey(
        str(row["project"]),
        str(row["model"]),
        str(row["language"]),
        str(row["client"]),
        str(row["day"]),
        int(ts // HOUR_S) * HOUR_S,
    )


def waiting(conn: sqlite3.Connection, limit: int, skip: Iterable[str] = ()) -> list[sqlite3.Row]:
    """The oldest ``limit`` rows not yet sent, but for those of the project roots ``skip``."""
    roots = sorted(skip)
    marks = ", ".join("?" for _ in roots)
    sql = (
        "SELECT * FROM requests WHERE synced = ? "
        + (f"AND project_root NOT IN ({marks}) " if roots else "")
        + "ORDER BY id LIMIT ?"
    )
    return list(conn.execute(sql, (SYNC_WAITING, *roots, limit)))


def waiting_count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM requests WHERE synced = 0").fetchone()[0])


def batch_of(conn: sqlite3.Connection, rows: Sequence[sqlite3.Row]) -> Batch:
    """The rows to send as rows, and the whole bucket of each waiting completion."""
    plain = tuple(dict(r) for r in rows if r["task"] != AUTOCOMPLETE)
    keys = {key_of(r) for r in rows if r["task"] == AUTOCOMPLETE}
    return Batch(plain, tuple(_bucket(conn, key) for key in sorted(keys, key=repr)))


def _bucket(conn: sqlite3.Connection, key: BucketKey) -> Bucket:
    found = conn.execute(
        "SELECT id, synced, accepted, chars, input_tokens, cache_read_tokens, output_tokens, "
        "cost_usd, latency_ms FROM requests WHERE day = ? AND task = ? AND ts >= ? AND ts < ? "
        "AND project = ? AND model = ? AND language = ? AND client = ? AND synced != ?",
        (
            key.day,
            AUTOCOMPLETE,
            key.hour,
            key.hour + HOUR_S,
            key.project,
            key.model,
            key.language,
            key.client,
            SYNC_KEPT,
        ),
    ).fetchall()
    return Bucket(
        key=key,
        requests=len(found),
        shown=sum(1 for r in found if r["accepted"] is not None),
        accepted=sum(1 for r in found if r["accepted"]),
        chars_accepted=sum(r["chars"] for r in found if r["accepted"]),
        input_tokens=sum(r["input_tokens"] for r in found),
        cache_read_tokens=sum(r["cache_read_tokens"] for r in found),
        output_tokens=sum(r["output_tokens"] for r in found),
        cost_usd=sum(r["cost_usd"] for r in found),
        latency_ms=sum(r["latency_ms"] for r in found),
        members=tuple((r["id"], r["accepted"]) for r in found if r["synced"] == SYNC_WAITING),
    )


def next_round(conn: sqlite3.Connection) -> int:
    return last_round(conn) + 1


def last_round(conn: sqlite3.Connection) -> int:
    """Every row of this round or an earlier one is in the team database."""
    # ``synced > 0``: read from the sent rows' index, not a year of rows
    found = conn.execute("SELECT MAX(synced) FROM requests WHERE synced > 0").fetchone()[0]
    return int(found or 0)


def mark_sent(conn: sqlite3.Connection, batch: Batch, round_: int) -> int:
    """Mark what the team database committed; a row changed since it was read (a suggestion
    taken, an imported record grown) stays waiting. Returns the rows marked."""
    tokens = "input_tokens + cache_read_tokens + cache_write_tokens + output_tokens"
    rows = [(round_, r["id"], r["accepted"], sum(r[c] for c in TOKENS)) for r in batch.rows]
    members = [(round_, rid, acc) for b in batch.buckets for rid, acc in b.members]
    marked = 0
    with conn:
        cur = conn.executemany(
            "UPDATE requests SET synced = ? WHERE id = ? AND synced = 0 AND accepted IS ? "
            f"AND {tokens} = ?",
            rows,
        )
        marked += max(cur.rowcount, 0)
        cur = conn.executemany(
            "UPDATE requests SET synced = ? WHERE id = ? AND synced = 0 AND accepted IS ?",
            members,
        )
        marked += max(cur.rowcount, 0)
    return marked


def keep_local(conn: sqlite3.Connection, ids: Iterable[int]) -> None:
    """These rows never leave this machine."""
    with conn:
        conn.executemany(
            "UPDATE requests SET synced = ? WHERE id = ? AND synced = 0",
            [(SYNC_KEPT, i) for i in ids],
        )


def note(conn: sqlite3.Connection, **values: str) -> None:
    """Remember the last sync's outcome (``team status`` reads it from another process)."""
    now = time.time()
    with conn:
        conn.executemany(
            "INSERT OR REPLACE INTO sync_state (key, value, ts) VALUES (?, ?, ?)",
            [(key, value, now) for key, value in values.items()],
        )


def notes(conn: sqlite3.Connection) -> dict[str, tuple[str, float]]:
    return {k: (v, ts) for k, v, ts in conn.execute("SELECT key, value, ts FROM sync_state")}


def unsent_spend(
    conn: sqlite3.Connection, since_day: str, after_round: int
) -> list[tuple[str, str, float, int]]:
    """(project, day, USD, tokens) of this machine's billed rows since ``since_day`` that the
    team's figure (read after round ``after_round``) does not hold yet."""
    sql = (
        "SELECT project, day, SUM(cost_usd), SUM(input_tokens + cache_read_tokens + "
        f"cache_write_tokens + output_tokens) FROM requests WHERE {BILLED} AND day >= ? "
        "AND (synced = 0 OR synced > ?) GROUP BY project, day"
    )
    return [
        (str(p), str(d), float(u or 0), int(t or 0))
        for p, d, u, t in conn.execute(sql, (since_day, after_round))
    ]
