"""The usage report as JSON and CSV."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from collections.abc import Iterable, Sequence
from typing import Any

from nearline.accounting.prices import PRICE_FIELDS, Price
from nearline.accounting.report.model import Group, Report, summarize


def _r(value: float | None) -> float | None:
    """Costs to 10 decimals: float sums' last bits are noise."""
    return None if value is None else round(value, 10)


def group_dict(g: Group) -> dict[str, Any]:
    return {
        "key": g.key,
        "requests": g.requests,
        "input_tokens": g.input_tokens,
        "output_tokens": g.output_tokens,
        "cache_write_tokens": g.cache_write_tokens,
        "cache_write_1h_tokens": g.cache_write_1h_tokens,
        "cache_read_tokens": g.cache_read_tokens,
        "total_tokens": g.total_tokens,
        "cost_usd": _r(g.cost_usd),
        "flagship_cost_usd": _r(g.flagship_cost_usd),
        "saved_usd": _r(g.saved_usd),
        "suggestions_shown": g.shown,
        "accepted": g.accepted,
        "acceptance_rate": _r(g.acceptance_rate),
        "cost_per_accepted_usd": _r(g.cost_per_accepted),
        "cache_hit_share": _r(g.cache_hit_share),
        "completions": g.completions,
        "completions_from_cache": g.from_cache,
        "completion_cache_share": _r(g.completion_cache_share),
        "cost_by_tier": {tier: _r(cost) for tier, cost in g.cost_by_tier.items()},
        "cache_hit_share_by_tier": {t: _r(v) for t, v in g.cache_by_tier.items()},
        "cache_saved_usd": _r(g.cache_saved_usd),
        "anomaly": g.anomaly,
    }


def report_dict(report: Report) -> dict[str, Any]:
    price = report.flagship_price
    return {
        "since": report.since,
        "until": report.until,
        "period": report.period,
        "by": report.by,
        "project": report.project,
        "flagship": {"model": report.flagship_model} | {f: getattr(price, f) for f in PRICE_FIELDS},
        "groups": [group_dict(g) for g in report.groups],
        "total": group_dict(report.total),
        "days": [group_dict(g) for g in report.days],
        "tokens_by_model": dict(report.tokens_by_model),
        "anomalies": [{"day": a.day, "message": a.message} for a in report.anomalies],
        "warnings": list(report.warnings),
        "tools": [
            dataclasses.asdict(tool) | {"acceptance_rate": tool.acceptance_rate}
            for tool in report.tools
        ],
    }


def to_json(report: Report) -> str:
    return json.dumps(report_dict(report), indent=2)


CSV_FIELDS = tuple(
    k
    for k in group_dict(summarize("", [], Price()))
    if k not in ("cost_by_tier", "cache_hit_share_by_tier")
)


def to_csv(report: Report) -> str:
    """A header, one line per group, then the ``total`` line; empty cells for None."""
    return csv_of(CSV_FIELDS, (group_dict(g) for g in (*report.groups, report.total)))


def csv_of(fields: Sequence[str], rows: Iterable[dict[str, Any]]) -> str:
    """A header of ``fields``, then a line per row (other keys left out; None: empty)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return out.getvalue()
