"""Each developer's month: the cost benchmark's escalations priced by the router, and
completions at the editor's rate (the latency benchmark's typing model), in time order with
their final uids; ``prepare`` writes them for the developers' processes."""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import hashlib
import json
import os
import random
import time
from pathlib import Path
from typing import Any

from costbench.workload import (
    DEFAULT_MIX,
    LOCAL_MODEL,
    PROJECT,
    Request,
    autocomplete_entry,
    working_days,
)
from nearline.accounting.entries import (
    Entry,
    Outcome,
    Project,
    escalation_entry,
    unanswered_entry,
)
from nearline.accounting.prices import Tokens
from nearline.tasks import AUTOCOMPLETE
from teambench import log, write_json

WORK_START_H, WORK_HOURS = 9, 9


def uid_for(run: str, dev: int, i: int) -> str:
    return hashlib.blake2b(f"{run}/{dev}/{i}".encode(), digest_size=16).hexdigest()


def typing_model() -> dict[str, float]:
    """Requests and shown suggestions per hour of typing, from the latency benchmark's replay
    (one request per keystroke, a suggestion at each word and line pause)."""
    import bench_latency as bl

    defaults = bl.parse_args([])
    lines = Path(bl.DEFAULT_FILE).read_text().splitlines(keepends=True)
    keys = bl.keystrokes(lines)
    words = sum(1 for _, pause in keys if pause == "word")
    ends = sum(1 for _, pause in keys if pause == "line")
    seconds = (
        len(keys) * defaults.key_interval + words * defaults.word_pause + ends * defaults.line_pause
    )
    return {
        "keys": len(keys),
        "pauses": words + ends,
        "seconds": seconds,
        "requests_per_hour": len(keys) / seconds * 3600,
        "pauses_per_hour": (words + ends) / seconds * 3600,
        "key_interval": defaults.key_interval,
        "word_pause": defaults.word_pause,
        "line_pause": defaults.line_pause,
    }


def escalation_plans(args: argparse.Namespace) -> list[list[dict[str, Any]]]:
    """Each developer's escalations of the cost benchmark's month, priced by the router."""
    from costbench.policy import policy
    from costbench.workload import Month, make_repo
    from nearline.config import parse_settings
    from nearline.documents import language_of
    from nearline.escalation.router import RouteRequest, estimate_tokens, route_for

    month = argparse.Namespace(
        devs=args.developers,
        days=args.days,
        per_dev_day=30,
        seed=args.seed,
        start=args.start,
        mix=dict(DEFAULT_MIX),
    )
    repo = make_repo(random.Random(args.seed), 400)
    lines = [f.text.split("\n") for f in repo]
    settings = parse_settings(
        policy("http://127.0.0.1:9/v1", "claude-sonnet-4-5", "claude-haiku-4-5"), "the policy"
    )
    plans: list[list[dict[str, Any]]] = [[] for _ in range(args.developers)]
    for req in Month(month, repo).requests():
        if req.klass == "autocomplete":
            continue  # completions come at the editor's rate instead
        files = [repo[i] for i in req.files]
        selection = "\n".join(lines[req.files[0]][req.start_line : req.end_line + 1])
        texts = [f.text for f in files] + [selection, req.instruction, req.diagnostic]
        decision = route_for(
            RouteRequest(
                task=req.kind,
                files=tuple(f.rel for f in files),
                selection_lines=req.end_line - req.start_line + 1,
                est_tokens=estimate_tokens(texts),
                language=language_of(files[0].rel),
            ),
            settings,
        )
        provider = decision.provider or ""
        plans[req.dev].append(
            {
                "ts": req.ts,
                "task": req.kind,
                "tier": decision.tier,
                "provider": provider,
                "model": settings.providers[provider].model,
                "input": decision.est_tokens,
                "output": decision.est_output_tokens,
                "cost": decision.est_cost_usd,
                "language": language_of(files[0].rel),
                "seed": req.seed,
            }
        )
    return plans


def project_of(dev: int) -> Project:
    return Project(f"/home/dev{dev:02d}/src/{PROJECT}", PROJECT)


