"""The project's files, as git would see them: ``.gitignore`` files (nested ones too, via
pathspec's gitignore rules) and version-control folders are skipped, as are files of no known
language and files over the size limit."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pathspec

from nearline.documents import language_of

ALWAYS_SKIPPED = frozenset({".git", ".hg", ".svn", ".jj", "__pycache__", ".mypy_cache", ".tox"})
"""Folders never indexed, ignored or not."""


@dataclass(frozen=True)
class Found:
    rel: str
    """POSIX, relative to the root."""
    path: str
    size: int
    mtime_ns: int
    language: str


def _ignore_spec(folder: str) -> pathspec.PathSpec | None:
    try:
        with open(os.path.join(folder, ".gitignore"), encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    spec = pathspec.GitIgnoreSpec.from_lines(lines)
    return spec if len(spec) else None


def walk(root: Path, *, max_file_bytes: int, max_files: int) -> Iterator[Found]:
    """The files to index, at most ``max_files``, in a stable order (folders depth-first,
    names sorted). Unreadable folders are skipped."""
    count = 0
    # (folder, its path relative to root, the ignore specs that apply: (spec, its folder's rel))
    stack: list[tuple[str, str, tuple[tuple[pathspec.PathSpec, str], ...]]] = [(str(root), "", ())]
    while stack:
        folder, rel_folder, specs = stack.pop()
        own = _ignore_spec(folder)
        if own is not None:
            specs = (*specs, (own, rel_folder))
        try:
            with os.scandir(folder) as it:
                items = sorted(it, key=lambda e: e.name)
        except OSError:
            continue
        subfolders = []
        for item in items:
            rel = f"{rel_folder}/{item.name}" if rel_folder else item.name
            try:
                is_dir = item.is_dir(follow_symlinks=False)
                if not is_dir and not item.is_file(follow_symlinks=False):
                    continue  # links, sockets, ...
            except OSError:
                continue
            if is_dir and item.name in ALWAYS_SKIPPED:
                continue
            if _ignored(rel, is_dir, specs):
                continue
            if is_dir:
                subfolders.append((item.path, rel, specs))
                continue
            language = language_of(item.name)
            if not language:
                continue
            try:
                st = item.stat(follow_symlinks=False)
            except OSError:
                continue
            if st.st_size > max_file_bytes:
                continue
            yield Found(rel, item.path, st.st_size, st.st_mtime_ns, language)
            count += 1
            if count >= max_files:
                return
        stack.extend(reversed(subfolders))


def _ignored(rel: str, is_dir: bool, specs: tuple[tuple[pathspec.PathSpec, str], ...]) -> bool:
    ignored = False
    for spec, base in specs:
        sub = rel[len(base) + 1 :] if base else rel
        if is_dir:
            sub += "/"
        result = spec.check_file(sub)
        if result.include is not None:  # the deepest .gitignore that says something wins
            ignored = result.include
    return ignored
