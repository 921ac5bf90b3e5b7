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
    if getattr(args, "json", False):
        print(to_json(report))
    elif getattr(args, "csv", False):
        sys.stdout.write(to_csv(report))
    elif getattr(args, "html", None):
        from nearline.accounting.report.html import to_html

        write_html(args.html, lambda: to_html(report))
    else:
        render(report, Console())
    return 0


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
    if getattr(args, "json", False):
        print(team_render.to_json(report))
    elif getattr(args, "csv", False):
        sys.stdout.write(team_render.to_csv(report))
    elif getattr(args, "html", None):
        write_html(args.html, lambda: team_html.to_html(report), "the team's usage report")
    else:
        team_render.render(report, Console())
    return 0


def write_html(name: str, page: Callable[[], str], what: str = "the usage report") -> None:
    target = Path(name).expanduser()
    try:
        target.write_text(page(), encoding="utf-8")
    except OSError as exc:
        raise NearlineError(f"cannot write {target}: {exc.strerror or exc}") from None
    print(f"wrote {what} to {target}")
