"""The project map a cloud prompt starts with: every shareable file's path and its top-level
definitions (from the project index), rendered as the same bytes for the same entries, within a
token budget, and held stable so provider prompt caches hit.

``render_map`` is pure. ``MapHolder`` keeps one map and rebuilds it only when the wall clock
crosses a ``refresh_minutes`` boundary (the same boundary for every developer, so a team on the
same commit sends the same bytes) or when a large share of the files changed.

Privacy: a file a ``privacy.local_only`` glob names is left out, path and all, and so is a file
whose rendered block the secret scanner flags. The index keeps no values (see
``nearline.index.symbols``); the scan is the second line of defence.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from nearline.escalation.privacy import local_only_match, scan_secrets
from nearline.escalation.router import CHARS_PER_TOKEN
from nearline.index import FileEntry, Symbol, SymbolKind

HEADER = (
    "Project map: the project's files and their top-level definitions (signatures, first "
    "line of the docstring), rebuilt now and then: where it differs from the files shown "
    "below, they are current."
)
FULL, SIGNATURES, PATH = "full", "signatures", "path"
"""Detail levels of one file's block, the least useful detail dropped first: docstring lines
and fields/constants go before signatures, signatures before the path."""


def estimate_tokens(text: str) -> int:
    """The router's estimate (code and signatures run 3-4 characters a token)."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


@dataclass(frozen=True)
class ProjectMap:
    text: str
    """"" when no file may be shown."""
    files: int = 0
    """Files listed."""
    detailed: int = 0
    """Files listed with their definitions (the rest: the path only)."""
    left_out: int = 0
    """Files kept out: local_only globs, or secrets found in their block."""
    digests: Mapping[str, str] = field(default_factory=dict)
    """Path → digest of every entry the map was built from (those left out too)."""

    @property
    def tokens(self) -> int:
        return estimate_tokens(self.text) if self.text else 0


def symbol_line(symbol: Symbol, docs: bool) -> str:
    indent = "    " if symbol.kind in (SymbolKind.METHOD, SymbolKind.FIELD) else "  "
    line = indent + symbol.signature
    if docs and symbol.doc:
        line += f"  # {symbol.doc}"
    return line


def file_block(entry: FileEntry, detail: str) -> str:
    """One file's lines at ``detail``: its path, then (unless PATH) its definitions."""
    lines = [entry.path]
    if detail != PATH:
        docs = detail == FULL
        for s in entry.symbols:
            if detail == SIGNATURES and s.kind in (SymbolKind.FIELD, SymbolKind.CONSTANT):
                continue
            lines.append(symbol_line(s, docs))
    return "\n".join(lines) + "\n"


@lru_cache(maxsize=16384)
def holds_secret(entry: FileEntry) -> bool:
    """Whether the secret scanner flags the entry's fullest block (kept per entry: a rebuild
    scans only the files that changed)."""
    return bool(scan_secrets(file_block(entry, FULL), entry.path))


def shareable(
    entries: Iterable[FileEntry], local_only: Sequence[str], scan: bool = True
) -> tuple[list[FileEntry], int]:
    """The entries that may go to a cloud model (sorted by path), and how many may not."""
    kept: list[FileEntry] = []
    left_out = 0
    for entry in sorted({e.path: e for e in entries}.values(), key=lambda e: e.path):
        private = local_only_match(entry.path, local_only) is not None
        if private or (scan and holds_secret(entry)):
            left_out += 1
        else:
            kept.append(entry)
    return kept, left_out


def importers(entries: Sequence[FileEntry]) -> dict[str, int]:
    """Path → how many other files import it (by dotted module name, any package prefix)."""
    by_suffix: dict[str, str] = {}
    for e in entries:
        parts = e.module.split(".") if e.module else []
        for i in range(len(parts)):
            by_suffix.setdefault(".".join(parts[i:]), e.path)
    counts: dict[str, int] = {e.path: 0 for e in entries}
    for e in entries:
        targets = {by_suffix.get(imp) for imp in e.imports if not imp.startswith(".")}
        for target in targets - {None, e.path}:
            counts[str(target)] += 1
    return counts


