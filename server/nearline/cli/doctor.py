"""``nearline doctor``: checks of the install, each with a fix."""

from __future__ import annotations

import argparse

from nearline.cli.common import overrides


def run(args: argparse.Namespace) -> int:
    from nearline.app.doctor import run_checks

    ok = True
    for check in run_checks(overrides(args)):
        mark = "ok " if check.ok else ("warn" if check.warning else "FAIL")
        print(f"[{mark}] {check.name}: {check.detail}")
        if not check.ok and check.fix:
            print(f"       fix: {check.fix}")
        ok = ok and (check.ok or check.warning)
    return 0 if ok else 1
