"""The dashboard page: HTML with inline CSS and SVG charts drawn here (no script, font or
style from anywhere else: it works offline), its filters a GET form so a link shares the view.
Every bar links to the requests behind it."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

from nearline.accounting.report import dashboard as board
from nearline.accounting.report.html import CSS, escape, script_json, tier_colors
from nearline.accounting.report.text import percent, tokens_short, usd

PAGE_CSS = (
    CSS
    + """
form.filters{display:flex;flex-wrap:wrap;gap:.6em;align-items:end;background:#f4f4f4;
padding:.6em;border-radius:4px}form.filters label{display:flex;flex-direction:column;
font-size:80%}.cards{display:flex;flex-wrap:wrap;gap:1em}.card{border:1px solid #ddd;
border-radius:4px;padding:.5em 1em}.card b{display:block;font-size:140%}.note{color:#666;
font-size:85%}td .note{display:block;text-align:left;white-space:normal}
tr.over{background:#fde2e1}tr.near{background:#fff3d6}svg a:hover rect{opacity:.7}
"""
)
_W, _H, _LEFT, _RIGHT = 720, 180, 60, 20
ON_CHANGE = "this.form.submit()"
LABELS = {
    "developer": "developer",
    "project": "project",
    "client": "tool",
    "model": "model",
    "tier": "tier",
}


def link(filters: Mapping[str, str], anchor: str = "", **changes: str | None) -> str:
    query = {k: v for k, v in {**filters, **changes}.items() if v}
    return "?" + urlencode(query) + (f"#{anchor}" if anchor else "")


def calendar(since: str, until: str) -> list[str]:
    first, last = dt.date.fromisoformat(since), dt.date.fromisoformat(until)
    return [(first + dt.timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


def stacked_chart(
    d: board.Dashboard, value: str, colors: Mapping[str, str], flagged: set[str]
) -> str:
    """One column per day of the window, its tiers or tools stacked; each a link to that day's
    requests. ``value``: "cost_usd" or "tokens"."""
    per_day = dict(board.stacked_days(d.slices))
    days = calendar(d.since, d.until)
    totals = {day: sum(getattr(s, value) for s in per_day.get(day, [])) for day in days}
    top = max(totals.values(), default=0) or 1
    step = (_W - _LEFT - _RIGHT) / max(len(days), 1)
    every = max(1, math.ceil(len(days) / 12))
    shown = usd(top) if value == "cost_usd" else tokens_short(int(top))
    parts = [
        f'<svg class="chart" data-value="{value}" viewBox="0 0 {_W} {_H + 24}" role="img">',
        f'<text x="0" y="12">max {escape(shown)}</text>',
        f'<line x1="{_LEFT}" y1="{_H}" x2="{_W - _RIGHT}" y2="{_H}" stroke="#999"/>',
    ]
    for i, day in enumerate(days):
        x, y = _LEFT + i * step, float(_H)
        href = escape(link(board.day_link(day, d.filters), "requests"))
        parts.append(f'<a href="{href}" data-day="{day}" data-total="{totals[day]}">')
        parts.append(
            f'<rect x="{x:.1f}" y="14" width="{step:.1f}" height="{_H - 14}" fill="transparent"/>'
        )
        for s in sorted(per_day.get(day, []), key=lambda s: s.part):
            height = max(getattr(s, value), 0) / top * (_H - 20)
            y -= height
            amount = usd(s.cost_usd) if value == "cost_usd" else f"{s.tokens:,} tokens"
            name = escape(f"{day} {s.part or '(none)'}: {amount}")
            parts.append(
                f'<rect x="{x + 1:.1f}" y="{y:.1f}" width="{max(step - 2, 1):.1f}" '
                f'height="{height:.1f}" fill="{colors.get(s.part, "#888")}">'
                f"<title>{name}</title></rect>"
            )
        if day in flagged:
            parts.append(
                f'<rect class="flag" x="{x:.1f}" y="14" width="{step:.1f}" height="{_H - 14}" '
                'fill="none" stroke="#b3261e" stroke-width="2"><title>anomaly</title></rect>'
            )
        parts.append("</a>")
        if i % every == 0:
            parts.append(
                f'<text x="{x + step / 2:.1f}" y="{_H + 16}" text-anchor="middle">'
                f"{escape(day[5:])}</text>"
            )
    return "".join(parts) + "</svg>"


def select(name: str, current: str | None, options: Sequence[str]) -> str:
    items = ['<option value="">all</option>']
    for value in sorted({*options, *([current] if current else [])}):
        chosen = " selected" if value == current else ""
        items.append(f'<option value="{escape(value)}"{chosen}>{escape(value)}</option>')
    return (
        f'<label>{escape(LABELS.get(name, name))}<select name="{name}" onchange="{ON_CHANGE}">'
        + "".join(items)
        + "</select></label>"
    )


def filter_form(d: board.Dashboard) -> str:
    f = d.filters
    period = "".join(
        f"<option{' selected' if p == f.get('period', 'day') else ''}>{p}</option>"
        for p in ("day", "week", "month")
    )
    stack = "".join(
        f'<option value="{s}"{" selected" if s == d.stack else ""}>'
        f"{'tool' if s == 'client' else s}</option>"
        for s in board.STACKS
    )
    since, until = d.since, d.until
    fields = [
        f'<label>period<select name="period" onchange="{ON_CHANGE}">{period}</select></label>',
        f'<label>from<input type="date" name="since" value="{escape(since)}"></label>',
        f'<label>to<input type="date" name="until" value="{escape(until)}"></label>',
        *(
            select(name, f.get(name), d.choices.get(name, ()))
            for name in LABELS
            if d.choices.get(name) or f.get(name)
        ),
        f'<label>stack by<select name="stack" onchange="{ON_CHANGE}">{stack}</select></label>',
    ]
    return (
        '<form class="filters" method="get">'
        + "".join(fields)
        + '<button type="submit">show</button><a href="?">reset</a></form>'
    )


def cards(d: board.Dashboard) -> str:
    total = d.total
    shown = sum(s.shown for s in d.by_model)
    accepted = sum(s.accepted for s in d.by_model)
    items = [
        ("spend", usd(d.cost_usd), "total-cost"),
        ("tokens", f"{int(total.get('total_tokens', 0)):,}", "total-tokens"),
        ("requests", f"{int(total.get('requests', 0)):,}", "total-requests"),
        ("all on the flagship, uncached", usd(d.naive_usd), "naive"),
        ("provider cache hits", percent(d.cache_hit_share), "cache-hits"),
        ("suggestions accepted", f"{accepted:,} of {shown:,}", "accepted"),
        ("cost per accepted", usd(d.cost_usd / accepted if accepted else None), "per-accepted"),
    ]
    return (
        '<div class="cards">'
        + "".join(
            f'<div class="card">{escape(label)}<b id="{key}">{escape(value)}</b></div>'
            for label, value, key in items
        )
        + "</div>"
    )


def table(
    name: str, headers: Sequence[str], rows: Sequence[Sequence[Any]], classes: Sequence[str] = ()
) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        cls = classes[i] if i < len(classes) and classes[i] else ""
        attrs = f' class="{cls}"' if cls else ""
        body.append(f"<tr{attrs}>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>")
    return (
        f'<div class="wide"><table id="{name}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def budgets(d: board.Dashboard) -> str:
    if not d.budgets:
        return '<p class="note">No budget is set (see <code>[budget]</code> in the README).</p>'
    rows, classes = [], []
    for b in d.budgets:
        rows.append(
            [
                escape(f"{b.scope} {b.name}".strip()),
                escape(b.period),
                escape(usd(b.cap_usd)),
                escape(usd(b.spent_usd)),
                escape(percent(b.share if math.isfinite(b.share) else None)),
                escape(b.run_out or ("-" if b.period == "daily" else "not this month")),
            ]
        )
        classes.append("over" if b.share >= 1 else "near" if b.share >= 0.8 else "")
    headers = ("budget", "period", "cap", "spent so far", "share", "runs out")
    return table("budgets", headers, rows, classes)


def savings(d: board.Dashboard) -> str:
    rows = [
        [escape(v.name), escape(usd(v.saved_usd)), f'<span class="note">{escape(v.note)}</span>']
        for v in d.levers
    ]
    rows.append(["<b>paid</b>", escape(usd(d.cost_usd)), ""])
    return table("savings", ("lever", "saved", ""), rows)


def suggestions(name: str, title: str, items: Sequence[board.Suggestions]) -> str:
    if not items:
        return ""
    rows = [
        [
            escape(s.key or "(none)"),
            f"{s.shown:,}",
            f"{s.accepted:,}",
            escape(percent(s.acceptance_rate)),
            f"{s.chars_accepted:,}",
            escape(usd(s.cost_per_accepted)),
        ]
        for s in items
    ]
    headers = (title, "shown", "accepted", "rate", "chars by Tab", "$/accepted")
    return table(name, headers, rows)


def tools(d: board.Dashboard) -> str:
    """Tools that report daily aggregates, not requests (Copilot), apart from nearline's."""
    found = d.report.get("tools") or []
    rows = [
        [
            escape(str(t["source"])),
            f"{t['days']:,}",
            f"{t['suggestions']:,}",
            f"{t['acceptances']:,}",
            escape(percent(t["acceptance_rate"])),
            f"{t['lines_accepted']:,} of {t['lines_suggested']:,}",
            f"{t['chats']:,}",
        ]
        for t in found
    ]
    headers = ("tool", "days", "suggestions", "accepted", "rate", "lines accepted", "chats")
    return (
        "<section><h2>Other tools' daily aggregates</h2>"
        + table("tools", headers, rows)
        + '<p class="note">From their own reports (<code>nearline usage import copilot</code>); '
        "not requests, and not in the figures above.</p></section>"
        if rows
        else ""
    )


def anomalies(d: board.Dashboard) -> str:
    if not d.flags:
        return '<p class="note">No day passed the anomaly rule.</p>'
    items = [
        f'<li><a href="{escape(link(board.day_link(f.day, f.narrow), "requests"))}">'
        f"{escape(f.message)}</a></li>"
        for f in d.flags
    ]
    return '<ul class="anomalies">' + "".join(items) + "</ul>"


def requests(d: board.Dashboard, csv_href: str) -> str:
    rows = [[escape(board.cell_text(c)) for c in row] for row in d.requests]
    more = (
        f'<p class="note">The newest {len(d.requests)}; narrow the filters for older ones.</p>'
        if d.more_requests
        else ""
    )
    return (
        f'<p><a id="csv" href="{escape(csv_href)}" download>CSV of this table</a></p>'
        + table("requests-table", board.REQUEST_COLUMNS, rows)
        + more
    )


def render(d: board.Dashboard) -> str:
    """The whole page; the dashboard's JSON rides along in ``#nearline-data``."""
    since, until = d.since, d.until
    where = "the team" if d.source == "team" else "this machine"
    title = f"nearline usage: {where}, {since} to {until}"
    colors = tier_colors(s.part for s in d.slices)
    legend = "".join(
        f'<span><i class="swatch" style="background:{c}"></i>{escape(t or "(none)")}</span>'
        for t, c in colors.items()
    )
    flagged = {f.day for f in d.flags}
    stack = "tool" if d.stack == "client" else d.stack
    body = [
        f"<h1>{escape(title)}</h1>",
        filter_form(d),
        cards(d),
        f'<section><h2>Spend per day by {stack}</h2><p class="legend">{legend}</p>'
        + stacked_chart(d, "cost_usd", colors, flagged)
        + "</section>",
        f"<section><h2>Tokens per day by {stack}</h2>"
        + stacked_chart(d, "tokens", colors, flagged)
        + "</section>",
        f"<section><h2>Budgets this month</h2>{budgets(d)}</section>",
        f"<section><h2>What the levers saved</h2>{savings(d)}</section>",
        "<section><h2>Suggestions</h2>"
        + (suggestions("by-model", "model", d.by_model) or '<p class="note">None shown.</p>')
        + suggestions("by-developer", "developer", d.by_developer)
        + "</section>",
        tools(d),
        f"<section><h2>Anomalies</h2>{anomalies(d)}</section>",
        '<section><h2 id="requests">Requests</h2>'
        + requests(d, "requests.csv" + link(d.filters))
        + "</section>",
    ]
    data = script_json(board.dashboard_dict(d))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width"><title>{escape(title)}</title>'
        f"<style>{PAGE_CSS}</style></head><body>\n"
        + "\n".join(body)
        + f'\n<script type="application/json" id="nearline-data">{data}</script>\n</body></html>\n'
    )
