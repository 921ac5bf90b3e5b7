"""The evaluation's figures: a row per model (completion cases) and per tier (escalation
cases), the table ``nearline eval`` prints, its JSON, and the suggested routing as a
``.nearline.toml`` snippet. Pure functions of an ``EvalRun``.

A completion case succeeds when a Tab would have written something of what the author
wrote. An escalation case succeeds when its diff applies and, with ``eval.test_command`` set,
the tests pass; without one, when its changed lines are at least ``SIMILAR`` alike to the
commit's."""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Sequence
from typing import Any

from nearline.catalog import DEFAULT_MODEL
from nearline.catalog.choice import SUGGESTED
from nearline.evaluation.runner import ANSWERED, SCORED, Candidate, CandidateKind, CaseOutcome
from nearline.evaluation.session import EvalRun

SIMILAR = 0.5
"""Line similarity at which a change that applies counts as a success (no test command)."""
WITHIN = 0.10
"""A cheaper tier is suggested when its success rate is within this of the best tier's."""
FEW_CASES = 3


def percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _results(run: EvalRun, cand: Candidate) -> list[dict[str, Any]]:
    by_commit = run.results.get(cand.key, {})
    return [r for c in run.commits for r in by_commit.get(c.sha, [])]


def escalation_success(r: dict[str, Any]) -> bool:
    if r.get("outcome") != CaseOutcome.CHANGED:
        return False
    tests = r.get("tests_pass")
    return bool(tests) if tests is not None else r.get("line_similarity", 0.0) >= SIMILAR


def completion_row(run: EvalRun, cand: Candidate) -> dict[str, Any]:
    rs = [r for r in _results(run, cand) if not r.get("error")]
    expected = sum(r["expected_chars"] for r in rs)
    accepted = sum(1 for r in rs if r["tab_chars"] > 0)
    latencies = [r["latency_ms"] for r in rs]
    return {
        "label": cand.label,
        "key": cand.key,
        "cases": len(rs),
        "errors": len(_results(run, cand)) - len(rs),
        "shown": _share(sum(1 for r in rs if r["shown"]), len(rs)),
        "exact": _share(sum(1 for r in rs if r["exact"]), len(rs)),
        "edit_similarity": mean([r["edit_similarity"] for r in rs]),
        "tab_chars": _share(sum(r["tab_chars"] for r in rs), expected),
        "accepted": _share(accepted, len(rs)),
        "latency_p50_ms": percentile(latencies, 0.5),
        "latency_p95_ms": percentile(latencies, 0.95),
        "cost_usd": 0.0,
        "usd_per_success": 0.0 if accepted else None,
        "error": run.errors.get(cand.key),
    }


def escalation_row(run: EvalRun, cand: Candidate) -> dict[str, Any]:
    """A tier's figures. Its success rate counts the cases a provider failed on as misses;
    refused cases and those another tier answered (a budget's downgrade) are left out."""
    rs = _results(run, cand)
    scored = [r for r in rs if r.get("outcome") in SCORED]
    answered = [r for r in scored if r["outcome"] in ANSWERED]
    applied = [r for r in answered if r["outcome"] == CaseOutcome.CHANGED]
    tested = [r for r in applied if r.get("tests_pass") is not None]
    wins = sum(1 for r in scored if escalation_success(r))
    cost = sum(r.get("cost_usd", 0.0) for r in rs)
    by_kind: dict[str, dict[str, Any]] = {}
    for kind in sorted({r["kind"] for r in scored}):
        mine = [r for r in scored if r["kind"] == kind]
        by_kind[kind] = {
            "cases": len(mine),
            "success": _share(sum(1 for r in mine if escalation_success(r)), len(mine)),
            "cost_usd": sum(r.get("cost_usd", 0.0) for r in mine),
        }
    return {
        "label": cand.label,
        "key": cand.key,
        "tier": cand.tier,
        "cases": len(scored),
        "failed": len(scored) - len(answered),
        "not_run": len(rs) - len(scored),
        "applies": _share(len(applied), len(answered)),
        "line_similarity": mean([r["line_similarity"] for r in answered]),
        "files": mean([r["files_jaccard"] for r in answered]),
        "tests_pass": _share(sum(1 for r in tested if r["tests_pass"]), len(tested)),
        "success": _share(wins, len(scored)),
        "latency_p50_ms": percentile([r["latency_ms"] for r in answered], 0.5),
        "cost_usd": cost,
        "usd_per_success": cost / wins if wins else None,
        "by_kind": by_kind,
        "estimated_usd": run.estimates.get(cand.key),
        "error": run.errors.get(cand.key),
    }


