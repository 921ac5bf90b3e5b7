"""``nearline eval --html FILE``: the report as one self-contained page (inline CSS and SVG
charts, no scripts run), its JSON riding along in
``<script type="application/json" id="nearline-eval">``: the same numbers as ``--json``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from nearline.accounting.report.html import CSS, PALETTE, escape, script_json
from nearline.evaluation.report import MODEL_COLUMNS, TIER_COLUMNS, Column, cells

_W, _LEFT, _ROW = 720, 230, 18


def svg_bars(
    rows: Sequence[tuple[str, Sequence[tuple[str, float | None]]]],
    top: float,
    fmt: Callable[[float], str],
) -> str:
    """Grouped horizontal bars: per row its label and its (measure, value) bars, each value
    written with ``fmt``."""
    top = top or 1.0
    measures = [name for name, _ in rows[0][1]] if rows else []
    height = len(rows) * (len(measures) * _ROW + 10) + 24
    parts = [f'<svg viewBox="0 0 {_W} {height}" role="img">']
    x = _LEFT
    for k, name in enumerate(measures):
        color = PALETTE[k % len(PALETTE)]
        parts.append(
            f'<rect x="{x}" y="2" width="10" height="10" fill="{color}"/>'
            f'<text x="{x + 14}" y="11">{escape(name)}</text>'
        )
        x += 16 + 7 * len(name) + 12
    y = 24
    for label, bars in rows:
        parts.append(
            f'<text x="0" y="{y + 13}">{escape(label[:36])}<title>{escape(label)}</title></text>'
        )
        for k, (name, value) in enumerate(bars):
            width = max(value or 0.0, 0.0) / top * (_W - _LEFT - 80)
            shown = "-" if value is None else fmt(value)
            parts.append(
                f'<rect x="{_LEFT}" y="{y}" width="{width:.1f}" height="{_ROW - 4}" '
                f'fill="{PALETTE[k % len(PALETTE)]}"><title>{escape(label)} {escape(name)}: '
                f"{escape(shown)}</title></rect>"
                f'<text x="{_LEFT + width + 4:.1f}" y="{y + 11}">{escape(shown)}</text>'
            )
            y += _ROW
        y += 10
    return "".join(parts) + "</svg>"


def _percent(v: float) -> str:
    return f"{v:.0f}%"


def _pct(v: float | None) -> float | None:
    return None if v is None else v * 100


def _table(rows: Sequence[dict[str, Any]], cols: Sequence[Column]) -> str:
    head = "".join(f"<th>{escape(title)}</th>" for title, _, _ in cols)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(c)}</td>" for c in cells(r, cols)) + "</tr>" for r in rows
    )
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    return f'<div class="wide">{table}</div>'


def to_html(data: dict[str, Any]) -> str:
    payload = script_json(data)
    title = f"nearline eval: {data['project']}, {data['commits']} commits"
    body = [f"<h1>{escape(title)}</h1>"]
    body.append(
        f"<p>HEAD {escape(data['head'][:12])} ({escape(data['branch'] or 'detached')}): "
        f"{data['completion_cases']} completion cases, {data['escalation_cases']} escalation "
        "cases.</p>"
    )
    if data["notes"]:
        body.append("<ul>" + "".join(f"<li>{escape(n)}</li>" for n in data["notes"]) + "</ul>")
    models, tiers = data["models"], data["tiers"]
    if models:
        body.append("<section><h2>Autocomplete, per model</h2>")
        body.append(_table(models, MODEL_COLUMNS))
        bars = [
            (
                m["label"],
                [
                    ("exact", _pct(m["exact"])),
                    ("Tab chars", _pct(m["tab_chars"])),
                    ("Tab'd", _pct(m["accepted"])),
                ],
            )
            for m in models
        ]
        body.append(svg_bars(bars, 100.0, _percent))
        top = max((m["latency_p95_ms"] or 0.0 for m in models), default=0.0)
        body.append(
            svg_bars(
                [
                    (m["label"], [("p50 ms", m["latency_p50_ms"]), ("p95 ms", m["latency_p95_ms"])])
                    for m in models
                ],
                top,
                lambda v: f"{v:.0f} ms",
            )
        )
        body.append("</section>")
    if tiers:
        body.append("<section><h2>Escalation, per tier</h2>")
        body.append(_table(tiers, TIER_COLUMNS))
        bars = [
            (
                t["label"],
                [("applies", _pct(t["applies"])), ("success", _pct(t["success"]))],
            )
            for t in tiers
        ]
        body.append(svg_bars(bars, 100.0, _percent))
        top = max((t["cost_usd"] or 0.0 for t in tiers), default=0.0)
        costs = [(t["label"], [("cost", t["cost_usd"])]) for t in tiers]
        body.append(svg_bars(costs, top, lambda v: f"${v:.4f}"))
        body.append("</section>")
    body.append(
        "<section><h2>Suggested settings</h2><p>Paste into <code>.nearline.toml</code>:</p>"
        f"<pre>{escape(data['suggestion']['toml'])}</pre></section>"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>\n"
        + "\n".join(body)
        + f'\n<script type="application/json" id="nearline-eval">{payload}</script>\n'
        "</body></html>\n"
    )
