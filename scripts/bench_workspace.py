"""A big workspace for the benchmarks' ``--workspace big``: at least ``--workspace-files``
(10,000) real source files, and the server run on it with its project index on and off.

The files are copied from the running Python's standard library (``sysconfig``'s ``stdlib``,
without its ``site-packages``) and then from this environment's site-packages (``purelib``: the
venv's when run with ``.venv/bin/python``), folders depth-first and names sorted, into
``stdlib/`` and ``site-packages/`` of a temporary folder; when they are fewer than asked, both are
copied again under ``copy1/``, ``copy2/``, ... until there are enough. Only text source files
(``SOURCE_SUFFIXES``: UTF-8, no NUL byte, not empty, at most 512 KB, the index's size limit) are
copied; no ``.git`` is made (the index walks the folder and honours ``.gitignore``; there is
none). The benchmark's typed files go in too (``Workspace.add``). One copy serves a whole run;
each arm's server gets a fresh cache folder.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sysconfig
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_FILES = 10_000
MAX_FILE_BYTES = 512 * 1024
"""The index's ``index.max_file_kb`` default: larger files would not be indexed."""
SOURCE_SUFFIXES = frozenset(
    {".py", ".pyi", ".c", ".h", ".cc", ".cpp", ".hpp", ".js", ".ts", ".lua", ".sh", ".go", ".rs"}
)
SKIPPED_FOLDERS = frozenset({"site-packages", "dist-packages", "__pycache__", ".git"})
"""Not copied from inside a source folder (the standard library's own site-packages is not
the venv's)."""

ARMS = (("index on", True), ("index off", False))
"""The A/B arms: a name and ``index.enable``."""


@dataclass(frozen=True)
class Part:
    folder: str
    """Where in the workspace: ``stdlib``, ``copy1/site-packages``, ..."""
    origin: Path
    files: int


@dataclass
class Workspace:
    root: Path
    parts: list[Part] = field(default_factory=list)

    @property
    def files(self) -> int:
        return sum(p.files for p in self.parts)

    def describe(self) -> str:
        """Which folders and how many files, in one line."""
        first = [p for p in self.parts if "/" not in p.folder]
        again = sum(p.files for p in self.parts if "/" in p.folder)
        told = ", ".join(f"{p.folder}/ {p.files} from {p.origin}" for p in first)
        copies = f"; copied again under copyN/: {again}" if again else ""
        return f"{self.files} source files in {self.root}: {told}{copies}"

    def add(self, source: Path, rel: str) -> Path:
        """A file of the benchmark's own (a typed file) copied to ``rel`` in the workspace."""
        dest = self.root / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, dest)
        return dest


def source_folders() -> list[tuple[str, Path]]:
    """(workspace folder, where its files come from): the standard library, site-packages."""
    paths = sysconfig.get_paths()
    return [("stdlib", Path(paths["stdlib"])), ("site-packages", Path(paths["purelib"]))]


def source_files(folder: Path) -> Iterator[Path]:
    """The candidate files under ``folder``, depth-first, names sorted (suffix and size only;
    ``text_of`` reads them)."""
    for here, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_FOLDERS)
        for name in sorted(names):
            path = Path(here, name)
            if path.suffix in SOURCE_SUFFIXES and path.is_file() and fits(path):
                yield path


def fits(path: Path) -> bool:
    """Not empty, and no larger than the index reads."""
    return 0 < path.stat().st_size <= MAX_FILE_BYTES


def text_of(path: Path) -> bytes | None:
    """The file's bytes when they are text (UTF-8, no NUL); else None."""
    try:
        data = path.read_bytes()
        data.decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    return None if b"\0" in data else data


def build_workspace(
    target: Path,
    min_files: int = DEFAULT_FILES,
    folders: Sequence[tuple[str, Path]] | None = None,
) -> Workspace:
    """Exactly ``min_files`` text source files from ``folders`` (default: ``source_folders()``)
    under ``target``, the folders copied again under ``copyN/`` until there are enough."""
    folders = source_folders() if folders is None else folders
    workspace = Workspace(target)
    for copy in range(1_000):
        prefix = f"copy{copy}/" if copy else ""
        for name, origin in folders:
            left = min_files - workspace.files
            if left <= 0:
                return workspace
            copied = copy_folder(origin, target / f"{prefix}{name}", left)
            if copied:
                workspace.parts.append(Part(f"{prefix}{name}", origin, copied))
        if workspace.files == 0:
            break
    if workspace.files < min_files:
        raise SystemExit(f"only {workspace.files} source files to copy from {folders}")
    return workspace


def copy_folder(origin: Path, dest: Path, limit: int) -> int:
    """Up to ``limit`` text source files of ``origin`` to ``dest``, paths kept; how many."""
    copied = 0
    for path in source_files(origin):
        if copied >= limit:
            break
        data = text_of(path)
        if data is None:
            continue
        out = dest / path.relative_to(origin)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)
        copied += 1
    return copied


# -- the arms --------------------------------------------------------------------------------


def arm_order(turn: int) -> tuple[tuple[str, bool], ...]:
    """The arms in turn ``turn``: index on first in even turns, off first in odd ones (ABBA)."""
    return ARMS if turn % 2 == 0 else ARMS[::-1]


def index_options(enable: bool) -> dict[str, Any]:
    """The initializationOptions that turn the project index on or off."""
    return {"index": {"enable": enable}}


def merge_options(*layers: dict[str, Any] | None) -> dict[str, Any]:
    """initializationOptions layered: each section's keys over the earlier ones'."""
    merged: dict[str, Any] = {}
    for layer in layers:
        for section, values in (layer or {}).items():
            merged[section] = {**merged.get(section, {}), **values}
    return merged


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--workspace",
        choices=["small", "big"],
        default="small",
        help="big: the server's workspace is a copy of the standard library and site-packages "
        "(--workspace-files source files), measured with the project index on and off",
    )
    parser.add_argument(
        "--workspace-files",
        type=int,
        default=DEFAULT_FILES,
        metavar="N",
        help=f"--workspace big: how many source files (default {DEFAULT_FILES})",
    )