def _share(part: float, whole: float) -> float | None:
    return part / whole if whole else None


def suggestion(
    run: EvalRun, models: list[dict[str, Any]], tiers: list[dict[str, Any]]
) -> dict[str, Any]:
    """The model for autocomplete and the tier per task kind the evidence favours: the
    cheapest tier within ``WITHIN`` of the best success rate (see the module)."""
    best_model = max(
        (m for m in models if m["cases"]),
        key=lambda m: (m["tab_chars"] or 0.0, m["exact"] or 0.0),
        default=None,
    )
    rules = []
    kinds = sorted({k for t in tiers for k in t["by_kind"]})
    for kind in kinds:
        options = [(t["tier"], t["by_kind"][kind]) for t in tiers if kind in t["by_kind"]]
        top = max(o["success"] or 0.0 for _, o in options)
        if top <= 0:
            continue
        per_case = sorted(options, key=lambda o: o[1]["cost_usd"] / max(o[1]["cases"], 1))
        tier, stats = next(o for o in per_case if (o[1]["success"] or 0.0) >= top - WITHIN)
        rules.append(
            {
                "task": kind,
                "tier": tier,
                "success": stats["success"],
                "cases": stats["cases"],
                "usd_per_case": stats["cost_usd"] / max(stats["cases"], 1),
                "few_cases": stats["cases"] < FEW_CASES,
                "compared": {t: o["success"] for t, o in options},
            }
        )
    out: dict[str, Any] = {"model": best_model["label"] if best_model else None, "rules": rules}
    out["toml"] = suggestion_toml(run, out)
    return out


def suggestion_toml(run: EvalRun, suggested: dict[str, Any]) -> str:
    day = dt.date.fromtimestamp(run.started).isoformat()
    lines = [
        f"# nearline eval {day}: {len(run.commits)} commits of {run.project} "
        f"(HEAD {run.state.head[:12]})"
    ]
    model = suggested["model"]
    if model and model == run.serving:
        lines.append(f"# autocomplete: keep {model}, the model serving now")
        if model == DEFAULT_MODEL:
            lines.append(
                f"# (the embedded default; `nearline models pull {SUGGESTED}` brings a code "
                "model: run nearline eval again to compare)"
            )
    elif model:
        lines.append(f"# autocomplete: {model} completed this project's code best")
        if model.endswith(".gguf"):
            lines.append(f"# (set model.path to the file {model})")
        else:
            lines += ["[model]", f'name = "{model}"']
    if suggested["rules"]:
        lines.append("# routing: put these before your own [[routing.rules]] (first match wins)")
    for rule in suggested["rules"]:
        others = ", ".join(
            f"{t} {cell(s, '%')}" for t, s in rule["compared"].items() if t != rule["tier"]
        )
        lines += [
            "",
            "[[routing.rules]]",
            f'name = "eval: {rule["task"]}"',
            f'task = ["{rule["task"]}"]',
            f'tier = "{rule["tier"]}"',
            f"# {cell(rule['success'], '%')} of {rule['cases']} cases succeeded at "
            f"${rule['usd_per_case']:.4f} each"
            + (f"; {others}" if others else "")
            + ("; few cases: take it as a hint" if rule["few_cases"] else ""),
        ]
    if not suggested["rules"] and any(c.kind == CandidateKind.TIER for c in run.candidates):
        lines.append("# routing: no tier succeeded on any case: no rule to suggest")
    return "\n".join(lines) + "\n"


def report_dict(run: EvalRun) -> dict[str, Any]:
    models = [completion_row(run, c) for c in run.candidates if c.kind == CandidateKind.MODEL]
    tiers = [escalation_row(run, c) for c in run.candidates if c.kind == CandidateKind.TIER]
    return {
        "project": run.project,
        "head": run.state.head,
        "branch": run.state.branch,
        "shallow": run.state.shallow,
        "commits": len(run.commits),
        "completion_cases": run.completion_cases(),
        "escalation_cases": len(run.escalation_cases()),
        "models": models,
        "tiers": tiers,
        "spent_usd": run.spent_usd,
        "max_usd": run.options.max_usd,
        "suggestion": suggestion(run, models, tiers),
        "notes": [*run.state.notes(), *run.notes],
        "interrupted": run.interrupted,
        "seconds": round(time.time() - run.started, 1),
        "results": {c.label: _results(run, c) for c in run.candidates},
    }


