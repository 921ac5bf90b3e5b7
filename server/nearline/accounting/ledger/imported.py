"""The ledger's side of ``nearline usage import``: imported rows written so that each record
is one row however often it is read (a repeat with more tokens replaces it), how far each file
was read (saved in the same transaction as its rows), and Copilot's daily aggregates."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from nearline.accounting.entries import Entry
from nearline.accounting.ledger.schema import COLUMNS
from nearline.tasks import IMPORTED

_TOKENS = ("input_tokens", "cache_read_tokens", "cache_write_tokens", "output_tokens")
_CHANGED = ("model", *_TOKENS, "cache_write_1h_tokens", "cost_usd", "cost_source")
"""A fuller copy's figures; its time stays the first copy's (the team's daily sums of that
day hold it)."""
UPSERT = (
    f"INSERT INTO requests ({', '.join(COLUMNS)}) VALUES ({', '.join('?' for _ in COLUMNS)}) "
    "ON CONFLICT (uid) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _CHANGED)
    # sent to the team database already: it goes again, as it is now
    + ", synced = MIN(synced, 0) WHERE "
    + " + ".join(f"excluded.{c}" for c in _TOKENS)
    + " > "
    + " + ".join(f"requests.{c}" for c in _TOKENS)
)
"""A new record, or a fuller copy of one already here (a streamed message read again with
its final counts); a copy with as many tokens or fewer changes nothing."""


@dataclass(frozen=True)
class Position:
    """How far a log file was read, and what the file was then."""

    file: str
    """A hash of the file's absolute path (the path itself is not kept)."""
    source: str
    device: int
    inode: int
    size: int
    mtime_ns: int
    end: int


def file_key(path: str) -> str:
    return hashlib.sha256(path.encode("utf-8", "surrogateescape")).hexdigest()[:32]


def positions(conn: sqlite3.Connection, source: str) -> dict[str, Position]:
    """``file_key`` → where that file of ``source`` was left."""
    rows = conn.execute(
        "SELECT file, source, device, inode, size, mtime_ns, end_offset FROM import_files "
        "WHERE source = ?",
        (source,),
    )
    return {r[0]: Position(*r) for r in rows}


def write(conn: sqlite3.Connection, entries: Sequence[Entry], done: Iterable[Position] = ()) -> int:
    """One transaction: the rows, and the files read to their end (only once their rows are
    committed: a crash reads them again, and the rows are not doubled). Returns the rows
    added or grown."""
    changed = 0
    with conn:
        before = conn.total_changes
        conn.executemany(UPSERT, [e.row() for e in entries])
        changed = conn.total_changes - before
        conn.executemany(
            "INSERT OR REPLACE INTO import_files (file, source, device, inode, size, mtime_ns, "
            "end_offset, ts) VALUES (?, ?, ?, ?, ?, ?, ?, strftime('%s', 'now'))",
            [(p.file, p.source, p.device, p.inode, p.size, p.mtime_ns, p.end) for p in done],
        )
    return changed


TOOL_DAY_COLUMNS = (
    "uid",
    "source",
    "day",
    "user",
    "editor",
    "language",
    "model",
    "suggestions",
    "acceptances",
    "lines_suggested",
    "lines_accepted",
    "chats",
    "active_users",
)


def write_tool_days(conn: sqlite3.Connection, rows: Sequence[Sequence[Any]]) -> int:
    """Daily aggregates (``TOOL_DAY_COLUMNS``), each replacing the same day's earlier copy
    (a report downloaded again holds the day whole)."""
    with conn:
        before = conn.total_changes
        conn.executemany(
            f"INSERT OR REPLACE INTO tool_days ({', '.join(TOOL_DAY_COLUMNS)}) "
            f"VALUES ({', '.join('?' for _ in TOOL_DAY_COLUMNS)})",
            rows,
        )
        return conn.total_changes - before


def tool_days(
    conn: sqlite3.Connection, since: str | None = None, until: str | None = None
) -> list[dict[str, Any]]:
    """The daily aggregates from ``since`` to ``until``, oldest first."""
    found = conn.execute(
        "SELECT * FROM tool_days WHERE day >= ? AND day <= ? ORDER BY day, uid",
        (since or "0000", until or "9999"),
    )
    return [dict(r) for r in found]


def own_usage(
    conn: sqlite3.Connection, providers: Sequence[str], start: float, end: float
) -> list[tuple[str, int, int, int, int, int]]:
    """nearline's own requests to ``providers`` from ``start`` to ``end``, per model:
    (model, requests, uncached input, cache read, cache write, output)."""
    if not providers:
        return []
    marks = ", ".join("?" for _ in providers)
    found = conn.execute(
        f"SELECT model, COUNT(*), {', '.join(f'SUM({c})' for c in _TOKENS)} FROM requests "
        f"WHERE cloud = 1 AND task <> ? AND provider IN ({marks}) AND ts >= ? AND ts < ? "
        "GROUP BY model",
        (IMPORTED, *providers, start, end),
    )
    return [(str(r[0]), *(int(n or 0) for n in r[1:])) for r in found]  # type: ignore[misc]
