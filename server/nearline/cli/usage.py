"""``nearline usage``: tokens, cost and savings from the ledger (``--team``: from the team
database) as a table, JSON, CSV or HTML."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Callable
from pathlib import Path

from nearline.cli.common import settings_for
from nearline.config import Settings
from nearline.errors import NearlineError


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from nearline.accounting.report.export import to_csv, to_json
    from nearline.accounting.report.model import window
    from nearline.accounting.report.text import render
    from nearline.app.usage import ledger_report, project_filter
    from nearline.errors import ConfigError

    if getattr(args, "action", "report") == "import":
        from nearline.cli import usage_import

        return usage_import.run(args)
    if getattr(args, "rest", None):
        raise ConfigError(f"nearline usage: unexpected {args.rest[0]!r} (did you mean import?)")
    settings = settings_for(args)
    """``nearline usage``: the table, or JSON, CSV or an HTML file."""
    today = dt.date.today()
    if getattr(args, "by", None) and getattr(args, "period", None) in ("week", "month"):
        raise ConfigError(
            f"--by {args.by} groups the whole window; leave out --{args.period}ly, or use "
            "--since/--until to choose the window"
        )
    if getattr(args, "html", None) == "":
        raise ConfigError("--html needs a file name")
    team = getattr(args, "team", False)
    if getattr(args, "by", None) == "developer" and not team:
        raise ConfigError("--by developer needs --team (this machine's ledger is one developer's)")
    period = getattr(args, "period", None) or "day"
    first, last = window(getattr(args, "since", None), getattr(args, "until", None), today, period)
    if team:
        return team_usage(args, settings, first, last, period)
    report = ledger_report(
        settings,
        first,
        last,
        period=period,
        by=getattr(args, "by", None),
        project=project_filter(getattr(args, "project", None)),
    )

    def html() -> str:
        from nearline.accounting.report.html import to_html

        return to_html(report)

    return emit(
        args,
        json=lambda: to_json(report),
        csv=lambda: to_csv(report),
        html=html,
        table=lambda: render(report, Console()),
        what="the usage report",
    )


def team_usage(
    args: argparse.Namespace, settings: Settings, first: dt.date, last: dt.date, period: str
) -> int:
    """``usage --team``: the whole team's report from the team database."""
    from rich.console import Console

    from nearline.accounting.report import team_html, team_render
    from nearline.app.team_report import team_project, team_report

    report = team_report(
        settings,
        first,
        last,
        period=period,
        by=getattr(args, "by", None),
        project=team_project(getattr(args, "project", None)),
    )
    return emit(
        args,
        json=lambda: team_render.to_json(report),
        csv=lambda: team_render.to_csv(report),
        html=lambda: team_html.to_html(report),
        table=lambda: team_render.render(report, Console()),
        what="the team's usage report",
    )


def emit(
    args: argparse.Namespace,
    *,
    json: Callable[[], str],
    csv: Callable[[], str],
    html: Callable[[], str],
    table: Callable[[], None],
    what: str,
) -> int:
    """A report as ``--json``, ``--csv``, an ``--html`` file, or the table."""
    if getattr(args, "json", False):
        print(json())
    elif getattr(args, "csv", False):
        sys.stdout.write(csv())
    elif getattr(args, "html", None):
        target = Path(args.html).expanduser()
        try:
            target.write_text(html(), encoding="utf-8")
        except OSError as exc:
            raise NearlineError(f"cannot write {target}: {exc.strerror or exc}") from None
        print(f"wrote {what} to {target}")
    else:
        table()
    return 0
