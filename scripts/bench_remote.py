#!/usr/bin/env python3
"""Remote completion benchmark: a team's completion server asked on every keystroke beside the
local model (``completion.remote``, mode "hedge"), or instead of it (mode "only").

It types the same regions as ``bench_quality.py``'s replay (its ``Typist``: a keystroke every
``--key-ms``, pauses where a person looks, Tab when the ghost text matches the real file) into
one ``nearline serve`` per arm, each with a fresh cache folder, on each split:

    local            no completion server
    remote-only@30   mode "only", the replayed server answering 30 ms after a request arrives
    hedged@MS        mode "hedge", the replayed server at MS ms (one per ``--latencies``)
    hedged-slow      mode "hedge", the replayed server at 1000 ms (past the budget and the look)
    hedged-down      mode "hedge", the server's URL a closed 127.0.0.1 port
    real             (``--real``) mode "hedge", kind "openai": ``python -m llama_cpp.server``
                     with Qwen2.5-Coder-1.5B on this CPU (seconds per answer: too slow a server;
                     it also takes the CPU the local model runs on, which a GPU server does not)

The replayed server (``remotebench/replay_server.py``) is llama-server's ``/infill`` answering
from a table of Qwen2.5-Coder-1.5B's answers, precomputed where the replay can ask (its pauses
and line starts; ``--precompute`` fills the table, resuming where it stopped; a request
elsewhere is a miss, answered "" after the same latency). It reports a simulated prompt cache.

Per split, one row per arm: accepted / shown, characters written by Tab, pause latency p50 /
p95 (as bench_quality), the share of keystrokes answered within ``completion.time_budget_ms``
(request records from ``nearline/stats``), which engine served the suggestions shown (records
with text, by their ``engine``), the remote cache reuse (cached / prompt tokens, nearline's
counters, else the replayed server's), and the replay table's hits / misses.

    .venv/bin/python scripts/bench_remote.py --precompute --dry-run   # count the positions
    .venv/bin/python scripts/bench_remote.py --precompute             # fill the table
    .venv/bin/python scripts/bench_remote.py                          # every arm, both splits
    .venv/bin/python scripts/bench_remote.py --arms local,hedged@30 --split tune --quick
    .venv/bin/python scripts/bench_remote.py --arms hedged --latencies 20,50,100 --json r.json
    .venv/bin/python scripts/bench_remote.py --real --arms local,real --quick
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

SCRIPTS = Path(__file__).resolve().parent
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))

import bench_quality as bq  # noqa: E402
from remotebench import arms as arms_mod  # noqa: E402
from remotebench import precompute, report  # noqa: E402
from remotebench.answers import TABLE, AnswerTable  # noqa: E402


def own_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        add_help=False,
        prog="bench_remote.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--arms", help="comma-separated arms (default: all; `hedged`: one per --latencies)")
    add("--latencies", default="30,80,200", help="the hedged arms' latencies, ms")
    add("--real", action="store_true", help="also the arm with a real llama_cpp.server")
    add("--table", default=str(TABLE), help="the precomputed answers (JSON)")
    add("--remote-gguf", default=str(precompute.default_model()), help="the 1.5B GGUF")
    add(
        "--remote-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="another completion.remote setting for every arm with a server (JSON value)",
    )
    add("--precompute", action="store_true", help="fill the table instead of measuring")
    add("--dry-run", action="store_true", help="with --precompute: only count the positions")
    add(
        "--every-key",
        action="store_true",
        help="with --precompute: after every keystroke too, not only at pauses and line starts",
    )
    add("--threads", type=int, default=2, help="--precompute's CPU threads")
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """bench_remote's own flags, then bench_quality's (``--quick``, ``--split``, ``--regions``,
    ``--lines``, ``--model`` for the local model, ``--json``, ...)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    mine = own_parser()
    if "-h" in argv or "--help" in argv:
        mine.print_help()
        print("\nbench_quality's flags:\n")
    ours, rest = mine.parse_known_args(argv)
    args = bq.parse_args(rest)
    for key, value in vars(ours).items():
        setattr(args, key, value)
    try:
        args.latencies = [int(v) for v in str(args.latencies).split(",") if v.strip()]
    except ValueError:
        mine.error(f"--latencies {ours.latencies!r}: expected comma-separated ms")
    settings: dict[str, Any] = {}
    for spec in args.remote_set:
        key, sep, value = spec.partition("=")
        if not sep or not key:
            mine.error(f"--remote-set {spec!r}: expected KEY=VALUE")
        try:
            settings[key] = json.loads(value)
        except ValueError:
            settings[key] = value
    args.remote_set = settings
    args.arm_list = arms_mod.pick_arms(args.arms, args.latencies, args.real)
    real = any(a.real for a in args.arm_list)
    if real and not args.precompute and not Path(args.remote_gguf).exists():
        mine.error(f"the real arm needs {args.remote_gguf} (--remote-gguf)")
    if args.workspace != "small" or args.project or args.git:
        mine.error("bench_remote measures the manifest's files (or --files) only")
    return args


async def measure(
    args: argparse.Namespace, sets: dict[str, list[bq.Source]], table: AnswerTable
) -> list[dict[str, Any]]:
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-remote-") as tmp:
        for i, arm in enumerate(args.arm_list):
            bq.log(f"arm {arm.name}")
            workdir = Path(tmp) / f"arm{i}"
            workdir.mkdir()
            runs.append(await arms_mod.run_arm(args, arm, sets, workdir, table))
    return runs


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.precompute:
        return precompute.run(args)
    sets = bq.file_sets(args)
    table = AnswerTable.load(Path(args.table))
    if any(a.latency_ms is not None for a in args.arm_list):
        wanted = precompute.all_positions(args, sets)
        have = sum(1 for p in wanted if p.key in table)
        args.table_coverage = (
            f"{args.table}: {len(table)} precomputed answers; {have} of the {len(wanted)} "
            "pauses and line starts of these regions"
            + ("" if have == len(wanted) else " (the rest: `--precompute` with these flags)")
        )
        bq.log(args.table_coverage)
    t0 = time.perf_counter()
    runs = asyncio.run(measure(args, sets, table))
    every = argparse.Namespace(**{**vars(args), "every_key": True})
    typed = {p.key for p in precompute.all_positions(every, sets)}
    rows = report.rows_of(args, list(sets), runs, typed)
    for line in report.header(args, argv, runs):
        print(line)
    for split, by_arm in rows.items():
        print()
        print(report.table(split, by_arm))
        for line in report.details(split, by_arm):
            print(line)
    print()
    for line in report.seen_lines(runs):
        print(line)
    for run in runs:
        for err in run["errors"][:3]:
            print(f"{run['arm']} error: {err}")
    print(f"took {time.perf_counter() - t0:.0f} s")
    if args.json:
        report.write_json(args.json, args, rows, runs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
