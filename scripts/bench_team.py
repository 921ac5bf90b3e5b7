#!/usr/bin/env python3
"""Team sync benchmark: a 50-person team's month through the ledger's outbox into a real
PostgreSQL, with the database down for a while, processes killed mid-batch and a batch
delivered twice; then a year of the team's data for ``usage --team``.

Each developer is a separate process (``--concurrency`` at a time, 8 by default on a 2-core
box) with its own SQLite ``Ledger`` (a temporary file) and its own ``TeamSyncer`` (a thread,
every ``--sync-interval-s``), writing a month (``--days`` working days) in time order:

- escalations: the cost benchmark's month (``costbench.workload.Month``: who asks what, when,
  on which files of its synthetic repository), each priced by the router's own estimate
  (``escalation.router.route_for`` under the cost benchmark's policy: tokens from the files'
  text, cost from the bundled price table);
- completions at the editor's rate: the latency benchmark's typing model
  (``bench_latency.keystrokes`` over its replay file, with its default key interval and word
  and line pauses) gives the requests and the pauses (where a suggestion is shown) per hour of
  typing; a developer types ``--typing-hours`` (1) a working day, in sessions of 4-20 minutes
  between 9:00 and 18:00. Each pause is one row as the LSP server records it
  (``costbench.workload.autocomplete_entry``: 85% answered by the model and shown, 30% of
  those taken, accepted later through ``Ledger.accept``). The superseded keystroke requests
  between pauses (5 per pause in that model) are rows on a machine too, but only add to a
  bucket's ``requests``: they are left out to fit the run on 2 cores (``--keystroke-rows``
  writes them; the CPU measurement below always does).

While they run, the database is stopped for ``--outage-s`` (30) once 30% of the rows are
written, then started again. A process done writing leaves its syncer to send the rest, as a
server left open does (after an outage, at the syncer's back-off: 5, 15, 30 s, ...): the
seconds from the restart until every row written before it is in the team database, and from
the outage's start, are the largest lags. Two developers' processes are killed with SIGKILL in
a sync round (one inside the open transaction of a batch, one after its commit and before the
rows are marked) and started again: a restarted process reopens its ledger, re-marks the
suggestions taken, and writes only the rows the ledger lacks (uids derive from the developer
and the row's place in the month). One developer's batch is sent twice with
``outbox.batch_of`` and ``send`` before its syncer marks it.

Then, with PASS/FAIL each (exit status 1 when one fails): the team database against the
machines' ledgers (escalation rows; completion buckets' requests, shown, accepted and
characters taken against the rows; cost to the cent; no two request rows or buckets alike but
for the uid beyond what the machines hold), every outbox empty, every ledger holding exactly
its plan. Figures: the sync throughput (rows a second inside the rounds that sent, per syncer,
and for the team over the month's phase); one developer-month's completions as request rows
(copied into a scratch table shaped like ``nearline_requests``) against its hourly buckets
(at the bytes a bucket takes in the year's table); the syncer's CPU on a developer's machine
while typing: ``--typing-s`` (60) at the typing model's full rate, one row per keystroke and an
escalation, with the interval scaled from the default 60 s to ``--typing-interval-s`` (15 s,
4x the rounds a minute: an upper bound), its thread's ``thread_time`` over the wall time, goal
at most 1% of a core; and ``usage --team`` (the use case ``app.team_report.team_report``) over
a year: 50 developers (developer ``d`` repeats the month of ``d`` modulo ``--developers``),
12 copies of the month a twelfth of a year apart (whole weeks), in a separate database loaded
with COPY; by developer, by project and by day, ``--report-runs`` (12) each, goal p95 at most
500 ms; and that database's size per developer-month.

    .venv/bin/python scripts/bench_team.py                 # ~6 min on 2 cores
    .venv/bin/python scripts/bench_team.py --developers 3 --days 2 --outage-s 2 \\
        --typing-s 4 --typing-interval-s 2 --report-runs 10   # ~25 s

PostgreSQL is started by the script in a temporary folder (``scripts/pg_local.py``) unless
``--url`` (or ``$NEARLINE_BENCH_TEAM_URL``) names an empty one; with ``--url`` there is no
outage (the script cannot stop that server). The ledgers are removed at exit.

This script holds the command line, the run's flow and the summary; the parts are in
``scripts/teambench/`` (its docstring lists them). The developers' processes and the CPU
measurement run this script again (``--worker``, ``--typing-worker``).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "scripts"), str(ROOT / "server"), str(ROOT / "tests")]

from costbench.workload import default_start  # noqa: E402
from teambench import URL_ENV, log  # noqa: E402
from teambench.checks import Check, Figures, compare  # noqa: E402
from teambench.cpu import CPU_GOAL, measure_typing, typing_worker  # noqa: E402
from teambench.dashboard import CHART_GOAL_MS, VIEW_GOAL_MS, slowest  # noqa: E402
from teambench.dashboard import lines as dashboard_lines  # noqa: E402
from teambench.fleet import OUTAGE_AT, Fleet, start_server, worker_messages  # noqa: E402
from teambench.sizes import MONTH_DAYS, completion_rows_size  # noqa: E402
from teambench.worker import worker  # noqa: E402
from teambench.workload import prepare  # noqa: E402
from teambench.year import (  # noqa: E402
    REPORT_GOAL_MS,
    REPORTS,
    YEAR_DEVELOPERS,
    YEAR_MONTHS,
    year_reports,
)

# -- the summary --------------------------------------------------------------------------------


def size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:,.1f} GB"


@dataclasses.dataclass
class Result:
    args: argparse.Namespace
    cfg: dict[str, Any]
    fleet: Fleet
    phase_s: float
    totals: dict[str, Any]
    sizes: dict[str, int]
    typing: dict[str, Any]
    reports: dict[str, Any]
    """``usage --team``'s timings and the year's sizes, or ``{"skipped": why}``."""

    @property
    def cpu_share(self) -> float:
        return float(self.typing["thread_cpu"]) / float(self.typing["seconds"])

    def more_checks(self) -> list[Check]:
        killed = self.fleet.killed
        stats = self.totals.get("stats", {})
        o = self.fleet.outage
        skipped = self.reports.get("skipped")
        slowest = 0.0 if skipped else max(self.reports[label][1] for label in REPORTS)
        return [
            Check(
                "two processes killed mid-batch (SIGKILL) and restarted",
                len(killed) == 2 and all("restarted" in k for k in killed.values()),
                ", ".join(
                    f"dev{d:02d} ({k['mode']}, {k['rows']:,} rows), restarted at row "
                    f"{stats.get(d, {}).get('resumed_from', '?'):,}"
                    for d, k in sorted(killed.items())
                ),
            ),
            Check(
                "one batch delivered twice",
                bool(stats.get(0, {}).get("duplicated")),
                f"dev00: {stats.get(0, {}).get('duplicated', 0):,} rows sent twice",
            ),
            Check(
                "outage while developers write; every row arrives after it",
                None if self.fleet.server is None else o.writing > 0 and o.drained is not None,
                "skipped: --url (cannot stop that server)"
                if self.fleet.server is None
                else f"{o.writing} writing; all in {self.drain_s:.1f} s after the restart",
            ),
            Check(
                f"usage --team p95 <= {REPORT_GOAL_MS:.0f} ms",
                None if skipped else slowest <= REPORT_GOAL_MS,
                f"skipped: {skipped}" if skipped else f"slowest p95 {slowest:.0f} ms",
            ),
            Check(
                f"syncer CPU while typing <= {CPU_GOAL:.0%} of a core",
                self.cpu_share <= CPU_GOAL,
                f"{self.cpu_share:.3%}",
            ),
            *self.dashboard_checks(),
        ]

    def dashboard_checks(self) -> list[Check]:
        found = self.reports.get("dashboard")
        if found is None:
            return []
        view, chart = slowest(found)
        return [
            Check(
                f"dashboard views p95 <= {VIEW_GOAL_MS:.0f} ms at the server",
                view <= VIEW_GOAL_MS,
                f"slowest p95 {view:.0f} ms",
            ),
            Check(
                f"dashboard first chart p95 <= {CHART_GOAL_MS:.0f} ms in headless Chromium",
                None if chart is None else chart <= CHART_GOAL_MS,
                "skipped: no browser" if chart is None else f"slowest p95 {chart:.0f} ms",
            ),
        ]

    @property
    def drain_s(self) -> float:
        o = self.fleet.outage
        return (o.drained or float("nan")) - (o.ended or float("nan"))

    def print(self, checks: list[Check], total_s: float) -> None:
        print(f"== nearline team sync benchmark ({total_s:.0f} s) ==")
        for line in (
            *self.workload(),
            *self.syncing(),
            *self.messages(),
            *self.sizes_lines(),
            *self.report_lines(),
            *self.cpu_lines(),
        ):
            print(line)
        print("checks:")
        for c in checks:
            mark = "SKIP" if c.ok is None else "PASS" if c.ok else "FAIL"
            print(f"  {mark}  {c.name}: {c.detail}")
        failed = sum(1 for c in checks if c.ok is False)
        passed = sum(1 for c in checks if c.ok)
        print(
            f"result: {'FAIL' if failed else 'PASS'} ({passed} passed, "
            f"{len(checks) - passed - failed} skipped, {failed} failed)"
        )

    def workload(self) -> list[str]:
        a, t = self.args, self.cfg["typing"]
        mine: Figures = self.totals.get("machines", Figures())
        taken = mine.accepted / mine.shown if mine.shown else 0.0
        per_day = t["pauses_per_hour"] * a.typing_hours
        return [
            f"workload: {a.developers} developers x {a.days} working days from {a.start}, "
            f"{a.concurrency} processes at a time, each syncing every {a.sync_interval_s:g} s",
            f"  escalations: {mine.escalations:,} (the cost benchmark's month, priced by the "
            f"router: ${mine.cost:,.2f})",
            f"  editor rate (the latency benchmark's typing model, {t['keys']:,} keys and "
            f"{t['pauses']:,} pauses in {t['seconds']:.0f} s): {t['requests_per_hour']:,.0f} "
            f"requests and {t['pauses_per_hour']:,.0f} pauses an hour of typing",
            f"  completions: {a.typing_hours:g} h typed a working day = {per_day:,.0f} rows a "
            f"day{' plus the superseded keystrokes' if a.keystroke_rows else ' (pauses only)'};"
            f" {mine.requests:,} rows, {mine.shown:,} shown, {mine.accepted:,} taken "
            f"({taken:.0%} of shown)",
        ]

    def syncing(self) -> list[str]:
        stats = self.totals.get("stats", {}).values()
        busy = sum(s["busy_s"] for s in stats)
        rows = sum(s["busy_rows"] for s in stats)
        mine: Figures = self.totals.get("machines", Figures())
        o = self.fleet.outage
        lines = [
            f"month: {self.phase_s:.0f} s; sync throughput {rows / busy if busy else 0:,.0f} rows/s"
            f" per syncer while syncing ({rows:,} rows in {busy:.1f} s of rounds), "
            f"{(mine.escalations + mine.requests) / self.phase_s:,.0f} rows/s for the team",
        ]
        if o.started is not None and o.ended is not None:
            lines.append(
                f"  outage: database stopped {o.ended - o.started:.0f} s at {OUTAGE_AT:.0%} of "
                f"the rows, {o.writing} processes writing; every row written before the restart "
                f"was in the team database {self.drain_s:.1f} s after it (largest lag, a row "
                f"written as the database went away: {(o.drained or 0) - o.started:.1f} s)"
            )
        return lines

    def messages(self) -> list[str]:
        found = worker_messages(self.fleet.tmp).most_common(5)
        return [f"  printed by the processes: {n}x {text!r}" for text, n in found]

    def sizes_lines(self) -> list[str]:
        """Rows measured in a scratch table; buckets at the bytes a bucket takes in the year's
        table (freshly loaded), else in the team database's."""
        s, r = self.sizes, self.reports
        scale, year = MONTH_DAYS / self.args.days, YEAR_DEVELOPERS * YEAR_MONTHS
        held, count = (r, "bucket_rows") if "bucket_rows" in r else (s, "team_buckets")
        per_bucket = held["bucket_bytes"] / held[count] if held[count] else 0.0
        rows, row_bytes = s["rows"] * scale, s["row_bytes"] * scale
        buckets = s["buckets"] * scale
        return [
            f"completions of one developer-month (dev00, {MONTH_DAYS} days), as request rows "
            "or as the hourly buckets synced:",
            f"  rows:    {rows:>9,.0f}  {size(row_bytes):>10}  ({size(row_bytes / rows)} a row; "
            f"50 developers x 12 months: {size(row_bytes * year)})",
            f"  buckets: {buckets:>9,.0f}  {size(buckets * per_bucket):>10}  "
            f"({size(per_bucket)} a bucket; 50 developers x 12 months: "
            f"{size(buckets * per_bucket * year)})",
        ]

    def report_lines(self) -> list[str]:
        r = self.reports
        if "skipped" in r:
            return [f"usage --team over a year: skipped ({r['skipped']})"]
        per = r["bytes"] / (YEAR_DEVELOPERS * YEAR_MONTHS)
        lines = [
            f"usage --team over a year ({r['first']} to {r['last']}: {YEAR_DEVELOPERS} developers, "
            f"{r['request_rows']:,} request rows, {r['bucket_rows']:,} buckets, "
            f"{size(r['bytes'])}; {size(per)} per developer-month), {self.args.report_runs} runs:"
        ]
        for label in REPORTS:
            p50, p95 = r[label]
            lines.append(f"  {label:<13} p50 {p50:7.1f} ms  p95 {p95:7.1f} ms")
        if "dashboard" in r:
            lines += dashboard_lines(r["dashboard"], self.args.report_runs)
        return lines

    def cpu_lines(self) -> list[str]:
        t = self.typing
        steady = t["steady_cpu"] / t["steady_s"] if t["steady_s"] else 0.0
        return [
            f"syncer while typing: {t['seconds']:.0f} s at the typing model's pace, "
            f"{t['rows']:,} rows, {t['rounds']} rounds every {self.args.typing_interval_s:g} s "
            f"(the default is 60 s): thread CPU {t['thread_cpu'] * 1000:.0f} ms = "
            f"{self.cpu_share:.3%} of a core ({steady:.3%} after its first round); the whole "
            f"process {t['process_cpu']:.1f} s CPU",
        ]


