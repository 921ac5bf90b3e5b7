"""The arms: what each one's ``nearline serve`` is told about the completion server, that
server (replayed, closed, slow, or a real ``llama_cpp.server``), and the typing replay of
``bench_quality`` with every request's record from ``nearline/stats`` kept."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import re
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

import bench_quality as bq
from remotebench.answers import AnswerTable
from remotebench.replay_server import ReplayRemote

REMOTE_MODEL = "qwen2.5-coder-1.5b"
SLOW_MS = 1000
"""The slow arm's latency: past the budget and past the look."""
REAL_START_S = 300


@dataclass(frozen=True)
class Arm:
    name: str
    mode: str | None = None
    """None: no completion server; "hedge" or "only"."""
    latency_ms: float | None = None
    """The replayed server's latency; None: no replayed server."""
    down: bool = False
    real: bool = False


def arm_named(name: str) -> Arm | None:
    if name == "local":
        return Arm(name)
    if name == "hedged-slow":
        return Arm(name, "hedge", SLOW_MS)
    if name == "hedged-down":
        return Arm(name, "hedge", down=True)
    if name == "real":
        return Arm(name, "hedge", real=True)
    found = re.fullmatch(r"(hedged|remote-only)@(\d+(?:\.\d+)?)", name)
    if found:
        mode = "hedge" if found[1] == "hedged" else "only"
        return Arm(name, mode, float(found[2]))
    return None


def default_arms(latencies: list[int], real: bool) -> list[str]:
    names = ["local", "remote-only@30", *(f"hedged@{ms}" for ms in latencies)]
    names += ["hedged-slow", "hedged-down"]
    return [*names, "real"] if real else names


def pick_arms(spec: str | None, latencies: list[int], real: bool) -> list[Arm]:
    """``--arms``: names (``hedged@120``, ``remote-only@80`` for any latency), ``hedged``
    for one per ``--latencies``; default all of them (``real`` with ``--real``)."""
    names = default_arms(latencies, real)
    if spec:
        names = []
        for part in filter(None, (p.strip() for p in spec.split(","))):
            names += [f"hedged@{ms}" for ms in latencies] if part == "hedged" else [part]
    arms = []
    for name in dict.fromkeys(names):
        arm = arm_named(name)
        if arm is None:
            known = ", ".join(default_arms(latencies, True))
            raise SystemExit(f"--arms: unknown arm {name!r} (known: {known}, hedged@MS, ...)")
        arms.append(arm)
    return arms


def remote_options(arm: Arm, url: str, extra: dict[str, Any]) -> dict[str, Any] | None:
    """The arm's ``initializationOptions`` beyond bench_quality's."""
    if arm.mode is None:
        return None
    kind = "openai" if arm.real else "llama-server"
    remote = {"kind": kind, "url": url, "model": REMOTE_MODEL, "mode": arm.mode, **extra}
    return {"completion": {"remote": remote}}


