#!/usr/bin/env python3
"""Usage import benchmark (``nearline usage import``): throughput on a year of a heavy Claude
Code user's logs, the time of a second import when nothing changed, and the memory while one
2 GB log is imported.

The logs are generated in Claude Code's shape at a heavy user's volume (defaults: 8 sessions a
day for 365 days, 120 answers a session, each written 2-3 times while it streams, a tool result
of 0.5-8 KB between answers, about 2 GB in all). Each import runs as the real command in a
process of its own, into a new ledger, and is timed as a whole; its peak memory is that
process's maximum resident set (``wait4``).

    .venv/bin/python scripts/bench_usage_import.py                    # the year, then 2 GB
    .venv/bin/python scripts/bench_usage_import.py --days 30 --big-gb 0.2   # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOOL_TEXT = "x = compute(y)  # a line of a file the tool read\n"


def answer(mid: str, output: int, ts: str, rng: random.Random) -> str:
    return json.dumps(
        {
            "parentUuid": f"{rng.getrandbits(64):016x}",
            "isSidechain": False,
            "userType": "external",
            "cwd": "/home/dev/src/project",
            "sessionId": "s",
            "version": "2.0.14",
            "type": "assistant",
            "requestId": f"req_{mid}",
            "timestamp": ts,
            "message": {
                "id": mid,
                "type": "message",
                "role": "assistant",
                "model": "claude-sonnet-4-5-20250929",
                "content": [{"type": "text", "text": "Here is the change. " * 20}],
                "stop_reason": None,
                "usage": {
                    "input_tokens": 4,
                    "cache_creation_input_tokens": rng.randrange(200, 4000),
                    "cache_read_input_tokens": rng.randrange(10_000, 120_000),
                    "output_tokens": output,
                    "service_tier": "standard",
                },
            },
            "uuid": f"{rng.getrandbits(64):016x}",
        }
    )


def tool_result(ts: str, size: int) -> str:
    body = (TOOL_TEXT * (size // len(TOOL_TEXT) + 1))[:size]
    return json.dumps(
        {
            "type": "user",
            "timestamp": ts,
            "cwd": "/home/dev/src/project",
            "message": {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "t", "content": body}],
            },
        }
    )


def session(path: Path, day: int, number: int, answers: int, rng: random.Random) -> int:
    """One session's log; returns its answers (what the import must find)."""
    start = 1_735_689_600 + day * 86_400 + number * 3_000
    with path.open("w") as f:
        for i in range(answers):
            ts = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(start + i * 20))
            mid = f"msg_{day}_{number}_{i}"
            f.write(tool_result(ts, rng.randrange(500, 8_000)) + "\n")
            for output in range(rng.randrange(2, 4)):  # streamed: written again as it grows
                f.write(answer(mid, 1 + output * 150, ts, rng) + "\n")
    return answers


def make_year(home: Path, days: int, per_day: int, answers: int) -> tuple[int, int]:
    rng = random.Random(23)
    folder = home / ".claude" / "projects" / "-home-dev-src-project"
    folder.mkdir(parents=True)
    total = 0
    for day in range(days):
        for n in range(per_day):
            total += session(folder / f"{day:03d}-{n}.jsonl", day, n, answers, rng)
    size = sum(p.stat().st_size for p in folder.iterdir())
    old = time.time() - 86_400
    for p in folder.iterdir():
        os.utime(p, (old, old))
    return total, size


def make_big(path: Path, gb: float) -> tuple[int, int]:
    """One log of ``gb`` GB (a session kept open for months, or logs glued together)."""
    rng = random.Random(5)
    path.parent.mkdir(parents=True, exist_ok=True)
    total, number = 0, 0
    with path.open("w") as f:
        while f.tell() < gb * 1e9:
            ts = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(1_735_689_600 + number))
            f.write(tool_result(ts, rng.randrange(500, 8_000)) + "\n")
            for output in range(2):
                f.write(answer(f"msg_big_{number}", 1 + output * 150, ts, rng) + "\n")
            total, number = total + 1, number + 1
    old = time.time() - 86_400
    os.utime(path, (old, old))
    return total, path.stat().st_size


def run_import(home: Path, ledger: Path, *paths: Path) -> tuple[float, float, str]:
    """(seconds, peak RSS MB, its output) of one ``nearline usage import claude-code``."""
    env = {
        **os.environ,
        "HOME": str(home),
        "NEARLINE_LEDGER": str(ledger),
        "NEARLINE_CONFIG": str(home / "config.toml"),
        "NEARLINE_DATA_DIR": str(home / "data"),
        "PYTHONPATH": str(ROOT / "server"),
    }
    env.pop("CLAUDE_CONFIG_DIR", None)
    argv = [sys.executable, "-m", "nearline", "usage", "import", "claude-code", *map(str, paths)]
    t0 = time.perf_counter()
    proc = subprocess.Popen([*argv, "--quiet"], env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"the import failed ({proc.returncode}): {out}")
    return seconds, usage.ru_maxrss / 1024, out.strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--sessions-per-day", type=int, default=8)
    ap.add_argument("--answers", type=int, default=120, help="answers per session")
    ap.add_argument("--big-gb", type=float, default=2.0, help="the one big log (0: none)")
    ap.add_argument("--keep", action="store_true", help="leave the generated logs")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="nearline-import-bench-"))
    try:
        home = work / "home"
        t0 = time.perf_counter()
        expected, size = make_year(home, args.days, args.sessions_per_day, args.answers)
        files = args.days * args.sessions_per_day
        print(
            f"generated {files:,} session logs, {size / 1e9:.2f} GB, {expected:,} answers "
            f"in {time.perf_counter() - t0:.0f} s"
        )
        ledger = work / "usage.db"
        first, rss, said = run_import(home, ledger)
        print(f"first import:  {first:7.2f} s  {expected / first:9,.0f} records/s  "
              f"{size / 1e6 / first:6.1f} MB/s  peak RSS {rss:5.0f} MB")  # fmt: skip
        print(f"  {said}")
        assert f"{expected} records in {files} files read" in said, said
        second, rss, said = run_import(home, ledger)
        print(f"second import: {second:7.2f} s  (nothing changed)  peak RSS {rss:5.0f} MB")
        print(f"  {said}")
        if args.big_gb:
            big = work / "big" / "one.jsonl"
            records, big_size = make_big(big, args.big_gb)
            seconds, rss, said = run_import(home, work / "big.db", big)
            print(
                f"one {big_size / 1e9:.2f} GB log: {seconds:7.2f} s  "
                f"{records / seconds:9,.0f} records/s  peak RSS {rss:5.0f} MB"
            )
            print(f"  {said}")
            assert f"{records} records in 1 files read" in said, said
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}")


if __name__ == "__main__":
    main()