Column = tuple[str, str, str]
"""A table column: its title, its row's key, and how its value is written (``cell``)."""
MODEL_COLUMNS: tuple[Column, ...] = (
    ("model", "label", ""),
    ("cases", "cases", ""),
    ("exact", "exact", "%"),
    ("edit sim", "edit_similarity", ""),
    ("Tab chars", "tab_chars", "%"),
    ("Tab'd", "accepted", "%"),
    ("p50 ms", "latency_p50_ms", "ms"),
    ("p95 ms", "latency_p95_ms", "ms"),
    ("cost", "cost_usd", "$"),
)
TIER_COLUMNS: tuple[Column, ...] = (
    ("tier", "label", ""),
    ("cases", "cases", ""),
    ("applies", "applies", "%"),
    ("line sim", "line_similarity", ""),
    ("files", "files", ""),
    ("tests", "tests_pass", "%"),
    ("success", "success", "%"),
    ("p50 ms", "latency_p50_ms", "ms"),
    ("cost", "cost_usd", "$"),
    ("$/success", "usd_per_success", "$"),
)


def cell(value: Any, kind: str = "") -> str:
    """A value as the tables write it: "%" a share, "$" dollars, "ms" whole milliseconds."""
    if value is None:
        return "-"
    if kind == "%":
        return f"{value * 100:.0f}%"
    if kind == "$":
        return f"${value:.4f}"
    if kind == "ms":
        return f"{value:.0f}"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def cells(row: dict[str, Any], columns: Sequence[Column]) -> list[str]:
    return [cell(row.get(key), kind) for _, key, kind in columns]


def _table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows, strict=True)]
    fmt = lambda cells: "  ".join(  # noqa: E731
        str(c).ljust(w) if i == 0 else str(c).rjust(w)
        for i, (c, w) in enumerate(zip(cells, widths, strict=True))
    )
    return [fmt(head), fmt(["-" * w for w in widths]), *map(fmt, rows)]


def to_text(data: dict[str, Any]) -> str:
    out = [
        f"nearline eval: {data['project']}, {data['commits']} commits to "
        f"{(data['branch'] or 'detached HEAD')} {data['head'][:12]}"
    ]
    out += [f"note: {n}" for n in data["notes"]]
    out += [
        f"note: {r['label']}: {r['error']}" for r in data["models"] + data["tiers"] if r["error"]
    ]
    if data["models"]:
        out += [
            "",
            f"Autocomplete: {data['completion_cases']} cases "
            "(lines the commits added, cut at a word)",
        ]
        rows = []
        for m in data["models"]:
            row = cells(m, MODEL_COLUMNS)
            row[0] += " (failed)" if m["error"] else ""
            rows.append(row)
        out += _table([title for title, _, _ in MODEL_COLUMNS], rows)
        out.append(
            "exact: first line = the author's; edit sim: 1 - edit distance/length; Tab chars: "
            "share of the author's characters a Tab would have written; Tab'd: cases where "
            "a Tab writes something; ms: the whole answer, file just opened"
        )
    if data["tiers"]:
        out += [
            "",
            f"Escalation: {data['escalation_cases']} cases "
            "(commits of 1-5 files, their message as the request)",
        ]
        rows = []
        for t in data["tiers"]:
            row = cells(t, TIER_COLUMNS)
            row[1] += f" ({t['failed']} failed)" if t["failed"] else ""
            row[1] += f" (+{t['not_run']} not run)" if t["not_run"] else ""
            rows.append(row)
        out += _table([title for title, _, _ in TIER_COLUMNS], rows)
        out.append(
            f"spent ${data['spent_usd']:.4f} of --max-usd ${data['max_usd']:.2f} (recorded in "
            'the usage ledger as client "eval")'
        )
    elif data["escalation_cases"]:
        out.append(
            f"\n{data['escalation_cases']} escalation cases are ready: `--tiers local,value` "
            "(cloud tiers after an estimate, within --max-usd) evaluates them"
        )
    out += [
        "",
        "Suggested settings (paste into .nearline.toml):",
        data["suggestion"]["toml"].rstrip(),
    ]
    if data["interrupted"]:
        out.append("\ninterrupted: the commits done are kept; run again to go on")
    return "\n".join(out) + "\n"
