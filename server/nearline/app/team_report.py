"""The team's usage report (``nearline usage --team``), read from the team database."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from nearline.accounting.report.team_model import TeamReport
from nearline.accounting.team.connection import TeamTarget
from nearline.accounting.team.report import read_report, reading
from nearline.app.project import project_at
from nearline.app.usage import project_filter
from nearline.config import ConfigStack, Settings, TeamSettings


def team_project(value: str | None) -> str | None:
    """A project's name in the team database: a name as given; a path (``.``, ``~/src/x``)
    as the name the ledger records for the project there (``usage.project_name``, else its
    root folder's name)."""
    found = project_filter(value)
    if found is None or found == value:
        return found
    root = Path(found)
    return project_at(root, ConfigStack(root=root).load()).name


def team_report(
    settings: Settings,
    first: dt.date,
    last: dt.date,
    *,
    period: str,
    by: str | None,
    project: str | None,
) -> TeamReport:
    """The whole team's usage from ``first`` to ``last`` (``project``: a project's name),
    read from the database ``team.url_env`` names; nothing is written there. ``TeamError``
    when it is unset, unreachable or holds no nearline tables."""
    team = settings.team or TeamSettings()
    target = TeamTarget.from_env(team.url_env)
    with reading(target) as db:
        return read_report(
            db.main, first, last, side=db.side, period=period, by=by, project=project, rule=team
        )
