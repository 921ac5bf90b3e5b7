"""``nearline dashboard``: the usage dashboard in the browser, from this machine's ledger or
(``--team``) the team database."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nearline.cli.common import settings_for
from nearline.errors import ConfigError


def run(args: argparse.Namespace) -> int:
    from nearline.accounting.report.dashboard import Dashboard
    from nearline.app.dashboard import Filters, local_dashboard
    from nearline.app.team_dashboard import team_dashboard
    from nearline.config import find_project_file
    from nearline.web.serve import is_loopback, new_token, serve

    settings = settings_for(args)
    port = settings.usage.dashboard_port if args.port is None else args.port
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port: expected 0..65535, got {port}")
    found = find_project_file(Path.cwd())
    root = found.parent if found else Path.cwd()

    def load(filters: Filters) -> Dashboard:
        if args.team:
            return team_dashboard(settings, filters)
        return local_dashboard(settings, filters, root=root)

    if args.team:  # a clear error now, not on the first page
        team_dashboard(settings, Filters())
    token = new_token() if args.token or not is_loopback(args.host) else None

    def ready(url: str) -> None:
        where = "the team database" if args.team else "this machine's ledger"
        print(f"nearline dashboard ({where}) at {url}", flush=True)
        if token:
            print("the token is in that URL and shown only this once; Ctrl-C stops", flush=True)
        else:
            print("Ctrl-C stops", flush=True)

    serve(load, host=args.host, port=port, token=token, on_ready=ready, open_browser=args.open)
    print("nearline dashboard stopped", file=sys.stderr)
    return 0
