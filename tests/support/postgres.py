"""A real PostgreSQL for the team tests: ``scripts/pg_local.py`` started once per session
(as an unprivileged user when the tests run as root), a fresh database per test."""

from __future__ import annotations

import sys
import uuid

from support import ROOT

sys.path.insert(0, str(ROOT / "scripts"))

from pg_local import INSTALL_HINT, USER, LocalPostgres, binaries  # noqa: E402

__all__ = ["INSTALL_HINT", "LocalPostgres", "available", "new_database"]


def available() -> bool:
    return binaries() is not None


def new_database(pg: LocalPostgres) -> str:
    """A new empty database owned by the nearline user; its URL (password included)."""
    name = "t_" + uuid.uuid4().hex[:12]
    pg.sql(f"CREATE DATABASE {name} OWNER {USER}")
    return pg.url(database=name)