def escalation_rows(plan: list[dict[str, Any]], proj: Project) -> list[Entry]:
    out = []
    for e in plan:
        rng = random.Random(e["seed"])
        out.append(
            escalation_entry(
                task=e["task"],
                outcome=Outcome.OK,
                tier=e["tier"],
                provider=e["provider"],
                model=e["model"],
                tokens=Tokens(input=e["input"], output=e["output"]),
                latency_ms=rng.uniform(1500, 20000),
                cost_usd=e["cost"],
                project=proj,
                language=e["language"],
                ts=e["ts"],
            )
        )
    return out


def typing_sessions(rng: random.Random, day: dt.date, seconds: float) -> list[tuple[float, float]]:
    """(start, length) of a day's typing: sessions of 4-20 minutes in working hours."""
    base = dt.datetime.combine(day, dt.time(WORK_START_H)).timestamp()
    span = WORK_HOURS * 3600
    out, left = [], seconds
    while left > 1:
        length = min(left, rng.uniform(240, 1200))
        out.append((base + rng.random() * (span - length), length))
        left -= length
    return out


def completion_rows(dev: int, cfg: dict[str, Any]) -> list[tuple[Entry, bool]]:
    """(row, taken later) for each completion request of the month, as the server records
    them; suggestions to be taken are written shown and accepted afterwards."""
    rng = random.Random(cfg["seed"] * 1000 + dev)
    model = cfg["typing"]
    per_pause = model["seconds"] / model["pauses"]
    superseded = round(model["keys"] / model["pauses"]) - 1 if cfg["keystroke_rows"] else 0
    proj = project_of(dev)
    out: list[tuple[Entry, bool]] = []
    start = dt.date.fromisoformat(cfg["start"])
    for day in working_days(start, cfg["days"]):
        for begin, length in typing_sessions(rng, day, cfg["typing_hours"] * 3600):
            path = "a.py" if rng.random() < 0.7 else "a.ts"  # the repository's share
            t = begin
            while t < begin + length:
                gap = per_pause * rng.uniform(0.5, 1.5)
                for j in range(superseded):
                    out.append((keystroke_row(proj, path, t + gap * j / (superseded + 1)), False))
                t += gap
                out.append(suggestion(rng, proj, path, t))
    return out


def suggestion(rng: random.Random, proj: Project, path: str, ts: float) -> tuple[Entry, bool]:
    """The row of a request at a pause, as the server records it (the cost benchmark's), and
    whether it is taken: a suggestion shown is written not taken, and accepted afterwards."""
    row = autocomplete_entry(
        Request(0, 0, ts, "autocomplete", seed=rng.getrandbits(32)), proj, path
    )
    if row.accepted is None:
        return row, False
    return dataclasses.replace(row, accepted=False, chars=rng.randint(4, 80)), bool(row.accepted)


def keystroke_row(proj: Project, path: str, ts: float) -> Entry:
    """A request superseded by the next keystroke before it was answered."""
    return unanswered_entry(
        task=AUTOCOMPLETE,
        outcome=Outcome.CANCELLED,
        latency_ms=2.0,
        project=proj,
        language="python" if path.endswith(".py") else "typescript",
        model=LOCAL_MODEL,
        ts=ts,
    )


def month_plan(dev: int, cfg: dict[str, Any]) -> list[tuple[Entry, bool]]:
    """The developer's month in time order, each row with its final uid."""
    plan = json.loads((Path(cfg["tmp"]) / f"escalations-{dev}.json").read_text())
    rows = [(e, False) for e in escalation_rows(plan, project_of(dev))]
    rows += completion_rows(dev, cfg)
    rows.sort(key=lambda r: r[0].ts)
    return [
        (dataclasses.replace(e, uid=uid_for(cfg["run"], dev, i)), taken)
        for i, (e, taken) in enumerate(rows)
    ]


def prepare(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """The shared configuration and each developer's escalations, as files for the workers."""
    t0 = time.perf_counter()
    plans = escalation_plans(args)
    for dev, plan in enumerate(plans):
        (tmp / f"escalations-{dev}.json").write_text(json.dumps(plan))
    cfg = {
        "tmp": str(tmp),
        "run": os.urandom(8).hex(),
        "seed": args.seed,
        "start": args.start.isoformat(),
        "days": args.days,
        "typing": typing_model(),
        "typing_hours": args.typing_hours,
        "keystroke_rows": args.keystroke_rows,
        "sync_interval_s": args.sync_interval_s,
        "min_write_s": args.min_write_s,
    }
    write_json(tmp / "config.json", cfg)
    log(f"workload ready in {time.perf_counter() - t0:.1f} s")
    return cfg
