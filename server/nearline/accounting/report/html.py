"""The ``nearline usage --html`` report: one self-contained file (inline CSS and SVG charts, the
report's JSON embedded) that opens in a browser offline."""

from __future__ import annotations

import datetime as dt
import html
import json
import math
from collections.abc import Iterable, Sequence

from nearline.accounting.report.export import report_dict
from nearline.accounting.report.model import Group, Report
from nearline.accounting.report.text import empty_message, notes, percent, tokens_short, usd

TIER_COLORS = {"local": "#2e9d5b", "value": "#3a78c2", "flagship": "#8a4fc0"}
PALETTE = ("#d08a2c", "#c2504f", "#4aa6a6", "#8d8d3a", "#7a6a5a", "#b65b9a")
CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:96em;color:#222;padding:0 1em}
table{border-collapse:collapse;margin:1em 0;font-size:85%}tr.total{font-weight:bold}
td,th{padding:.2em .5em;text-align:right;white-space:nowrap}.wide{overflow-x:auto}
td:first-child,th:first-child{text-align:left}tr:nth-child(even){background:#f4f4f4}
tr.anomaly{background:#fde2e1}.anomalies li{color:#b3261e}.legend span{margin-right:1em}
.swatch{display:inline-block;width:.8em;height:.8em;margin-right:.3em}svg{width:100%}
svg text{font-size:11px;fill:#444}section{margin:2em 0}
"""
_W, _H, _LEFT, _RIGHT = 720, 180, 60, 20
"""Chart width, plot height, and the room left and right of the plot for labels."""


def tier_colors(tiers: Iterable[str]) -> dict[str, str]:
    others = iter(PALETTE * 10)
    return {t: TIER_COLORS.get(t) or next(others) for t in sorted(set(tiers))}


def escape(text: object) -> str:
    return html.escape(str(text), quote=True)


def script_json(data: object) -> str:
    """``data`` as JSON that is safe inside ``<script type="application/json">``."""
    text = json.dumps(data)
    for char, code in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e")):
        text = text.replace(char, code)
    return text


def svg_columns(
    columns: Sequence[tuple[str, Sequence[tuple[str, float, str]], bool]],
    top: float,
    axis: str,
) -> str:
    """Vertical (stacked) bars: per column its label, its parts (label, value, colour) and
    whether it is flagged; ``top`` is the value of the full height."""
    top = top or 1.0
    step = (_W - _LEFT - _RIGHT) / max(len(columns), 1)
    every = max(1, math.ceil(len(columns) / 12))
    parts = [
        f'<svg viewBox="0 0 {_W} {_H + 24}" role="img">',
        f'<text x="0" y="12">{escape(axis)}</text>',
        f'<line x1="{_LEFT}" y1="{_H}" x2="{_W - _RIGHT}" y2="{_H}" stroke="#999"/>',
    ]
    for i, (label, stack, flagged) in enumerate(columns):
        x, y = _LEFT + i * step, float(_H)
        for name, value, color in stack:
            height = max(value, 0) / top * (_H - 20)
            y -= height
            parts.append(
                f'<rect x="{x + 1:.1f}" y="{y:.1f}" width="{max(step - 2, 1):.1f}" '
                f'height="{height:.1f}" fill="{color}">'
                f"<title>{escape(label)} {escape(name)}</title></rect>"
            )
        if flagged:
            parts.append(
                f'<rect class="flag" x="{x:.1f}" y="14" width="{step:.1f}" height="{_H - 14}" '
                f'fill="none" stroke="#b3261e" stroke-width="2"><title>anomaly</title></rect>'
            )
        if i % every == 0:
            parts.append(
                f'<text x="{x + step / 2:.1f}" y="{_H + 16}" text-anchor="middle">'
                f"{escape(label[5:])}</text>"
            )
    return "".join(parts) + "</svg>"


def svg_hbars(items: Sequence[tuple[str, int]]) -> str:
    """Horizontal bars, one per (label, value)."""
    top = max((v for _, v in items), default=0) or 1
    left, row = 200, 22
    parts = [f'<svg viewBox="0 0 {_W} {row * max(len(items), 1) + 4}" role="img">']
    for i, (label, value) in enumerate(items):
        y = i * row + 2
        short = label if len(label) <= 32 else label[:31] + "\u2026"
        width = value / top * (_W - left - 70)
        parts.append(
            f'<text x="0" y="{y + 14}">{escape(short)}<title>{escape(label)}</title></text>'
            f'<rect x="{left}" y="{y}" width="{width:.1f}" height="{row - 6}" fill="#3a78c2">'
            f"<title>{escape(label)}: {value:,} tokens</title></rect>"
            f'<text x="{left + width + 4:.1f}" y="{y + 14}">{escape(tokens_short(value))}</text>'
        )
    return "".join(parts) + "</svg>"


def _calendar(report: Report) -> list[tuple[str, Group | None]]:
    """Every day of the window, with its group (None: no requests)."""
    days = {g.key: g for g in report.days}
    first, last = dt.date.fromisoformat(report.since), dt.date.fromisoformat(report.until)
    count = (last - first).days + 1
    dates = [(first + dt.timedelta(days=i)).isoformat() for i in range(count)]
    return [(d, days.get(d)) for d in dates]


def charts(report: Report) -> list[tuple[str, str]]:
    """(title, inline SVG) for each chart."""
    colors = tier_colors(t for g in report.days for t in g.cost_by_tier)
    calendar = _calendar(report)
    spend = [
        (
            d,
            [(t, c, colors[t]) for t, c in g.cost_by_tier.items()] if g else [],
            bool(g and g.anomaly),
        )
        for d, g in calendar
    ]
    top = max((g.cost_usd for g in report.days), default=0.0)

    def shares(name: str, color: str) -> list[tuple[str, Sequence[tuple[str, float, str]], bool]]:
        values = [(d, getattr(g, name) if g else None) for d, g in calendar]
        return [(d, [] if v is None else [(percent(v), v, color)], False) for d, v in values]

    legend = "".join(
        f'<span><i class="swatch" style="background:{c}"></i>{escape(t)}</span>'
        for t, c in colors.items()
    )
    return [
        (
            "Spend per day by tier",
            f'<p class="legend">{legend}</p>' + svg_columns(spend, top, f"max {usd(top)}"),
        ),
        ("Tokens by model", svg_hbars(report.tokens_by_model)),
        (
            "Cache hit share of input tokens",
            svg_columns(shares("cache_hit_share", "#4aa6a6"), 1.0, "100%"),
        ),
        ("Acceptance rate", svg_columns(shares("acceptance_rate", "#2e9d5b"), 1.0, "100%")),
    ]


def _cells(g: Group) -> list[str]:
    return [
        g.key,
        f"{g.requests:,}",
        f"{g.input_tokens:,}",
        f"{g.output_tokens:,}",
        f"{g.cache_write_tokens:,}",
        f"{g.cache_read_tokens:,}",
        f"{g.total_tokens:,}",
        usd(g.cost_usd),
        usd(g.flagship_cost_usd),
        usd(g.saved_usd),
        percent(g.acceptance_rate),
        usd(g.cost_per_accepted),
        percent(g.cache_hit_share),
        usd(g.cache_saved_usd),
    ]


HTML_HEADERS = (
    "requests",
    "input",
    "output",
    "cache write",
    "cache read",
    "total",
    "cost",
    "flagship",
    "saved",
    "acceptance",
    "$/accepted",
    "cache hits",
    "caching saved",
)


def html_table(report: Report) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in (report.by or report.period, *HTML_HEADERS))
    rows = []
    for g in (*report.groups, report.total):
        attrs = ' class="anomaly"' if g.anomaly else ' class="total"' if g is report.total else ""
        title = f' title="{escape(g.anomaly)}"' if g.anomaly else ""
        cells = "".join(f"<td>{escape(c)}</td>" for c in _cells(g))
        rows.append(f"<tr{attrs}{title}>{cells}</tr>")
    return (
        f'<div class="wide"><table id="groups"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def to_html(report: Report) -> str:
    """One self-contained page: no scripts, fonts, styles or images from anywhere else. The
    report's JSON rides along in ``<script type="application/json" id="nearline-data">``."""
    data = script_json(report_dict(report))
    title = f"nearline usage, {report.since} to {report.until}"
    body = [f"<h1>{escape(title)}</h1>"]
    if not report.groups:
        body.append(f"<p>{escape(empty_message(report))}</p>")
    else:
        body.append("<ul>" + "".join(f"<li>{escape(n)}</li>" for n in notes(report)[:6]) + "</ul>")
        if report.warnings:
            items = "".join(f"<li>{escape(w)}</li>" for w in report.warnings)
            body.append(f'<ul class="anomalies">{items}</ul>')
        if report.anomalies:
            items = "".join(f"<li>{escape(a.message)}</li>" for a in report.anomalies)
            body.append(f'<h2>Anomalies</h2><ul class="anomalies">{items}</ul>')
        body.append(html_table(report))
        body += [f"<section><h2>{escape(t)}</h2>{svg}</section>" for t, svg in charts(report)]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>\n"
        + "\n".join(body)
        + f'\n<script type="application/json" id="nearline-data">{data}</script>\n</body></html>\n'
    )
