"""The team ledger's use cases: who this machine is, which projects' rows go, a server's
background sync (with team spend for budgets, and the developer's anomaly notice), and
``nearline team status`` / ``team sync``."""

from __future__ import annotations

import dataclasses
import getpass
import logging
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nearline.accounting.budget import Spending, TeamSpending
from nearline.accounting.entries import day_of
from nearline.accounting.ledger import Ledger, ledger_path, outbox
from nearline.accounting.ledger.schema import connect, migrate
from nearline.accounting.team import figures
from nearline.accounting.team.connection import TeamTarget
from nearline.accounting.team.schema import check_tables, check_version, found_version
from nearline.accounting.team.sync import Identity, Share, TeamSyncer
from nearline.config import ConfigStack, Settings, TeamSettings
from nearline.errors import ConfigError, LedgerError, NearlineError, TeamError
from nearline.paths import data_dir

log = logging.getLogger(__name__)

DEVICE_FILE = "device-id"
STALE_INTERVALS = 3
"""The team's figure is unknown once it is this many sync intervals old (the database away)."""
EVERYTHING = ("**", "**/*", "*")


def device_id() -> str:
    """This machine's id in the team's reports: made once, kept in the data dir."""
    path = data_dir() / DEVICE_FILE
    try:
        found = path.read_text().strip()
        if found:
            return found
    except OSError:
        pass
    made = uuid.uuid4().hex[:16]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{DEVICE_FILE}.{os.getpid()}")
        tmp.write_text(made + "\n")
        os.link(tmp, path)  # the first writer wins; a racing one reads its id
        tmp.unlink()
    except FileExistsError:
        tmp.unlink(missing_ok=True)
        return path.read_text().strip() or made
    except OSError as exc:
        log.warning("cannot keep the device id in %s: %s", path, exc)
    return made


