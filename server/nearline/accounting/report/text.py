"""The usage report as text: numbers for people, and the terminal table (80 columns) with the
notes under it."""

from __future__ import annotations

import io
from collections.abc import Callable

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from nearline.accounting.report.model import Group, Report


def tokens_short(n: int) -> str:
    """``999``, ``34.5k``, ``1.2M``: at most 6 characters below a trillion."""
    if n < 1000:
        return str(n)
    for divisor, suffix in ((1e3, "k"), (1e6, "M"), (1e9, "G")):
        if round(n / divisor, 1) < 1000:
            return f"{n / divisor:.1f}{suffix}"
    return f"{n / 1e12:.1f}T"


def usd(value: float | None) -> str:
    """``$0.0123`` below a dollar, ``$12.34`` below a thousand, ``$1,234`` above; ``-`` for
    None."""
    if value is None:
        return "-"
    size = abs(value)
    text = f"{size:.4f}" if size < 1 else f"{size:.2f}" if size < 1000 else f"{size:,.0f}"
    negative = value < 0 and text.strip("0.") != ""
    return f"{'-' if negative else ''}${text}"


def percent(share: float | None) -> str:
    return "-" if share is None else f"{share:.0%}"


def per_million(value: float | None) -> str:
    return "-" if value is None else f"${value * 1e6:,.2f}"


def _row(g: Group) -> list[Text]:
    key = Text(g.key)
    if g.anomaly:
        key.append(" !", style="bold red")
    numbers = [
        tokens_short(g.input_tokens),
        tokens_short(g.output_tokens),
        tokens_short(g.cache_write_tokens),
        tokens_short(g.cache_read_tokens),
        tokens_short(g.total_tokens),
        usd(g.cost_usd),
        usd(g.saved_usd),
        percent(g.acceptance_rate),
        usd(g.cost_per_accepted),
    ]
    return [key, *(Text(n) for n in numbers)]


def render_table(report: Report) -> Table:
    """Fits 80 columns: token counts abbreviated, one space between columns; a long key (a
    model's name) folds onto more lines while the numbers keep their width."""
    table = Table(box=box.SIMPLE_HEAD, padding=(0, 0), pad_edge=False, show_edge=False)
    table.add_column(report.by or report.period, overflow="fold")
    for header in ("input", "output", "cache\nwrite", "cache\nread", "total"):
        table.add_column(header, justify="right", no_wrap=True)
    for header in ("cost", "saved", "acc", "$/acc"):
        table.add_column(header, justify="right", no_wrap=True)
    for g in report.groups:
        table.add_row(*_row(g))
    table.add_section()
    table.add_row(*_row(report.total), style="bold")
    return table


def notes(report: Report) -> list[str]:
    """The lines under the table: what "saved" compares with, acceptance, cache, anomalies."""
    t, price = report.total, report.flagship_price
    lines = [
        f"{t.requests:,} requests from {report.since} to {report.until}"
        + (f" in {report.project}" if report.project else ""),
        f"saved: vs. every request on {report.flagship_model} "
        f"({per_million(price.input_cost_per_token)}/M in, "
        f"{per_million(price.output_cost_per_token)}/M out)",
        f"acceptance: {t.accepted:,} of {t.shown:,} suggestions ({percent(t.acceptance_rate)}), "
        f"{usd(t.cost_per_accepted)} per accepted",
        f"cache hits: {percent(t.cache_hit_share)} of input tokens; "
        f"{percent(t.completion_cache_share)} of completions (cached or typed through)",
        *provider_cache_lines(t),
        *tool_lines(report),
    ]
    return (
        lines + [f"! {w}" for w in report.warnings] + [f"! {a.message}" for a in report.anomalies]
    )


def provider_cache_lines(g: Group) -> list[str]:
    """Cache hits per tier (local: llama.cpp's KV cache) and what provider caching saved."""
    tiers = ", ".join(
        f"{tier} {percent(share)}" for tier, share in g.cache_by_tier.items() if share is not None
    )
    hour = (
        [f"cache writes kept an hour: {g.cache_write_1h_tokens:,} of {g.cache_write_tokens:,}"]
        if g.cache_write_1h_tokens
        else []
    )
    return [
        f"cache hits by tier: {tiers or '-'}",
        f"provider caching saved {usd(g.cache_saved_usd)} (cache reads at the input price, "
        "less what they cost and the cache-write premium)",
        *hour,
    ]


def tool_lines(report: Report) -> list[str]:
    """Tools whose reports are daily aggregates (Copilot), apart from nearline's figures."""
    return [
        f"{tool.source} (daily aggregates, {tool.days} days): {tool.suggestions:,} suggestions, "
        f"{tool.acceptances:,} accepted ({percent(tool.acceptance_rate)}), "
        f"{tool.lines_accepted:,} of {tool.lines_suggested:,} lines accepted, "
        f"{tool.chats:,} chats"
        for tool in report.tools
    ]


def empty_message(report: Report) -> str:
    where = f" for {report.project}" if report.project else ""
    return f"no requests recorded between {report.since} and {report.until}{where}"


def render(report: Report, console: Console) -> None:
    if not report.groups:
        for line in (empty_message(report), *tool_lines(report)):
            console.print(line, markup=False, highlight=False)
        return
    console.print(render_table(report))
    for line in notes(report):
        style = "red" if line.startswith("!") else None
        console.print(line, markup=False, highlight=False, style=style)


def as_text(report: Report, width: int = 80) -> str:
    """The terminal report as plain text (the editors' "show usage")."""
    return recorded(lambda console: render(report, console), width)


def recorded(draw: Callable[[Console], None], width: int = 80) -> str:
    """What ``draw`` prints on a console ``width`` columns wide, as plain text."""
    console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    draw(console)
    return console.export_text()
