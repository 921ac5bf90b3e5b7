"""The stack of settings layers and its reload.

defaults < the user's config.toml < the project's .nearline.toml (found upward from the workspace
root) < command-line flags < the editor's settings. Each file is checked on its own, so an error
names the file and the key; the merged result is checked for references between layers (a tier
naming a provider defined in another file). A broken layer keeps the last good settings.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nearline.config.settings import Settings, merge, parse_settings, read_toml
from nearline.errors import ConfigError
from nearline.paths import user_config_file

log = logging.getLogger(__name__)

PROJECT_FILE = ".nearline.toml"


def find_project_file(start: Path | None) -> Path | None:
    """The nearest ``.nearline.toml`` in ``start`` or a folder above it."""
    if start is None:
        return None
    folder = start if start.is_dir() else start.parent
    for candidate in (folder, *folder.parents):
        path = candidate / PROJECT_FILE
        if path.is_file():
            return path
    return None


def _mtime(path: Path | None) -> float | None:
    if path is None:
        return None
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


@dataclass
class ConfigStack:
    root: Path | None = None
    """Workspace root; the project file is looked for from here upward."""
    flags: Mapping[str, Any] = field(default_factory=dict)
    editor: Mapping[str, Any] = field(default_factory=dict)
    settings: Settings = field(default_factory=Settings)
    """The last good settings."""
    project_file: Path | None = None
    _stamps: tuple[Any, ...] = ()

    def files(self) -> list[Path]:
        found = [user_config_file()]
        if self.project_file is not None:
            found.append(self.project_file)
        return found

    def load(self) -> Settings:
        """Read every layer; ``ConfigError`` (naming the file and key) leaves ``settings`` as
        it was."""
        self.project_file = find_project_file(self.root)
        self._stamps = self._stamp()
        layers: list[tuple[str, Mapping[str, Any]]] = [
            (str(path), read_toml(path)) for path in self.files()
        ]
        layers += [("command-line flags", self.flags), ("editor settings", self.editor)]
        merged: dict[str, Any] = {}
        for source, data in layers:
            parse_settings(data, source, check_references=False)
            merged = merge(merged, data)
        sources = " + ".join(source for source, data in layers if data) or "defaults"
        self.settings = parse_settings(merged, sources)
        return self.settings

    def _stamp(self) -> tuple[Any, ...]:
        project = find_project_file(self.root)
        return (project, _mtime(project), _mtime(user_config_file()))

    def changed(self) -> bool:
        """A config file appeared, changed or went away since the last load."""
        return self._stamp() != self._stamps

    def try_load(self) -> tuple[Settings, ConfigError | None]:
        try:
            return self.load(), None
        except ConfigError as exc:
            log.warning("%s; keeping the last good settings", exc)
            return self.settings, exc
