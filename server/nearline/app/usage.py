"""The usage report of the ledger, for ``nearline usage`` and the editors' "show usage"."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from nearline.accounting.alerts import WINDOW_DAYS
from nearline.accounting.ledger import ledger_path
from nearline.accounting.ledger.queries import read_first_day, read_rows, read_tool_days
from nearline.accounting.report.model import Report, build_report
from nearline.accounting.report.text import as_text
from nearline.config import Settings


def project_filter(value: str | None) -> str | None:
    """A project name as given; a path (``.``, ``~/src/x``, ``a/b``) as the project's root:
    the folder of the nearest ``.nearline.toml`` at or above it, as the server records it,
    else the path itself."""
    from nearline.config import find_project_file

    if not value:
        return None
    if value in (".", "..") or "/" in value or value.startswith("~"):
        path = Path(value).expanduser().resolve()
        found = find_project_file(path) if path.is_dir() else None
        return str(found.parent if found else path)
    return value


def ledger_report(
    settings: Settings,
    first: dt.date,
    last: dt.date,
    *,
    period: str,
    by: str | None,
    project: str | None,
) -> Report:
    """The report of the ledger from ``first`` to ``last``; the week before ``first`` is read
    too, as what anomalies are measured against."""
    history = first - dt.timedelta(days=WINDOW_DAYS)
    path = ledger_path()
    rows = read_rows(path, history.isoformat(), last.isoformat(), project)
    return build_report(
        rows,
        settings,
        period=period,
        by=by,
        since=first.isoformat(),
        until=last.isoformat(),
        project=project,
        first_day=read_first_day(path, project) if rows else None,
        tool_days=read_tool_days(path, first.isoformat(), last.isoformat()),
    )


def text_report(
    settings: Settings,
    *,
    days: int = 7,
    period: str = "day",
    by: str | None = None,
    project: str | None = None,
    today: dt.date | None = None,
) -> str:
    """The terminal report as plain text, 80 columns wide (the editors' "show usage")."""
    today = today or dt.date.today()
    first = today - dt.timedelta(days=max(1, days) - 1)
    report = ledger_report(settings, first, today, period=period, by=by, project=project)
    return as_text(report)
