#!/usr/bin/env python3
"""Project index benchmark: a repository of ``--files`` (10,000) real source files, indexed as
the server does it (``nearline.index.store.ProjectIndex``, the server's settings).

The repository is made of the Python files in this environment's site-packages (real code of
every size; copied again under ``copyN/`` folders until there are enough), in a temporary
folder with a ``.gitignore``. Measured, each once:

1. the first build as the server runs it (``app.indexing.refresh_quietly`` on a thread of its
   own, the files read by low-priority processes), while an asyncio loop on the main thread ticks
   every 10 ms: the loop's lag (how late a tick is) is what a keystroke handler would wait;
2. ``--changes`` (50) edited and saved files, one at a time, as the editor sends them:
   ``update`` with the new text (a random line doubled: an edit anywhere, syntax errors
   included): per file p50 / p95 / max;
3. a restart: a new index on the same store, ``load`` then ``refresh``: how long, and how
   many files it read again (0 expected); then ``--touched`` (10) files changed on disk and
   another ``refresh``: it reads those only.

Targets (issue 12): first build ≤ 60 s, an update ≤ 50 ms per changed file, a restart reads no
unchanged file.

    .venv/bin/python scripts/bench_index.py
    .venv/bin/python scripts/bench_index.py --files 2000 --workers 0 --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import statistics
import sys
import sysconfig
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "server"))

from nearline.app.indexing import refresh_quietly  # noqa: E402
from nearline.config import Settings  # noqa: E402
from nearline.index.store import ProjectIndex  # noqa: E402


def make_repo(target: Path, n: int, max_bytes: int) -> int:
    """``n`` Python files from site-packages under ``target``; their total size."""
    pool = sorted(
        p
        for p in Path(sysconfig.get_paths()["purelib"]).rglob("*.py")
        if p.is_file() and p.stat().st_size <= max_bytes
    )
    if not pool:
        raise SystemExit("no Python files in site-packages to copy")
    (target / ".gitignore").write_text("build/\n*.tmp\n")
    total = 0
    for i in range(n):
        src = pool[i % len(pool)]
        rel = src.relative_to(src.parents[len(src.parents) - 1])  # keeps the package folders
        copy = i // len(pool)
        dest = target / f"copy{copy}" / Path(*rel.parts[-3:])
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists():
            dest = dest.with_name(f"{dest.stem}_{i}.py")
        shutil.copyfile(src, dest)
        total += dest.stat().st_size
    return total


async def tick(stop: threading.Event, lags: list[float], period_s: float = 0.01) -> None:
    while not stop.is_set():
        t0 = time.perf_counter()
        await asyncio.sleep(period_s)
        lags.append((time.perf_counter() - t0 - period_s) * 1000)


async def first_build(index: ProjectIndex) -> tuple[Any, list[float]]:
    stop = threading.Event()
    lags: list[float] = []
    ticker = asyncio.get_running_loop().create_task(tick(stop, lags))
    try:
        stats = await asyncio.to_thread(refresh_quietly, index)  # as the server does
    finally:
        stop.set()
        await ticker
    return stats, lags


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))] if values else 0.0


def main() -> int:
    defaults = Settings().index
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--files", type=int, default=10_000)
    p.add_argument("--workers", type=int, default=defaults.workers)
    p.add_argument("--changes", type=int, default=50)
    p.add_argument("--touched", type=int, default=10)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    rng = random.Random(args.seed)
    out: dict[str, Any] = {"files_asked": args.files, "workers": args.workers}
    with tempfile.TemporaryDirectory(prefix="nearline-bench-index-") as tmp:
        repo, store = Path(tmp) / "repo", Path(tmp) / "store"
        repo.mkdir()
        out["repo_mb"] = round(make_repo(repo, args.files, defaults.max_file_kb * 1024) / 1e6, 1)
        index = ProjectIndex(repo, store, max_files=defaults.max_files, workers=args.workers)
        stats, lags = asyncio.run(first_build(index))
        out["first_build"] = {
            "files": stats.files,
            "parsed": stats.parsed,
            "seconds": round(stats.seconds, 2),
            "loop_lag_p50_ms": round(statistics.median(lags), 2) if lags else None,
            "loop_lag_p99_ms": round(pct(lags, 0.99), 2),
            "loop_lag_max_ms": round(max(lags, default=0.0), 2),
        }
        entries = index.entries()
        times = []
        for entry in rng.sample(entries, min(args.changes, len(entries))):
            path = repo / entry.path
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines(True)
            at = rng.randrange(len(lines)) if lines else 0  # an edit anywhere: a line doubled
            text = "".join(lines[: at + 1] + lines[at : at + 1] + lines[at + 1 :])
            path.write_text(text, encoding="utf-8")  # saved, as the editor sends it
            t0 = time.perf_counter()
            index.update(path, text, entry.language)
            times.append((time.perf_counter() - t0) * 1000)
        out["update_ms"] = {
            "p50": round(statistics.median(times), 2),
            "p95": round(pct(times, 0.95), 2),
            "max": round(max(times), 2),
        }
        index.close()

        restarted = ProjectIndex(repo, store, max_files=defaults.max_files, workers=args.workers)
        t0 = time.perf_counter()
        loaded = restarted.load()
        load_s = time.perf_counter() - t0
        again = restarted.refresh()
        for entry in rng.sample(restarted.entries(), args.touched):
            with open(repo / entry.path, "a", encoding="utf-8") as f:
                f.write("\n# touched\n")
        touched = restarted.refresh()
        restarted.close()
        out["restart"] = {
            "loaded": loaded,
            "load_s": round(load_s, 2),
            "refresh_s": round(again.seconds, 2),
            "read": again.read,
            "after_touching": {"touched": args.touched, "read": touched.read},
        }
    fb, up, rs = out["first_build"], out["update_ms"], out["restart"]
    out["pass"] = {
        "first_build_le_60s": fb["seconds"] <= 60,
        "update_le_50ms": up["max"] <= 50,
        "restart_reads_none": rs["read"] == 0,
    }
    if args.json:
        print(json.dumps(out, indent=1))
    else:
        print(f"repository: {fb['files']} files, {out['repo_mb']} MB (site-packages' Python)")
        print(
            f"first build: {fb['seconds']} s with {args.workers} worker processes "
            f"(target <= 60 s); event-loop lag meanwhile p50 {fb['loop_lag_p50_ms']} ms, "
            f"p99 {fb['loop_lag_p99_ms']} ms, max {fb['loop_lag_max_ms']} ms"
        )
        print(
            f"update of one changed file: p50 {up['p50']} ms, p95 {up['p95']} ms, "
            f"max {up['max']} ms (target <= 50 ms)"
        )
        print(
            f"restart: {rs['loaded']} entries loaded in {rs['load_s']} s, refresh "
            f"{rs['refresh_s']} s reading {rs['read']} files; after touching "
            f"{args.touched}: read {rs['after_touching']['read']}"
        )
    return 0 if all(out["pass"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
