"""``nearline team``: ``status`` (where the team database is, the last sync, the rows waiting,
the last error) and ``sync`` (send what is waiting now)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from nearline.cli.common import settings_for


def run(args: argparse.Namespace) -> int:
    from nearline.app.team import sync_now, team_status

    settings = settings_for(args)
    if args.action == "sync":
        sent = sync_now(settings, Path.cwd())
        print(f"sent {sent} usage rows to the team database")
        args.action = "status"
    status = team_status(settings, Path.cwd())
    if args.json:
        print(json.dumps(status.as_dict(), indent=2))
        return 0 if status.ok else 1
    if not status.configured:
        print("team: not configured (no [team] section; see the README's team section)")
        return 1
    when = (
        time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(status.last_sync))
        if status.last_sync
        else "never"
    )
    lines = [
        ("database", status.where),
        ("now", status.check),
        ("developer", status.developer),
        ("device", status.device),
        ("last sync", when),
        ("rows waiting", f"{status.waiting:,}"),
        ("last error", status.last_error or "none"),
    ]
    for name, value in lines:
        print(f"{name + ':':<14}{value}")
    return 0 if status.ok else 1
