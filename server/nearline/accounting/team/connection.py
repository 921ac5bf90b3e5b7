"""The team database's address: read from the environment variable the settings name, shown
as host and database only, and connections whose errors never carry the string or its
password. The only module that opens psycopg connections."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import psycopg
import psycopg.conninfo
import psycopg.errors

from nearline.errors import TeamError

CONNECT_TIMEOUT_S = 5
STATEMENT_TIMEOUT_MS = 15_000
"""A query that takes longer is cancelled (a stuck database never holds the syncer)."""


@dataclass(frozen=True)
class TeamTarget:
    """Where the team database is; ``url`` is never printed (``where`` is)."""

    env: str
    url: str = ""

    @classmethod
    def from_env(cls, env: str) -> TeamTarget:
        return cls(env, os.environ.get(env, "").strip())

    @property
    def where(self) -> str:
        """Host and database, for ``team status`` and ``doctor``; never user or password."""
        if not self.url:
            return f"(${self.env} is not set)"
        try:
            parts = psycopg.conninfo.conninfo_to_dict(self.url)
        except psycopg.Error:
            return f"(${self.env} is not a PostgreSQL connection string)"
        host = str(parts.get("host") or parts.get("hostaddr") or "localhost")
        if host.startswith("/"):
            host = "local socket"
        port = parts.get("port")
        dbname = parts.get("dbname") or parts.get("user") or "(default)"
        return f"{host}{':' + str(port) if port else ''}/{dbname}"

    def redact(self, message: str) -> str:
        """``message`` with the connection string and its password taken out."""
        secrets = [self.url]
        try:
            password = psycopg.conninfo.conninfo_to_dict(self.url).get("password")
        except psycopg.Error:
            password = None
        if password:
            secrets.append(str(password))
        for secret in sorted(filter(None, secrets), key=len, reverse=True):
            message = message.replace(secret, "***")
        return re.sub(r"(password\s*=\s*)\S+", r"\1***", message)

    def connect(self, *, autocommit: bool = False) -> psycopg.Connection[tuple[object, ...]]:
        """A connection, or ``TeamError`` saying what is wrong (``down`` for an outage)."""
        if not self.url:
            raise TeamError(
                f"the team database is not configured: set ${self.env} to its connection "
                "string (postgresql://user:password@host/database)"
            )
        try:
            return psycopg.connect(
                self.url,
                autocommit=autocommit,
                connect_timeout=CONNECT_TIMEOUT_S,
                options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
                application_name="nearline",
            )
        except psycopg.Error as exc:
            raise self.error(exc, "cannot connect to") from None

    def error(self, exc: BaseException, doing: str = "cannot use") -> TeamError:
        """A ``TeamError`` for ``exc``: an outage (``down``) or a mistake, said plainly."""
        text = self.redact(" ".join(str(exc).split()))
        down = isinstance(exc, (psycopg.OperationalError, OSError)) and not _refused(text)
        if isinstance(exc, psycopg.errors.InsufficientPrivilege):
            hint = "; the database user lacks rights (a read-only user cannot sync)"
        elif isinstance(exc, psycopg.errors.UndefinedTable):
            hint = "; a nearline table is missing (dropped?): restore it or start a new database"
        elif isinstance(exc, psycopg.ProgrammingError) and "invalid" in text.lower():
            hint = f"; ${self.env} is not a valid connection string"
        else:
            hint = ""
        return TeamError(f"{doing} the team database {self.where}: {text}{hint}", down=down)


def _refused(text: str) -> bool:
    """A login the server turned down is a mistake to fix, not an outage."""
    lowered = text.lower()
    return any(
        s in lowered
        for s in ("authentication failed", "does not exist", "no password", "not permitted")
    )
