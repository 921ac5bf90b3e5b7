"""Read-only queries over a ledger connection: rows, days, spending."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from nearline.accounting.ledger.imported import tool_days
from nearline.accounting.ledger.schema import BILLED, connect_read_only
from nearline.errors import NearlineError

T = TypeVar("T")


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


def daily(
    conn: sqlite3.Connection,
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
    return {d: (float(u or 0), int(t or 0)) for d, u, t in conn.execute(sql, args)}


def spent(
    conn: sqlite3.Connection, project_root: str, month_start: str, today: str
) -> dict[tuple[bool, bool], tuple[float, int]]:
    """(this project?, today?) → (USD, cloud tokens) of the rows sent off this machine from
    ``month_start`` to ``today``."""
    sql = (
        "SELECT project_root = ?, day = ?, SUM(cost_usd), SUM(input_tokens + "
        "cache_read_tokens + cache_write_tokens + output_tokens) "
        f"FROM requests WHERE {BILLED} AND day >= ? AND day <= ? GROUP BY 1, 2"
    )
    totals: dict[tuple[bool, bool], tuple[float, int]] = {}
    for mine, is_today, usd, tokens in conn.execute(sql, (project_root, today, month_start, today)):
        totals[(bool(mine), bool(is_today))] = (float(usd or 0), int(tokens or 0))
    return totals


def today_spend(conn: sqlite3.Connection, day: str) -> float:
    row = conn.execute(f"SELECT SUM(cost_usd) FROM requests WHERE {BILLED} AND day = ?", (day,))
    return float(row.fetchone()[0] or 0)


def read_only(path: Path, query: Callable[[sqlite3.Connection], T], empty: T) -> T:
    """``query`` over the ledger, read-only: a report never creates, migrates or moves the
    ledger aside (``Ledger`` may). No ledger yet, or never written: ``empty``."""
    if not path.exists():
        return empty
    try:
        conn = connect_read_only(path)
        try:
            if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'requests'").fetchone():
                return empty
            return query(conn)
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise NearlineError(
            f"cannot read the usage ledger {path}: {exc} (NEARLINE_LEDGER names another file)"
        ) from None


def read_rows(
    path: Path, since: str, until: str, project: str | None = None
) -> list[dict[str, Any]]:
    """Ledger rows from ``since`` to ``until``, oldest first."""
    return read_only(path, lambda conn: list(select_rows(conn, since, until, project)), [])


def read_first_day(path: Path, project: str | None = None) -> str | None:
    """The ledger's first day (``project``'s, when given); None without rows."""
    return read_only(path, lambda conn: select_first_day(conn, project), None)


def read_tool_days(path: Path, since: str, until: str) -> list[dict[str, Any]]:
    """Other tools' daily aggregates from ``since`` to ``until`` (none before the ledger had
    the table)."""

    def query(conn: sqlite3.Connection) -> list[dict[str, Any]]:
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'tool_days'").fetchone():
            return []
        return tool_days(conn, since, until)

    return read_only(path, query, [])
