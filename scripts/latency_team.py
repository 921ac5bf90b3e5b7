"""``bench_latency.py --team-ab``: pause latency with the team ledger's sync on and off.

Each of ``--rounds`` turns runs both arms (order alternating), each with a fresh cache and data
folder whose ledger is seeded with ``--team-backlog`` waiting rows (a day offline, say). The
"on" arm's user config has ``[team]`` with ``sync_interval_s = 5`` (12x the default) and
``NEARLINE_TEAM_URL`` names a real PostgreSQL (started here), so the server's sync thread sends
the backlog and every new row while the person types. Prints pause p50/p95 per arm and the rows
the team database received.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))


def seed(ledger_path: Path, rows: int) -> None:
    """``rows`` completion rows over the last day, waiting to be sent."""
    from nearline.accounting.entries import Outcome, Project, completion_entry
    from nearline.accounting.ledger import Ledger
    from nearline.accounting.prices import Tokens

    ledger = Ledger(ledger_path)
    now = time.time()
    for i in range(rows):
        entry = completion_entry(
            outcome=Outcome.OK,
            model="qwen2.5-coder-0.5b",
            tokens=Tokens(input=30, cache_read=400, output=8),
            latency_ms=150.0,
            project=Project("", ""),
            language="python",
            shown=True,
            chars=14,
        )
        ledger.record(dataclasses.replace(entry, ts=now - 86_400 + i * 86_400 / rows))
    ledger.close(timeout=120)


def team_rows(url: str) -> int:
    import psycopg

    try:
        with psycopg.connect(url) as pg:
            row = pg.execute("SELECT coalesce(sum(requests), 0) FROM nearline_completions")
            found = row.fetchone()
            return int(found[0]) if found else 0
    except psycopg.Error:
        return 0


def main_team(args: argparse.Namespace) -> int:
    from bench_latency import bench_env, percentile, run_replay
    from pg_local import LocalPostgres

    pg = LocalPostgres().start()
    arms: dict[str, list[float]] = {"on": [], "off": []}
    sent: dict[str, int] = {"on": 0, "off": 0}
    try:
        for turn in range(args.rounds):
            order = ("on", "off") if turn % 2 == 0 else ("off", "on")
            for arm in order:
                with tempfile.TemporaryDirectory() as tmp:
                    env = bench_env(Path(tmp))
                    Path(env["NEARLINE_DATA_DIR"]).mkdir(parents=True)
                    seed(Path(env["NEARLINE_DATA_DIR"]) / "usage.db", args.team_backlog)
                    url = ""
                    if arm == "on":
                        url = new_database(pg)
                        env["NEARLINE_TEAM_URL"] = url
                        Path(env["NEARLINE_CONFIG"]).write_text(
                            '[team]\ndeveloper = "bench"\nsync_interval_s = 5\n'
                        )
                    run = asyncio.run(run_replay(args, env))
                    lat = [
                        p["latency_ms"] for p in run["pauses"] if p["latency_ms"] == p["latency_ms"]
                    ]
                    arms[arm] += lat
                    if url:
                        sent[arm] += team_rows(url)
                    print(
                        f"turn {turn + 1} {arm:>3}: {len(lat)} pauses  p50 "
                        f"{percentile(lat, 0.5):6.1f} ms  p95 {percentile(lat, 0.95):6.1f} ms",
                        flush=True,
                    )
    finally:
        pg.destroy()
    print(f"team sync A/B, {args.rounds} turns, {args.team_backlog:,} rows waiting at start:")
    for arm in ("off", "on"):
        lat = arms[arm]
        extra = f"  rows in the team database: {sent[arm]:,}" if arm == "on" else ""
        print(
            f"  sync {arm:>3}  pause p50 {percentile(lat, 0.5):6.1f} ms  "
            f"p95 {percentile(lat, 0.95):6.1f} ms  ({len(lat)} pauses){extra}"
        )
    return 0


def new_database(pg: Any) -> str:
    import uuid

    name = "bench_" + uuid.uuid4().hex[:8]
    pg.sql(f"CREATE DATABASE {name} OWNER nearline")
    return str(pg.url(database=name))
