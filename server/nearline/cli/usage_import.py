"""``nearline usage import SOURCE [PATH...]``: another tool's usage into the ledger."""

from __future__ import annotations

import argparse
from pathlib import Path

from nearline.cli.common import settings_for


def run(args: argparse.Namespace) -> int:
    from nearline.app.usage_import import import_usage

    names = args.rest[:1]
    paths = [Path(p).expanduser() for p in args.rest[1:]]
    for result in import_usage(settings_for(args), names, paths):
        if not args.quiet:
            for line in result.lines:
                print(f"  {line}")
        print(result.summary())
    return 0
