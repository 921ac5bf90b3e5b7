"""The team database's tables and their versioned migrations, and the exact columns that
leave a machine (``REQUEST_COLUMNS``, ``COMPLETION_COLUMNS``: an allow-list; a test holds it).

Request rows (escalations and every other request but completions) go one for one; completions
go as hourly buckets per developer, device, project, model, language and client (see the
README: thousands a day per person as rows would make a year's report slow and large).
"""

from __future__ import annotations

import psycopg

from nearline.errors import TeamError
from nearline.tasks import IMPORTED

MIGRATIONS: tuple[str, ...] = (
    # 1: request rows, completion buckets
    """
    CREATE TABLE nearline_requests (
        uid text PRIMARY KEY,
        ts timestamptz NOT NULL,
        day date NOT NULL,
        developer text NOT NULL,
        device text NOT NULL,
        project text NOT NULL,
        client text NOT NULL,
        task text NOT NULL,
        tier text NOT NULL,
        provider text NOT NULL,
        model text NOT NULL,
        language text NOT NULL,
        outcome text NOT NULL,
        accepted boolean,
        input_tokens bigint NOT NULL,
        cache_read_tokens bigint NOT NULL,
        cache_write_tokens bigint NOT NULL,
        output_tokens bigint NOT NULL,
        cost_usd double precision NOT NULL,
        latency_ms real NOT NULL
    );
    CREATE INDEX nearline_requests_day ON nearline_requests (day);
    CREATE INDEX nearline_requests_developer_day ON nearline_requests (developer, day);
    CREATE INDEX nearline_requests_project_day ON nearline_requests (project, day);
    CREATE TABLE nearline_completions (
        uid text PRIMARY KEY,
        hour timestamptz NOT NULL,
        day date NOT NULL,
        developer text NOT NULL,
        device text NOT NULL,
        project text NOT NULL,
        client text NOT NULL,
        model text NOT NULL,
        language text NOT NULL,
        requests integer NOT NULL,
        shown integer NOT NULL,
        accepted integer NOT NULL,
        chars_accepted bigint NOT NULL,
        input_tokens bigint NOT NULL,
        cache_read_tokens bigint NOT NULL,
        output_tokens bigint NOT NULL,
        cost_usd double precision NOT NULL,
        latency_ms double precision NOT NULL
    );
    CREATE INDEX nearline_completions_day ON nearline_completions (day);
    CREATE INDEX nearline_completions_developer_day ON nearline_completions (developer, day);
    CREATE TABLE nearline_requests_daily (
        day date NOT NULL,
        developer text NOT NULL,
        project text NOT NULL,
        client text NOT NULL,
        model text NOT NULL,
        tier text NOT NULL,
        task text NOT NULL,
        provider text NOT NULL,
        billed boolean NOT NULL,
        requests bigint NOT NULL,
        input_tokens bigint NOT NULL,
        cache_read_tokens bigint NOT NULL,
        cache_write_tokens bigint NOT NULL,
        output_tokens bigint NOT NULL,
        cost_usd double precision NOT NULL,
        PRIMARY KEY (day, developer, project, client, model, tier, task, provider, billed)
    );
    """,
    # 2: where an imported row's cost came from (its tool's figure or the price table)
    """
    ALTER TABLE nearline_requests ADD COLUMN cost_source text NOT NULL DEFAULT '';
    """,
    # 3: cache writes kept an hour, a part of cache_write_tokens
    """
    ALTER TABLE nearline_requests ADD COLUMN cache_write_1h_tokens bigint NOT NULL DEFAULT 0;
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)
TABLES = ("nearline_requests", "nearline_completions", "nearline_requests_daily")

REQUEST_COLUMNS = (
    "uid",
    "ts",
    "day",
    "developer",
    "device",
    "project",
    "client",
    "task",
    "tier",
    "provider",
    "model",
    "language",
    "outcome",
    "accepted",
    "input_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "output_tokens",
    "cost_usd",
    "latency_ms",
    "cost_source",
    "cache_write_1h_tokens",
)
COMPLETION_COLUMNS = (
    "uid",
    "hour",
    "day",
    "developer",
    "device",
    "project",
    "client",
    "model",
    "language",
    "requests",
    "shown",
    "accepted",
    "chars_accepted",
    "input_tokens",
    "cache_read_tokens",
    "output_tokens",
    "cost_usd",
    "latency_ms",
)
BILLED = f"((provider NOT IN ('', 'local') OR cost_usd > 0) AND task <> '{IMPORTED}')"
"""Request rows nearline sent off a machine: what budgets count (as the machines' ledgers
do; another tool's imported rows are in the reports, not the budgets)."""
DAILY_KEY = ("day", "developer", "project", "client", "model", "tier", "task", "provider")
_DAILY_SUMS = ("input_tokens", "cache_read_tokens", "cache_write_tokens", "output_tokens")
_KEY = ", ".join(DAILY_KEY)
_SUM_DAILY = (
    f"INSERT INTO nearline_requests_daily AS d SELECT {_KEY}, {BILLED}, count(*), "
    + ", ".join(f"sum({c})" for c in (*_DAILY_SUMS, "cost_usd"))
    + " FROM nearline_requests {where}"
    + f" GROUP BY {_KEY}, {BILLED}"
)
REFRESH_DAILY = (
    _SUM_DAILY.format(where="WHERE developer = %(developer)s AND day = ANY(%(days)s)")
    + f" ON CONFLICT ({_KEY}, billed) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in ("requests", *_DAILY_SUMS, "cost_usd"))
)
"""The request rows summed per day and key (what reports and team budgets read: a year of
rows is too many to sum per report), recomputed from the rows for one developer's days, never
added to: a batch sent twice leaves the same sums."""
_LOCK = 0x6E6561726C696E65  # "nearline": one migration at a time over every machine


def found_version(conn: psycopg.Connection[tuple[object, ...]]) -> int | None:
    """The schema version in the database; None when nearline never made its tables."""
    row = conn.execute("SELECT to_regclass('nearline_schema') IS NOT NULL").fetchone()
    if not row or not row[0]:
        return None
    got = conn.execute("SELECT max(version) FROM nearline_schema").fetchone()
    return int(str(got[0])) if got and got[0] is not None else 0


def migrate(conn: psycopg.Connection[tuple[object, ...]]) -> int:
    """Bring the tables to ``SCHEMA_VERSION`` (one migration at a time over every machine);
    returns the version found. A newer schema is refused; a missing table is reported."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
        found = found_version(conn)
        check_version(found)
        if found is None:
            conn.execute("CREATE TABLE nearline_schema (version integer NOT NULL)")
            conn.execute("INSERT INTO nearline_schema VALUES (0)")
        for version in range((found or 0), SCHEMA_VERSION):
            conn.execute(MIGRATIONS[version])  # type: ignore[arg-type]
            conn.execute("UPDATE nearline_schema SET version = %s", (version + 1,))
        check_tables(conn)
    return found or 0


def rebuild_daily(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """Recompute every daily sum from the request rows (after rows were loaded by hand)."""
    with conn.transaction():
        conn.execute("TRUNCATE nearline_requests_daily")
        conn.execute(_SUM_DAILY.format(where=""))  # type: ignore[arg-type]


def check_version(found: int | None) -> None:
    """``TeamError`` for a schema newer than this nearline knows."""
    if found is not None and found > SCHEMA_VERSION:
        raise TeamError(
            f"the team database's schema is version {found}, newer than this nearline "
            f"knows ({SCHEMA_VERSION}); upgrade nearline on this machine"
        )


def check_tables(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    for table in TABLES:
        row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()
        if not row or not row[0]:
            raise TeamError(
                f"the team database has no table {table} although its schema says version "
                f"{SCHEMA_VERSION} (dropped?): restore it from a backup, or drop nearline_schema "
                "so nearline makes the tables again"
            )
