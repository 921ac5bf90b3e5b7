"""The syncer's CPU on a developer's machine while typing, measured in a process of its own."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from nearline.accounting.entries import Project
from nearline.accounting.ledger import Ledger
from nearline.accounting.team.connection import TeamTarget
from nearline.accounting.team.sync import Identity
from teambench import SCRIPT, URL_ENV, write_json
from teambench.worker import MeteredSyncer
from teambench.workload import escalation_rows, keystroke_row, project_of, suggestion

CPU_GOAL = 0.01
"""The syncer thread's CPU time over the wall time, at most."""


def typing_worker(tmp: Path, seconds: float, interval: float) -> int:
    """Type for ``seconds`` at the latency benchmark's pace, one row per keystroke, with a
    syncer every ``interval``; the syncer thread's CPU time against the wall time."""
    import bench_latency as bl

    cfg = json.loads((tmp / "config.json").read_text())
    model = cfg["typing"]
    keys = bl.keystrokes(Path(bl.DEFAULT_FILE).read_text().splitlines(keepends=True))
    path = tmp / "typing.db"
    proj = project_of(0)
    who = Identity("typist@acme.example", "laptop-typist")
    ledger = Ledger(path)
    target = TeamTarget(URL_ENV, os.environ[URL_ENV])
    syncer = MeteredSyncer(target, path, who, lambda root: "send", interval)
    plan = json.loads((tmp / "escalations-0.json").read_text())
    rng = random.Random(cfg["seed"])
    t0 = time.perf_counter()
    syncer.start()
    rows = type_for(ledger, keys, model, proj, rng, t0 + seconds, (plan[:1], t0 + seconds / 2))
    ledger.flush()
    rounds = 1 + int(seconds // interval)
    deadline = time.perf_counter() + interval + 30
    while syncer.rounds < rounds and time.perf_counter() < deadline:
        time.sleep(0.05)
    syncer.stop(30)
    wall = time.perf_counter() - t0
    first_wall, first_cpu = syncer.first_round or (t0, 0.0)
    stats = {
        "seconds": wall,
        "rows": rows,
        "rounds": syncer.rounds,
        "thread_cpu": syncer.thread_cpu,
        "steady_cpu": syncer.thread_cpu - first_cpu,
        "steady_s": time.perf_counter() - first_wall,
        "process_cpu": time.process_time(),
    }
    ledger.close()
    write_json(tmp / "typing.json", stats)
    return 0


def type_for(
    ledger: Ledger,
    keys: list[tuple[str, str]],
    model: dict[str, float],
    proj: Project,
    rng: random.Random,
    until: float,
    escalation: tuple[list[dict[str, Any]], float],
) -> int:
    """Record what the server records while someone types: a cancelled request per keystroke,
    a suggestion at each pause (taken a pause later when taken), an escalation at ``at``."""
    plan, at = escalation
    rows, taken = 0, ""
    while True:
        for _, pause in keys:
            now = time.perf_counter()
            if now >= until:
                return rows
            if plan and now >= at:
                entry = escalation_rows(plan, proj)[0]
                ledger.record(dataclasses.replace(entry, ts=time.time()))
                plan, rows = [], rows + 1
            if not pause:
                ledger.record(keystroke_row(proj, "a.py", time.time()))
                time.sleep(model["key_interval"] * rng.uniform(0.6, 1.4))
            else:
                row, took = suggestion(rng, proj, "a.py", time.time())
                ledger.record(row)
                if taken:
                    ledger.accept(taken)
                taken = row.uid if took else ""
                wait = model["word_pause"] if pause == "word" else model["line_pause"]
                time.sleep(wait * rng.uniform(0.8, 1.2))
            rows += 1


def measure_typing(args: argparse.Namespace, tmp: Path, url: str) -> dict[str, Any]:
    command = [sys.executable, str(SCRIPT), "--typing-worker", "--tmp", str(tmp)]
    command += [
        "--typing-s",
        str(args.typing_s),
        "--typing-interval-s",
        str(args.typing_interval_s),
    ]
    env = dict(os.environ, **{URL_ENV: url})
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"the typing run failed: {done.stderr[-2000:]}")
    return dict(json.loads((tmp / "typing.json").read_text()))