def render_map(
    entries: Iterable[FileEntry],
    max_tokens: int,
    local_only: Sequence[str] = (),
    scan: bool = True,
) -> ProjectMap:
    """The map of ``entries`` within ``max_tokens`` (estimated). Every file gets its path
    first; then, most-imported files first (ties by path), each file gets the most detail the
    budget has room for. When even the paths do not fit, the most-imported files are listed
    and a last line says how many are not. Files appear sorted by path."""
    entries = list(entries)
    digests = {e.path: e.digest for e in entries}
    kept, left_out = shareable(entries, local_only, scan)
    if not kept or max_tokens <= 0:
        return ProjectMap("", left_out=left_out, digests=digests)
    rank = importers(kept)
    order = sorted(kept, key=lambda e: (-rank[e.path], e.path))
    budget = max_tokens * CHARS_PER_TOKEN - len(HEADER) - 2
    paths = {e.path: file_block(e, PATH) for e in kept}
    chosen: dict[str, str] = {}
    room = budget - 40  # for the "N more files" line
    for e in order:
        if len(paths[e.path]) > room:
            break
        chosen[e.path] = paths[e.path]
        room -= len(paths[e.path])
    if len(chosen) == len(kept):
        room += 40
        for e in order:
            if room < 8:  # not even one more short line
                break
            for detail in (FULL, SIGNATURES):
                block = file_block(e, detail)
                extra = len(block) - len(chosen[e.path])
                if e.symbols and extra <= room:
                    chosen[e.path] = block
                    room -= extra
                    break
    body = "".join(chosen[p] for p in sorted(chosen))
    missing = len(kept) - len(chosen)
    if missing:
        body += f"({missing} more files not listed)\n"
    detailed = sum(1 for p, b in chosen.items() if b != paths[p])
    return ProjectMap(f"{HEADER}\n\n{body}", len(chosen), detailed, left_out, digests)


def changed_share(before: Mapping[str, str], now: Mapping[str, str]) -> float:
    """Files added, removed or changed (by digest), as a share of the files before."""
    changed = sum(1 for p, d in now.items() if before.get(p) != d)
    changed += sum(1 for p in before if p not in now)
    return changed / max(len(before), 1)


@dataclass(frozen=True)
class MapOptions:
    max_tokens: int
    refresh_minutes: float
    rebuild_changed_share: float
    local_only: tuple[str, ...]
    scan: bool


class MapHolder:
    """One project's map, the same bytes between rebuilds. A rebuild happens on the first
    call, when the options change, when the clock enters a new ``refresh_minutes`` period
    (periods start at multiples of it since the epoch, alike on every machine), or when more
    than ``rebuild_changed_share`` of the files changed since the last build. A new period
    with nothing changed keeps the map as it is (a rebuild would give the same bytes)."""

    def __init__(self, entries: Callable[[], Sequence[FileEntry]]) -> None:
        self.entries = entries
        self._lock = threading.Lock()
        self._map: ProjectMap | None = None
        self._key: tuple[MapOptions, int] | None = None
        self.builds = 0

    @property
    def last(self) -> ProjectMap | None:
        """The map the last ``get`` gave."""
        return self._map

    def get(self, options: MapOptions, now: float) -> ProjectMap:
        period = int(now // (options.refresh_minutes * 60))
        with self._lock:
            current = self.entries()
            kept, key = self._map, self._key
            if kept is None or key is None or key[0] != options:
                changed = 1.0
            else:
                changed = changed_share(kept.digests, {e.path: e.digest for e in current})
            limit = options.rebuild_changed_share if key is not None and key[1] == period else 0
            if kept is None or changed > limit:
                kept = render_map(current, options.max_tokens, options.local_only, options.scan)
                self._map = kept
                self.builds += 1
            self._key = (options, period)
            return kept