def closed_port() -> int:
    """A 127.0.0.1 port nothing listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def real_command(args: argparse.Namespace, port: int) -> list[str]:
    return [sys.executable, "-m", "llama_cpp.server", "--model", str(args.remote_gguf)] + [
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        "4096",
    ]


async def start_real(args: argparse.Namespace, workdir: Path) -> tuple[subprocess.Popen, str]:
    """``python -m llama_cpp.server`` with the 1.5B; its /v1 URL once it answers."""
    port = closed_port()
    log_file = (workdir / "llama_cpp_server.log").open("wb")
    proc = subprocess.Popen(
        real_command(args, port), stdout=log_file, stderr=subprocess.STDOUT, cwd=workdir
    )
    url = f"http://127.0.0.1:{port}/v1"
    give_up = time.perf_counter() + REAL_START_S
    async with httpx.AsyncClient(timeout=2) as client:
        while time.perf_counter() < give_up:
            if proc.poll() is not None:
                tail = (workdir / "llama_cpp_server.log").read_text(errors="replace")[-1500:]
                raise SystemExit(f"llama_cpp.server ended ({proc.returncode}): {tail}")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(url + "/models")).status_code == 200:
                    return proc, url
            await asyncio.sleep(0.5)
    stop_process(proc)
    raise SystemExit(f"llama_cpp.server did not answer in {REAL_START_S} s")


def stop_process(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


async def all_stats(server: bq.Server) -> dict[str, Any]:
    """``nearline/stats`` with its ``recent`` records (bench_quality's drops them)."""
    result = await server.client.protocol.send_request_async("nearline/stats", None)
    return bq.plain(result) or {}


def take_records(found: dict[str, Any], records: dict[Any, dict[str, Any]], split: str) -> None:
    """Add the records not seen yet (by request id), tagged with the split being typed."""
    for record in found.get("recent") or []:
        key = record.get("id")
        if key is None:
            key = ("no-id", len(records))
        if key not in records:
            records[key] = {**record, "split": split}


def counters(value: Any) -> dict[str, float]:
    if not isinstance(value, dict):
        return {}
    return {
        k: v for k, v in value.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
    }


def delta(before: Any, after: Any) -> dict[str, Any]:
    """``after``'s counters less ``before``'s; its other fields (state, latencies in ms) as
    they are."""
    if not isinstance(after, dict):
        return {}
    old = counters(before)
    out = dict(after)
    for key, value in counters(after).items():
        if not key.endswith("_ms"):
            out[key] = value - old.get(key, 0)
    return out


async def replay_arm(
    args: argparse.Namespace,
    sets: dict[str, list[bq.Source]],
    workdir: Path,
    options: dict[str, Any] | None,
    replay: ReplayRemote | None,
) -> dict[str, Any]:
    """``bench_quality.run_replay``'s typing, with ``nearline/stats`` read after each region so
    that every request's record is kept, and the remote counters per split."""
    server = bq.Server(args, workdir, bq.with_options(bq.replay_options(args), options))
    typist = bq.Typist(server, args)
    regions: list[bq.RegionRun] = []
    records: dict[Any, dict[str, Any]] = {}
    asked: dict[str, int] = {}
    remote: dict[str, dict[str, Any]] = {}
    stats: dict[str, Any] = {}
    try:
        await server.start()
        for split, sources in sets.items():
            if replay is not None:
                replay.tag = split
            before = await all_stats(server)
            take_records(before, records, "")
            first_id = server._ids
            rng = random.Random(f"{args.seed}:{bq.base_name(split)}:regions")
            for region in bq.pick_regions(sources, args.regions, args.lines, rng):
                run = await typist.type_region(region, split)
                regions.append(run)
                take_records(await all_stats(server), records, split)
                tabs = sum(1 for p in run.pauses if p.accepted)
                bq.log(f"  {split} {run.file}:{run.line}: {tabs} Tab / {len(run.pauses)} pauses")
            await asyncio.sleep(0.5)
            after = await all_stats(server)
            take_records(after, records, split)
            asked[split] = server._ids - first_id
            remote[split] = delta(before.get("remote"), after.get("remote"))
            stats = {k: v for k, v in after.items() if k != "recent"}
    finally:
        await server.stop()
    return {
        "regions": regions,
        "errors": server.errors,
        "messages": server.messages,
        "stats": stats,
        "model": server.model,
        "cancelled": server.cancelled,
        "records": [r for r in records.values() if r["split"]],
        "asked": asked,
        "remote": remote,
        "command": " ".join(server.command()),
    }


async def run_arm(
    args: argparse.Namespace,
    arm: Arm,
    sets: dict[str, list[bq.Source]],
    workdir: Path,
    table: AnswerTable,
) -> dict[str, Any]:
    """One arm: its completion server up, its own ``nearline serve`` typing every split."""
    replay: ReplayRemote | None = None
    proc: subprocess.Popen | None = None
    served = "none"
    try:
        url = ""
        if arm.latency_ms is not None:
            replay = ReplayRemote(table, arm.latency_ms).start()
            url = replay.url
            served = f"replayed /infill at {url}, {arm.latency_ms:.0f} ms after arrival"
        elif arm.down:
            url = f"http://127.0.0.1:{closed_port()}"
            served = f"{url}: a closed port"
        elif arm.real:
            proc, url = await start_real(args, workdir)
            served = " ".join(real_command(args, int(url.rsplit(":", 1)[1].split("/")[0])))
        options = remote_options(arm, url, args.remote_set)
        out = await replay_arm(args, sets, workdir, options, replay)
    finally:
        if replay is not None:
            replay.stop()
        if proc is not None:
            stop_process(proc)
    out["arm"] = arm.name
    out["options"] = bq.with_options(bq.replay_options(args), options)
    out["served"] = served
    if replay is not None:
        out["replay"] = {split: dict(replay.totals(split)) for split in sets}
        out["replay_seen"] = replay.seen
        out["replay_keys"] = list(replay.keys)
    return out