def developer_of(team: TeamSettings, root: Path | None) -> str:
    """``team.developer``, else git's ``user.email``, else user@host."""
    if team.developer:
        return team.developer
    try:
        found = subprocess.run(
            ["git", "config", "--get", "user.email"],
            cwd=root if root is not None and root.is_dir() else None,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        found = ""
    return found or f"{getpass.getuser()}@{socket.gethostname()}"


def identity(team: TeamSettings, root: Path | None) -> Identity:
    return Identity(developer_of(team, root), device_id())


def local_only(settings: Settings) -> bool:
    """A project that keeps everything here: ``cloud = false``, or ``privacy.local_only``
    covering every file."""
    return not settings.cloud or any(g in EVERYTHING for g in settings.privacy.local_only)


class ShareRule:
    """Whether a project's rows go to the team database ``url_env`` names, from that
    project's own settings (its ``.nearline.toml`` over the user's config)."""

    def __init__(self, url_env: str) -> None:
        self.url_env = url_env
        self._stacks: dict[str, tuple[ConfigStack, Share]] = {}

    def __call__(self, root: str) -> Share:
        kept = self._stacks.get(root)
        if kept is not None and not kept[0].changed():
            return kept[1]
        stack = ConfigStack(root=Path(root) if root else None)
        try:
            settings = stack.load()
        except ConfigError as exc:
            log.info("team sync: %s; its rows wait", exc)
            return "other"
        share = self.decide(settings)
        self._stacks[root] = (stack, share)
        return share

    def decide(self, settings: Settings) -> Share:
        team = settings.team
        if team is None or not team.sync:
            return "keep"
        if team.url_env != self.url_env:
            return "other"
        if local_only(settings) and not team.share_local_only:
            return "keep"
        return "send"


def syncer_for(
    team: TeamSettings,
    root: Path | None,
    *,
    path: Path | None = None,
    who: Identity | None = None,
    **hooks: Any,
) -> TeamSyncer:
    return TeamSyncer(
        target=TeamTarget.from_env(team.url_env),
        ledger_path=path or ledger_path(),
        who=who or Identity("", ""),
        share=ShareRule(team.url_env),
        interval_s=team.sync_interval_s,
        baseline_days=team.anomaly_baseline_days,
        identify=None if who is not None else (lambda: identity(team, root)),
        **hooks,
    )


class TeamLink:
    """A server's tie to the team database while ``[team]`` is set: the syncer on its own
    thread, the team's spend for team budgets, and the developer's anomaly, shown once."""

    def __init__(self, ledger: Ledger, on_notice: Callable[[str], None]) -> None:
        self.ledger = ledger
        self.on_notice = on_notice
        self.team: TeamSettings | None = None
        self.syncer: TeamSyncer | None = None
        self._key: tuple[Any, ...] | None = None

    def configure(self, settings: Settings, root: Path | None) -> None:
        """Start, restart or stop syncing as the settings say; never waits."""
        team = settings.team if settings.team is not None and settings.team.sync else None
        key = None if team is None else (team, os.environ.get(team.url_env, ""), root)
        if key == self._key:
            return
        self.close()
        self._key, self.team = key, team
        if team is not None:
            self.syncer = syncer_for(
                team,
                root,
                path=self.ledger.path,
                on_notice=self.on_notice,
                on_figures=self._anomaly,
            )
            self.syncer.start()

    def spending(self, project: str, now: float | None = None) -> tuple[TeamSpending | None, str]:
        """The team's spend for budgets, or (None, why it is unknown)."""
        syncer, team = self.syncer, self.team
        if syncer is None or team is None:
            return None, "no [team] section: team budgets need the team database"
        now = time.time() if now is None else now
        found = syncer.status.figures
        if found is None or now - found.taken_at > STALE_INTERVALS * team.sync_interval_s + 30:
            why = syncer.status.last_error
            return None, why or f"the team database {syncer.target.where} was not read yet"
        try:
            with self.ledger.reader(timeout=0.5) as conn:
                unsent = outbox.unsent_spend(conn, found.month_start, found.through_round)
        except LedgerError as exc:
            return None, f"cannot read this machine's unsent spend: {exc}"
        return figures.spending(found, unsent, project, day_of(now)), ""

    def _anomaly(self, found: figures.TeamFigures) -> None:
        team = self.team
        if team is None:
            return
        today = day_of(time.time())
        spike = figures.anomaly(found.developer, today, team, min(found.developer, default=None))
        if spike is not None and self.ledger.notice_once(f"team-anomaly:{today}"):
            self.on_notice(
                f"nearline: unusual spending across the team's records: your {spike.describe()}"
            )

    def close(self) -> None:
        if self.syncer is not None:
            self.syncer.stop(timeout=0)
        self.syncer, self._key, self.team = None, None, None


def with_team(spent: Spending, link: TeamLink | None, project: str, settings: Settings) -> Spending:
    """``spent`` with the team's spend where team caps are set (or why it is unknown)."""
    if not settings.budget.team.any():
        return spent
    if link is None:
        return dataclasses.replace(spent, team_unknown="the team ledger is not running")
    team, why = link.spending(project)
    return dataclasses.replace(spent, team=team, team_unknown=why)


# -- the CLI's use cases ------------------------------------------------------------------------
@dataclass(frozen=True)
class TeamStatus:
    configured: bool
    where: str = ""
    developer: str = ""
    device: str = ""
    waiting: int = 0
    last_sync: float | None = None
    last_error: str = ""
    check: str = ""
    """What connecting found now: the schema version, or what is wrong."""
    ok: bool = False

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def team_status(settings: Settings, root: Path | None, *, live: bool = True) -> TeamStatus:
    """Where the team database is (host and database only), the last sync, the rows waiting,
    the last error, and (``live``) whether it can be used now."""
    team = settings.team
    if team is None:
        return TeamStatus(configured=False, check="no [team] section in the config")
    target = TeamTarget.from_env(team.url_env)
    waiting, notes = _local_state()
    last = notes.get("last_sync")
    check, ok = _check_now(target) if live else ("", False)
    return TeamStatus(
        configured=True,
        where=target.where,
        developer=developer_of(team, root),
        device=device_id(),
        waiting=waiting,
        last_sync=last[1] if last else None,
        last_error=notes.get("last_error", ("", 0.0))[0],
        check=check,
        ok=ok,
    )


def _local_state() -> tuple[int, dict[str, tuple[str, float]]]:
    path = ledger_path()
    if not path.is_file():
        return 0, {}
    try:
        conn = connect(path)
        try:
            migrate(conn)
            return outbox.waiting_count(conn), outbox.notes(conn)
        finally:
            conn.close()
    except Exception as exc:  # a damaged ledger: say so, the server moves it aside
        log.warning("cannot read the usage ledger %s: %s", path, exc)
        return 0, {}


def _check_now(target: TeamTarget) -> tuple[str, bool]:
    try:
        with target.connect(autocommit=True) as pg:
            found = found_version(pg)
            if found is None:
                return "reachable; no nearline tables yet (the first sync makes them)", True
            check_version(found)
            check_tables(pg)
            return f"reachable; schema version {found}", True
    except TeamError as exc:
        return str(exc), False
    except Exception as exc:
        return target.redact(f"cannot use the team database {target.where}: {exc}"), False


def sync_now(settings: Settings, root: Path | None) -> int:
    """Send every waiting row now; ``NearlineError`` saying why it cannot."""
    team = settings.team
    if team is None:
        raise NearlineError(
            "no [team] section in the config: add one (see the README's team section)"
        )
    syncer = syncer_for(team, root, who=identity(team, root))
    try:
        sent = syncer.sync_now(wait_lock=30.0)
        syncer.read_figures()
        return sent
    finally:
        syncer.stop()
