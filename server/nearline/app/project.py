"""The project a request belongs to, as the ledger records it."""

from __future__ import annotations

from pathlib import Path

from nearline.accounting.entries import Project
from nearline.config import ConfigStack, Settings, find_project_file


def project_at(root: Path | None, settings: Settings) -> Project:
    """The project whose root is ``root``; named ``usage.project_name``, else the folder."""
    if root is None:
        return Project()
    return Project(str(root), settings.usage.project_name or root.name)


def project_of(stack: ConfigStack, settings: Settings) -> Project:
    """An editor's project: the folder of its ``.nearline.toml``, else the workspace root."""
    file = stack.project_file
    return project_at(file.parent if file is not None else stack.root, settings)


def project_of_file(path: Path, settings: Settings) -> Project:
    """A file's project (the CLI's): its nearest ``.nearline.toml``, else the current folder."""
    found = find_project_file(path.resolve().parent)
    return project_at(found.parent if found else Path.cwd(), settings)
