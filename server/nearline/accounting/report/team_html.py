"""The team's usage report as one self-contained HTML page (``usage --team --html``): inline
CSS and SVG, the report's JSON embedded."""

from __future__ import annotations

from collections.abc import Sequence

from nearline.accounting.report.html import CSS, escape, script_json, svg_columns
from nearline.accounting.report.team_model import TeamGroup, TeamReport
from nearline.accounting.report.team_render import empty_message, notes, report_dict
from nearline.accounting.report.text import percent, usd

ALL = "(all models)"
"""How a developer's row over all their models is shown."""
_W, _ROW, _LEFT = 720, 22, 200
"""Chart width, a bar's row height, and the room left of the bars for labels."""
GROUP_HEADERS = ("requests", "input", "cache read", "cache write", "output", "total", "cost")


def svg_spend_bars(items: Sequence[tuple[str, float, bool]]) -> str:
    """Horizontal bars of spend, one per (label, USD, flagged); ``html.svg_hbars`` counts
    tokens."""
    top = max((v for _, v, _ in items), default=0.0) or 1.0
    parts = [f'<svg viewBox="0 0 {_W} {_ROW * max(len(items), 1) + 4}" role="img">']
    for i, (label, value, flagged) in enumerate(items):
        y = i * _ROW + 2
        short = label if len(label) <= 32 else label[:31] + "\u2026"
        width = max(value, 0.0) / top * (_W - _LEFT - 70)
        color = "#c2504f" if flagged else "#3a78c2"
        parts.append(
            f'<text x="0" y="{y + 14}">{escape(short)}<title>{escape(label)}</title></text>'
            f'<rect x="{_LEFT}" y="{y}" width="{width:.1f}" height="{_ROW - 6}" fill="{color}">'
            f"<title>{escape(label)}: {escape(usd(value))}</title></rect>"
            f'<text x="{_LEFT + width + 4:.1f}" y="{y + 14}">{escape(usd(value))}</text>'
        )
    return "".join(parts) + "</svg>"


def spend_chart(report: TeamReport) -> str:
    """Periods as columns in time order; anything else as bars, the biggest spender first."""
    if report.by is None:
        top = max((g.cost_usd for g in report.groups), default=0.0)
        columns = [
            (g.key, [(usd(g.cost_usd), g.cost_usd, "#3a78c2")], bool(g.anomaly))
            for g in report.groups
        ]
        return svg_columns(columns, top, f"max {usd(top)}")
    return svg_spend_bars([(g.key, g.cost_usd, bool(g.anomaly)) for g in report.groups])


def table(
    name: str, headers: Sequence[str], rows: Sequence[Sequence[str]], classes: Sequence[str] = ()
) -> str:
    """A table ``id=name``; ``classes``: each row's class ("" for none)."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = []
    for row, cls in zip(rows, [*classes, *[""] * len(rows)], strict=False):
        attrs = f' class="{cls}"' if cls else ""
        body.append(f"<tr{attrs}>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>")
    return (
        f'<div class="wide"><table id="{name}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def section(title: str, content: str) -> str:
    return f"<section><h2>{escape(title)}</h2>{content}</section>"


def _group_cells(g: TeamGroup) -> list[str]:
    return [
        g.key,
        f"{g.requests:,}",
        f"{g.input_tokens:,}",
        f"{g.cache_read_tokens:,}",
        f"{g.cache_write_tokens:,}",
        f"{g.output_tokens:,}",
        f"{g.total_tokens:,}",
        usd(g.cost_usd),
    ]


def groups_section(report: TeamReport) -> str:
    rows = [_group_cells(g) for g in (*report.groups, report.total)]
    classes = ["anomaly" if g.anomaly else "" for g in report.groups] + ["total"]
    return section(
        f"Spend by {report.grouped_by}",
        spend_chart(report) + table("groups", (report.grouped_by, *GROUP_HEADERS), rows, classes),
    )


def acceptance_section(report: TeamReport) -> str:
    headers = ("developer", "model", "shown", "accepted", "rate", "chars accepted", "spend")
    rows = [
        [
            a.developer,
            a.model or ALL,
            f"{a.shown:,}",
            f"{a.accepted:,}",
            percent(a.acceptance_rate),
            f"{a.chars_accepted:,}",
            usd(a.cost_usd),
            usd(a.cost_per_accepted),
        ]
        for a in report.acceptance
    ]
    classes = ["total" if a.model is None else "" for a in report.acceptance]
    return section("Acceptance", table("acceptance", (*headers, "$/accepted"), rows, classes))


def cache_section(report: TeamReport) -> str:
    headers = ("provider", "input", "cache read", "cache write", "cache hits")
    rows = [
        [
            c.provider,
            f"{c.input_tokens:,}",
            f"{c.cache_read_tokens:,}",
            f"{c.cache_write_tokens:,}",
            percent(c.share),
        ]
        for c in report.cache
    ]
    return section("Provider cache hits", table("cache", headers, rows))


def anomalies_section(report: TeamReport) -> str:
    headers = ("day", "kind", "name", "spend", "baseline average", "days averaged")
    rows = [
        [a.day, a.kind, a.name, usd(a.spend_usd), usd(a.average_usd), str(a.baseline_days)]
        for a in report.anomalies
    ]
    return section("Anomalies", table("anomalies", headers, rows, ["anomaly"] * len(rows)))


def to_html(report: TeamReport) -> str:
    """One self-contained page: no scripts, fonts, styles or images from anywhere else. The
    report's JSON rides along in ``<script type="application/json" id="nearline-data">``."""
    data = script_json(report_dict(report))
    scope = f" in {report.project}" if report.project else ""
    title = f"nearline team usage{scope}, {report.since} to {report.until}"
    body = [f"<h1>{escape(title)}</h1>"]
    if not report.groups:
        body.append(f"<p>{escape(empty_message(report))}</p>")
    else:
        items = "".join(f"<li>{escape(n)}</li>" for n in notes(report) if not n.startswith("!"))
        body += [f"<ul>{items}</ul>", groups_section(report)]
        body += [acceptance_section(report)] if report.acceptance else []
        body += [cache_section(report)] if report.cache else []
        body += [anomalies_section(report)] if report.anomalies else []
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>\n"
        + "\n".join(body)
        + f'\n<script type="application/json" id="nearline-data">{data}</script>\n</body></html>\n'
    )
