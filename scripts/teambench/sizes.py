"""Completions as request rows or as hourly buckets: one developer's, measured in PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import psycopg

from nearline.accounting.ledger.schema import connect
from nearline.accounting.team import sync as team_sync
from nearline.accounting.team.schema import REQUEST_COLUMNS
from nearline.tasks import AUTOCOMPLETE
from teambench import developer

MONTH_DAYS = 21
"""Working days of the developer-month the sizes are given for."""


def completion_rows_size(url: str, ledger: Path, dev: int) -> dict[str, int]:
    """One developer's completions as request rows in PostgreSQL (a scratch copy of
    ``nearline_requests``, its indexes too): their count and bytes; its buckets; and the
    team database's buckets and their bytes."""
    who = developer(dev)
    with connect(ledger) as conn:
        rows = [
            team_sync.request_params(dict(r), who)
            for r in conn.execute("SELECT * FROM requests WHERE task = ?", (AUTOCOMPLETE,))
        ]
    with psycopg.connect(url, autocommit=True) as pg:
        pg.execute("CREATE TABLE bench_rows (LIKE nearline_requests INCLUDING ALL)")
        try:
            with (
                pg.cursor() as cur,
                cur.copy(f"COPY bench_rows ({', '.join(REQUEST_COLUMNS)}) FROM STDIN") as copy,
            ):
                for row in rows:
                    copy.write_row(row)
            pg.execute("ANALYZE bench_rows")
            found = pg.execute(
                "SELECT pg_total_relation_size('bench_rows'), (SELECT count(*) FROM "
                "nearline_completions WHERE developer = %s), pg_total_relation_size("
                "'nearline_completions'), (SELECT count(*) FROM nearline_completions)",
                (who.developer,),
            ).fetchone()
        finally:
            pg.execute("DROP TABLE IF EXISTS bench_rows")
    assert found is not None
    keys = ("row_bytes", "buckets", "bucket_bytes", "team_buckets")
    return {"rows": len(rows), **{k: int(v) for k, v in zip(keys, found, strict=True)}}