# -- the run ------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--developers", type=int, default=50, help="developers, one process each (50)")
    p.add_argument("--days", type=int, default=21, help="working days of the month (21)")
    p.add_argument("--concurrency", type=int, default=8, help="processes at a time (8)")
    p.add_argument("--outage-s", type=float, default=30.0, help="the database's outage (30 s)")
    p.add_argument("--sync-interval-s", type=float, default=1.0, help="each syncer's (1 s)")
    p.add_argument("--typing-hours", type=float, default=1.0, help="typed a working day (1)")
    p.add_argument("--keystroke-rows", action="store_true", help="also superseded requests")
    p.add_argument("--min-write-s", type=float, default=5.0, help="a month's writing, at least")
    p.add_argument("--typing-s", type=float, default=60.0, help="the CPU measurement (60 s)")
    p.add_argument("--typing-interval-s", type=float, default=15.0, help="its syncer's (15 s)")
    p.add_argument("--report-runs", type=int, default=12, help="runs of each report (12)")
    p.add_argument(
        "--dashboard",
        action="store_true",
        help="also time nearline dashboard --team over the year (server and headless Chromium)",
    )
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--url", default=os.environ.get(URL_ENV, ""), help=f"(${URL_ENV})")
    p.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    p.add_argument("--typing-worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--tmp", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--die", choices=("open", "committed"), help=argparse.SUPPRESS)
    p.add_argument("--duplicate", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.developers < 3:
        p.error("--developers must be at least 3 (two are killed, one sends a batch twice)")
    if min(args.days, args.concurrency, args.report_runs) < 1 or args.typing_s <= 0:
        p.error("--days, --concurrency, --report-runs and --typing-s must be positive")
    args.start = default_start(dt.date.today())
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker is not None:
        return worker(args.worker, args.tmp, args.die, args.duplicate)
    if args.typing_worker:
        return typing_worker(args.tmp, args.typing_s, args.typing_interval_s)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up on kill, too
    tmp = Path(tempfile.mkdtemp(prefix="nearline-bench-team-"))
    try:
        return bench(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def bench(args: argparse.Namespace, tmp: Path) -> int:
    started = time.perf_counter()
    server, url = start_server(args)
    fleet = None
    try:
        cfg = prepare(args, tmp)
        fleet = Fleet(args, tmp, server, url, list(range(args.developers)))
        fleet.victims = {1: "open", 2: "committed"}
        log(f"{args.developers} developers, {args.concurrency} processes at a time")
        phase_s = fleet.run()
        if fleet.failed:
            for dev, why in fleet.failed.items():
                log(f"dev{dev:02d} failed: {why}")
            checks = [Check("every developer's process finished", False, str(list(fleet.failed)))]
            totals: dict[str, Any] = {}
        else:
            checks, totals = compare(fleet)
        sizes = completion_rows_size(url, tmp / "ledger-0.db", 0)
        log(f"typing for {args.typing_s:.0f} s to measure the syncer's CPU")
        typing = measure_typing(args, tmp, url)
        reports = year_reports(args, server, url)
    finally:
        if fleet is not None:
            for proc in fleet.running.values():
                proc.kill()
        if server is not None:
            server.destroy()
    result = Result(args, cfg, fleet, phase_s, totals, sizes, typing, reports)
    checks += result.more_checks()
    result.print(checks, time.perf_counter() - started)
    return 0 if all(c.ok is not False for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
