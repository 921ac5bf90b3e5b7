#!/usr/bin/env python3
"""What building the project index costs a keystroke, measured where it hurts: the engine
thread. The model (what ``nearline serve`` would load) answers a "keystroke" job again
(one character more of a ~300-token prompt, 8 tokens generated, 100 ms between jobs), as the
engine thread does, while the index of a repository of ``--files`` real files is built:

- ``none``: no index work (the floor);
- ``thread-first`` / ``thread-restart``: the way the server built it before issue 19, on a
  thread of the server's process (``refresh_quietly``: the walk, the results of the reading
  processes and the store's writes in this process; a restart loads every record here);
- ``child-first`` / ``child-restart``: the way it does now (``IndexBuilder``: a child process at
  the lowest priority writes the store, paused (SIGSTOP) while a job runs; the server reads
  its list of paths).

Printed per arm: keystroke job p50 / p95 / max (ms), how many jobs, the event-loop lag p99 /
max (ms, a 10 ms ticker: what a request handler would wait), and the build's seconds. Arms
run in turn, each on a fresh store (a restart arm after a first build of its own).

    .venv/bin/python scripts/bench_index_stall.py [--files 10000] [--arms none,thread-first,...]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "server"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_index import make_repo, tick  # noqa: E402
from nearline.app.indexing import IndexBuilder, open_shared_index, refresh_quietly  # noqa: E402
from nearline.catalog import resolve_model_path  # noqa: E402
from nearline.completion.engine.llama import LocalEngine  # noqa: E402
from nearline.config import parse_settings  # noqa: E402
from nearline.index.store import ProjectIndex  # noqa: E402

ARMS = ("none", "thread-first", "child-first", "thread-restart", "child-restart")
KEY_GAP_S = 0.1
"""Between two keystroke jobs (the index build gets the cores then)."""
PROMPT = (ROOT / "scripts" / "bench_data" / "replay_source.py").read_text()[:1200]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


class Keystrokes:
    """Keystroke jobs on a thread of their own (the engine thread), until stopped."""

    def __init__(self, engine: LocalEngine) -> None:
        self.engine = engine
        self.hold: Callable[[bool], None] | None = None
        """Told when a job starts and ends (the server pauses its index build meanwhile)."""
        self.times: list[float] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="engine")

    def _run(self) -> None:
        text, i = PROMPT, 0
        while not self.stop.is_set():
            i += 1
            text += "abcdefghij"[i % 10]
            if i % 40 == 0:
                text = PROMPT
            t0 = time.perf_counter()
            if self.hold is not None:
                self.hold(True)
            self.engine.generate(
                self.engine.tokenize(text),
                max_tokens=8,
                stop=lambda _t: None,
                deadline=None,
                cancel=threading.Event(),
            )
            if self.hold is not None:
                self.hold(False)
            self.times.append((time.perf_counter() - t0) * 1000)
            time.sleep(KEY_GAP_S)  # a person's next key: the engine idles meanwhile


def thread_build(repo: Path, store: Path, workers: int) -> Callable[[], float]:
    def run() -> float:
        index = ProjectIndex(repo, store, workers=workers)
        t0 = time.perf_counter()
        index.load()
        refresh_quietly(index)
        index.close()
        return time.perf_counter() - t0

    return run


def child_build(
    repo: Path, cache: Path, workers: int, keys: Keystrokes | None = None
) -> Callable[[], float]:
    def run() -> float:
        settings = parse_settings({"cache": {"dir": str(cache)}, "index": {"workers": workers}})
        index = open_shared_index(repo, settings)
        assert index is not None
        builder = IndexBuilder(index, settings)
        if keys is not None:
            keys.hold = builder.hold  # paused while the engine works, as the server does
        t0 = time.perf_counter()
        builder.start()
        index.built.wait()
        took = time.perf_counter() - t0
        if keys is not None:
            keys.hold = None
        index.close()
        return took

    return run


async def measure(keys: Keystrokes, work: Callable[[], float], settle_s: float) -> dict[str, Any]:
    keys.thread.start()
    await asyncio.sleep(settle_s)  # the prompt evaluated once: jobs are keystrokes from here
    keys.times.clear()
    lags: list[float] = []
    stop = threading.Event()
    ticker = asyncio.create_task(tick(stop, lags))
    seconds = await asyncio.to_thread(work)
    stop.set()
    keys.stop.set()
    await ticker
    keys.thread.join()
    times = keys.times
    return {
        "jobs": len(times),
        "p50": round(statistics.median(times), 1) if times else None,
        "p95": round(pct(times, 0.95), 1),
        "max": round(max(times, default=0.0), 1),
        "lag_p99": round(pct(lags, 0.99), 1),
        "lag_max": round(max(lags, default=0.0), 1),
        "build_s": round(seconds, 2),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--files", type=int, default=10_000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--arms", default=",".join(ARMS))
    p.add_argument("--none-s", type=float, default=8.0, help="how long the 'none' arm runs")
    args = p.parse_args()
    settings = parse_settings({})
    engine = LocalEngine(resolve_model_path(settings.model), settings.model)
    engine.load()
    print(f"model {engine.model_id}; repository of {args.files} files (site-packages' Python)")
    with tempfile.TemporaryDirectory(prefix="nearline-stall-") as tmp:
        repo = Path(tmp) / "repo"
        repo.mkdir()
        make_repo(repo, args.files, 512 * 1024)
        for n, arm in enumerate(args.arms.split(",")):
            store, cache = Path(tmp) / f"store{n}", Path(tmp) / f"cache{n}"
            keys = Keystrokes(engine)
            if arm == "none":
                work: Callable[[], float] = lambda: time.sleep(args.none_s) or args.none_s  # noqa: E731
            elif arm.startswith("thread"):
                work = thread_build(repo, store, args.workers)
            else:
                work = child_build(repo, cache, args.workers, keys)
            if arm.endswith("restart"):
                first = child_build(repo, cache, args.workers) if arm[0] == "c" else work
                first()  # a first build, unmeasured: the arm measures the restart after it
            out = asyncio.run(measure(keys, work, settle_s=2.0))
            print(
                f"{arm:15} keystroke p50 {out['p50']} ms, p95 {out['p95']} ms, max {out['max']} ms"
                f" ({out['jobs']} jobs); loop lag p99 {out['lag_p99']} ms, max {out['lag_max']} ms;"
                f" build {out['build_s']} s",
                flush=True,
            )
    engine.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
