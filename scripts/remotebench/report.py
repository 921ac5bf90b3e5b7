"""The figures: per split, one row per arm."""

from __future__ import annotations

import argparse
import json
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

import bench_quality as bq

DEFAULT_BUDGET_MS = 50
"""``completion.time_budget_ms``'s default."""
NOT_ANSWERS = ("superseded",)
"""Record sources that are no answer (a newer keystroke took the request's place)."""


def budget_of(args: argparse.Namespace) -> int:
    return args.time_budget_ms if args.time_budget_ms is not None else DEFAULT_BUDGET_MS


def summarize(
    args: argparse.Namespace, split: str, run: dict[str, Any], typed: set[str]
) -> dict[str, Any]:
    """One arm's row for one split; ``typed``: the keys of every document the replay makes
    (each keystroke's), to check what nearline sent against the precompute's layout."""
    row = bq.summarize_replay(split, run, args.look_ms)
    budget = budget_of(args)
    records = [r for r in run["records"] if r["split"] == split]
    in_budget = [
        r
        for r in records
        if isinstance(r.get("latency_ms"), (int, float))
        and r["latency_ms"] <= budget
        and r.get("source") not in NOT_ANSWERS
    ]
    engines = Counter(str(r.get("engine", "?")) for r in records if (r.get("chars") or 0) > 0)
    remote = run["remote"].get(split) or {}
    replay = (run.get("replay") or {}).get(split) or {}
    nearline_prompt = remote.get("prompt_tokens")
    nearline_cached = remote.get("cached_tokens")
    keys = [k for tag, k in run.get("replay_keys", []) if tag == split]
    row.update(
        replayed=len(keys),
        at_typed=sum(1 for k in keys if k in typed),
        keystrokes=run["asked"].get(split, 0),
        records=len(records),
        in_budget=len(in_budget),
        budget_ms=budget,
        engines=dict(engines),
        remote=remote,
        replay=replay,
    )
    if isinstance(nearline_prompt, (int, float)) and nearline_prompt > 0:
        row["cache_reuse"] = (nearline_cached or 0) / nearline_prompt
        row["cache_from"] = "nearline"
    elif replay.get("prompt_tokens"):
        row["cache_reuse"] = replay.get("cached_tokens", 0) / replay["prompt_tokens"]
        row["cache_from"] = "replay"
    return row


def rows_of(
    args: argparse.Namespace, splits: list[str], runs: list[dict[str, Any]], typed: set[str]
) -> dict[str, dict[str, dict[str, Any]]]:
    """split -> arm -> row."""
    return {
        split: {run["arm"]: summarize(args, split, run, typed) for run in runs} for split in splits
    }


def engines_cell(engines: dict[str, int]) -> str:
    if not engines:
        return "-"
    cell = f"{engines.get('local', 0)} / {engines.get('remote', 0)}"
    other = sum(n for e, n in engines.items() if e not in ("local", "remote"))
    return cell + (f" (+{other} unnamed)" if other else "")


def table(split: str, rows: dict[str, dict[str, Any]]) -> str:
    budget = next(iter(rows.values()))["budget_ms"] if rows else DEFAULT_BUDGET_MS
    out = [
        f"{split}:",
        "| arm | accepted / shown | characters by Tab | pause p50 / p95 "
        f"| keystrokes answered <= {budget} ms | shown by local / remote "
        "| remote cache reuse | replay hits / misses |",
        "|" + " --- |" * 8,
    ]
    for arm, r in rows.items():
        replay = r["replay"]
        reuse = r.get("cache_reuse")
        from_replay = " (replay)" if r.get("cache_from") == "replay" else ""
        out.append(
            "| "
            + " | ".join(
                [
                    arm,
                    bq.ratio(r["accepted"], r["shown"]),
                    bq.ratio(r["chars_by_tab"], r["chars"]),
                    bq.ms_cell([r["latency_p50_ms"], r["latency_p95_ms"]], r["look_ms"]),
                    bq.ratio(r["in_budget"], r["keystrokes"]),
                    engines_cell(r["engines"]),
                    "-" if reuse is None else f"{100 * reuse:.0f}%{from_replay}",
                    f"{replay.get('hits', 0)} / {replay.get('misses', 0)}" if replay else "-",
                ]
            )
            + " |"
        )
    return "\n".join(out)


