"""The usage ledger: one SQLite row per request (completions included), written off the hot path
by ``writer.Ledger``; ``schema`` holds the file's migrations, ``queries`` the read-only SQL."""

from nearline.accounting.ledger.queries import select_first_day, select_rows
from nearline.accounting.ledger.schema import (
    SCHEMA_VERSION,
    connect,
    connect_read_only,
    ledger_path,
    migrate,
)
from nearline.accounting.ledger.writer import Ledger

__all__ = [
    "SCHEMA_VERSION",
    "Ledger",
    "connect",
    "connect_read_only",
    "ledger_path",
    "migrate",
    "select_first_day",
    "select_rows",
]
