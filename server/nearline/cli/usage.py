"""``nearline usage``: tokens, cost and savings from the ledger as a table, JSON, CSV or HTML."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nearline.cli.common import settings_for
from nearline.errors import NearlineError


def run(args: argparse.Namespace) -> int:
    import datetime as dt

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
    period = getattr(args, "period", None) or "day"
    first, last = window(getattr(args, "since", None), getattr(args, "until", None), today, period)
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
        target = Path(args.html).expanduser()
        try:
            from nearline.accounting.report.html import to_html

            target.write_text(to_html(report), encoding="utf-8")
        except OSError as exc:
            raise NearlineError(f"cannot write {target}: {exc.strerror or exc}") from None
        print(f"wrote the usage report to {target}")
    else:
        render(report, Console())
    return 0