REMOTE_KEYS = ("asked", "answered", "won", "late", "errors", "prompt_tokens", "cached_tokens")
REMOTE_KEYS += ("state", "reason")


def details(split: str, rows: dict[str, dict[str, Any]]) -> list[str]:
    out = []
    for arm, r in rows.items():
        parts = [
            f"{r['pauses']} pauses, {r['late']} answers later than the look, "
            f"{r['errors']} errors, {r['reasked']} asked again after completionReady, "
            f"{r['records']} records of {r['keystrokes']} requests"
        ]
        remote = r["remote"]
        if remote:
            shown = {k: remote[k] for k in REMOTE_KEYS if remote.get(k) not in (None, "")}
            rest = sorted(set(remote) - set(REMOTE_KEYS))
            parts.append(
                "nearline remote: "
                + ", ".join(f"{k} {v}" for k, v in shown.items())
                + (f" (also: {', '.join(rest)})" if rest else "")
            )
        replay = r["replay"]
        if replay:
            parts.append(
                f"replay: {replay.get('requests', 0)} requests, {replay.get('hits', 0)} hits, "
                f"{replay.get('misses', 0)} misses ({replay.get('near_misses', 0)} whose last "
                f"200 prefix characters are in the table: a layout mismatch), "
                f"{replay.get('dropped', 0)} dropped by the client, "
                f"{replay.get('health', 0)} health probes; layout check: {r['at_typed']} of "
                f"{r['replayed']} requests are a document the replay types (after some "
                "keystroke), as the precompute lays it out"
            )
        out.append(f"  {split} {arm}: " + "; ".join(parts))
    return out


def header(args: argparse.Namespace, argv: list[str], runs: list[dict[str, Any]]) -> list[str]:
    out = ["commands:", "  " + " ".join(["python", "scripts/bench_remote.py", *argv])]
    for run in runs:
        options = json.dumps(run["options"], separators=(",", ":"))
        out.append(f"  {run['arm']}: {run['command']}")
        out.append(f"    initializationOptions {options}")
        out.append(f"    completion server: {run['served']}")
    if getattr(args, "table_coverage", None):
        out.append(f"replayed answers: {args.table_coverage}")
    out.append(
        f"local model: {runs[0].get('model') if runs else '?'}; budget {budget_of(args)} ms; "
        f"key every {args.key_ms:.0f} ms, look {args.look_ms:.0f} ms"
    )
    return out


def seen_lines(runs: list[dict[str, Any]]) -> list[str]:
    """The replayed server's first requests: what nearline sent vs the table."""
    out = []
    for run in runs:
        for s in run.get("replay_seen", [])[:4]:
            verdict = "hit" if s["hit"] else ("near miss" if s["near"] else "miss")
            out.append(
                f"  {run['arm']} {s['tag']}: key {s['key']} {verdict}; prefix ends "
                f"{s['prefix_end']!r}, suffix starts {s['suffix_start']!r}"
            )
    return ["replayed server, first requests (key vs table):", *out] if out else []


def write_json(
    path: str,
    args: argparse.Namespace,
    rows: dict[str, dict[str, dict[str, Any]]],
    runs: list[dict[str, Any]],
) -> None:
    data = {
        "args": vars(args),
        "rows": rows,
        "arms": {
            run["arm"]: {
                "options": run["options"],
                "command": run["command"],
                "served": run["served"],
                "stats": run["stats"],
                "errors": run["errors"],
                "replay_seen": run.get("replay_seen", []),
                "regions": [asdict(r) for r in run["regions"]],
                "records": run["records"],
            }
            for run in runs
        },
    }
    Path(path).write_text(json.dumps(bq.finite(data), indent=1, default=str))
