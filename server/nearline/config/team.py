"""The ``[team]`` section (a team ledger on PostgreSQL) and the team's budget caps."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from nearline.config.checks import Caps, check

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class TeamSettings:
    """Present (a ``[team]`` table in the user's config or ``.nearline.toml``): this machine's
    ledger is copied to the team database."""

    sync: bool = True
    """False: this project's rows stay here (the section can be turned off per project)."""
    url_env: str = "NEARLINE_TEAM_URL"
    """The environment variable holding the database's connection string (never the string)."""
    developer: str = ""
    """Who this is in the team's reports; empty: git's ``user.email``."""
    sync_interval_s: float = 60.0
    """How often rows are sent (and the team's spend read back for team budgets): the most a
    team figure can lag behind another machine."""
    when_unreachable: str = "open"
    """Team budgets when the team database cannot be read: "open" (allow, with a notice) or
    "closed" (refuse escalations)."""
    share_local_only: bool = False
    """Send the rows of a local-only project (``cloud = false``, or ``privacy.local_only``
    covering every file); by default they stay on this machine."""
    anomaly_factor: float = 3.0
    """A developer, project or tool whose spend in a day passes this many times its own
    trailing average is an anomaly ..."""
    anomaly_min_usd: float = 1.0
    """... when that day's spend is at least this much (a quiet week's first request is not)."""
    anomaly_baseline_days: int = 14

    def __post_init__(self) -> None:
        check(
            bool(ENV_NAME.match(self.url_env)),
            "team.url_env",
            # A connection string put here by mistake may hold a password: never echo it.
            self.url_env
            if len(self.url_env) < 64
            and self.url_env.isprintable()
            and not set(self.url_env) & set(":/@=")
            else "(a value that is not shown)",
            "the name of an environment variable (the connection string itself never goes in "
            "a config file)",
        )
        check(
            5 <= self.sync_interval_s <= 86_400,
            "team.sync_interval_s",
            self.sync_interval_s,
            "5..86400",
        )
        check(
            self.when_unreachable in ("open", "closed"),
            "team.when_unreachable",
            self.when_unreachable,
            "open | closed",
        )
        check(self.anomaly_factor > 1, "team.anomaly_factor", self.anomaly_factor, "a number > 1")
        check(
            self.anomaly_min_usd >= 0,
            "team.anomaly_min_usd",
            self.anomaly_min_usd,
            "a number >= 0",
        )
        check(
            3 <= self.anomaly_baseline_days <= 90,
            "team.anomaly_baseline_days",
            self.anomaly_baseline_days,
            "3..90",
        )


@dataclass(frozen=True)
class TeamCaps:
    """``[budget.team.*]``: caps counted over every machine of the team."""

    developer: Caps = field(default_factory=Caps)
    """Each developer's spend, over all their machines and projects."""
    project: Caps = field(default_factory=Caps)
    """Each project's spend (by its name), over every developer."""
    total: Caps = field(default_factory=Caps)
    """The whole team's spend."""

    def any(self) -> bool:
        return any(caps != Caps() for caps in (self.developer, self.project, self.total))
