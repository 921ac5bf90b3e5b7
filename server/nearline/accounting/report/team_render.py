"""The team's usage report as a terminal table (80 columns), JSON and CSV (the HTML page is in
``team_html``); the same figures in each."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from nearline.accounting.report.export import _r, csv_of
from nearline.accounting.report.model import ratio
from nearline.accounting.report.team_model import (
    Acceptance,
    CacheShare,
    TeamAnomaly,
    TeamGroup,
    TeamReport,
)
from nearline.accounting.report.text import percent, recorded, tokens_short, usd

# -- words -----------------------------------------------------------------------------------


def empty_message(report: TeamReport) -> str:
    where = f" for {report.project}" if report.project else ""
    return f"no requests in the team database between {report.since} and {report.until}{where}"


def team_acceptance(report: TeamReport) -> tuple[int, int, float | None]:
    """The team's suggestions shown and accepted, and its spend per accepted suggestion."""
    rows = [a for a in report.acceptance if a.model is None]
    shown, accepted = sum(a.shown for a in rows), sum(a.accepted for a in rows)
    return shown, accepted, ratio(report.total.cost_usd, accepted)


def cache_line(report: TeamReport) -> str:
    parts = [f"{c.provider} {percent(c.share)}" for c in report.cache if c.share is not None]
    return f"provider cache hits (of input tokens): {', '.join(parts) or '-'}"


def notes(report: TeamReport) -> list[str]:
    """The lines under the table: the window, acceptance, cache hits, then each anomaly."""
    t = report.total
    shown, accepted, per = team_acceptance(report)
    return [
        f"{t.requests:,} requests, {usd(t.cost_usd)}, from {report.since} to {report.until}"
        + (f" in {report.project}" if report.project else " over the whole team"),
        f"acceptance: {accepted:,} of {shown:,} suggestions "
        f"({percent(ratio(accepted, shown))}), {usd(per)} per accepted",
        cache_line(report),
        *(f"! {a.message}" for a in report.anomalies),
    ]


# -- the terminal ----------------------------------------------------------------------------


def _group_row(g: TeamGroup) -> list[Text]:
    key = Text(g.key)
    if g.anomaly:
        key.append(" !", style="bold red")
    numbers = [
        f"{g.requests:,}",
        tokens_short(g.input_tokens),
        tokens_short(g.cache_read_tokens),
        tokens_short(g.cache_write_tokens),
        tokens_short(g.output_tokens),
        tokens_short(g.total_tokens),
        usd(g.cost_usd),
    ]
    return [key, *(Text(n) for n in numbers)]


def _table(first: str, headers: Sequence[str]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, padding=(0, 0), pad_edge=False, show_edge=False)
    table.add_column(first, overflow="fold")
    for header in headers:
        table.add_column(header, justify="right", no_wrap=True)
    return table


def groups_table(report: TeamReport) -> Table:
    """Fits 80 columns: token counts abbreviated; a long key folds onto more lines."""
    headers = ("requests", "input", "cache\nread", "cache\nwrite", "output", "total", "cost")
    table = _table(report.grouped_by, [f" {h}" for h in headers])
    for g in report.groups:
        table.add_row(*_group_row(g))
    table.add_section()
    table.add_row(*_group_row(report.total), style="bold")
    return table


def _label(a: Acceptance) -> str:
    return a.developer if a.model is None else f"  {a.model}"


def acceptance_table(report: TeamReport) -> Table:
    headers = ("shown", "accepted", "rate", "chars", "spend", "$/acc")
    table = _table("developer / model", [f" {h}" for h in headers])
    for a in report.acceptance:
        table.add_row(
            _label(a),
            f"{a.shown:,}",
            f"{a.accepted:,}",
            percent(a.acceptance_rate),
            tokens_short(a.chars_accepted),
            usd(a.cost_usd),
            usd(a.cost_per_accepted),
            style="bold" if a.model is None else None,
        )
    return table


def render(report: TeamReport, console: Console) -> None:
    if not report.groups:
        console.print(empty_message(report), markup=False, highlight=False)
        return
    console.print(groups_table(report))
    if report.acceptance:
        console.print()
        console.print(acceptance_table(report))
    console.print()
    for line in notes(report):
        style = "red" if line.startswith("!") else None
        console.print(line, markup=False, highlight=False, style=style)


def as_text(report: TeamReport, width: int = 80) -> str:
    return recorded(lambda console: render(report, console), width)


# -- JSON and CSV ----------------------------------------------------------------------------


def group_dict(g: TeamGroup) -> dict[str, Any]:
    return {
        "key": g.key,
        "requests": g.requests,
        "input_tokens": g.input_tokens,
        "cache_read_tokens": g.cache_read_tokens,
        "cache_write_tokens": g.cache_write_tokens,
        "output_tokens": g.output_tokens,
        "total_tokens": g.total_tokens,
        "cost_usd": _r(g.cost_usd),
        "anomaly": g.anomaly,
    }


def acceptance_dict(a: Acceptance) -> dict[str, Any]:
    return {
        "developer": a.developer,
        "model": a.model,
        "shown": a.shown,
        "accepted": a.accepted,
        "acceptance_rate": _r(a.acceptance_rate),
        "chars_accepted": a.chars_accepted,
        "cost_usd": _r(a.cost_usd),
        "cost_per_accepted_usd": _r(a.cost_per_accepted),
    }


def cache_dict(c: CacheShare) -> dict[str, Any]:
    return {
        "provider": c.provider,
        "input_tokens": c.input_tokens,
        "cache_read_tokens": c.cache_read_tokens,
        "cache_write_tokens": c.cache_write_tokens,
        "cache_hit_share": _r(c.share),
    }


def anomaly_dict(a: TeamAnomaly) -> dict[str, Any]:
    return {
        "kind": a.kind,
        "name": a.name,
        "day": a.day,
        "spend_usd": _r(a.spend_usd),
        "baseline_average_usd": _r(a.average_usd),
        "baseline_days": a.baseline_days,
        "message": a.message,
    }


def report_dict(report: TeamReport) -> dict[str, Any]:
    """``acceptance``: per developer, their row over all models (``model`` null) first."""
    return {
        "window": {
            "since": report.since,
            "until": report.until,
            "period": report.period,
            "by": report.by,
            "project": report.project,
        },
        "groups": [group_dict(g) for g in report.groups],
        "acceptance": [acceptance_dict(a) for a in report.acceptance],
        "cache": [cache_dict(c) for c in report.cache],
        "anomalies": [anomaly_dict(a) for a in report.anomalies],
        "totals": group_dict(report.total),
    }


def to_json(report: TeamReport) -> str:
    return json.dumps(report_dict(report), indent=2)


CSV_FIELDS = tuple(group_dict(TeamGroup("", 0, 0, 0, 0, 0, 0.0)))


def to_csv(report: TeamReport) -> str:
    """The groups: a header, a line per group, then the ``total`` line; empty cells for None."""
    return csv_of(CSV_FIELDS, (group_dict(g) for g in (*report.groups, report.total)))
