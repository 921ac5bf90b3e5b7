"""The project index as the server holds it: built and brought up to date on disk by another
process (``ProjectIndex.refresh`` in a child, see ``app.indexing``), and read here lazily.

Nothing is parsed or loaded in bulk in the server: ``reload`` reads the store's list of paths
(one query), an entry is read from the store the first time it is asked for and kept, and an
open document's text goes in with ``update``. So a build or a restart costs the server's
threads (and the interpreter lock the engine thread needs) next to nothing.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from nearline.index.store import (
    FORMAT_KEY,
    Record,
    RefreshStats,
    module_names,
    open_store,
    relative_path,
    saved_as,
)
from nearline.index.symbols import FileEntry, digest_of, scan_text

log = logging.getLogger(__name__)


class Modules(Mapping[str, FileEntry]):
    """Python files by every dotted name an import may use for them (see
    ``ProjectIndex.modules``); an entry is read from the store when first looked up."""

    def __init__(self, index: SharedIndex, names: dict[str, str]) -> None:
        self._index = index
        self._names = names

    def __getitem__(self, name: str) -> FileEntry:
        entry = self._index.get(self._names[name])
        if entry is None:
            raise KeyError(name)
        return entry

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


class SharedIndex:
    def __init__(
        self,
        root: Path,
        store: Path | None,
        *,
        max_files: int,
        max_file_bytes: int,
        exclude: Callable[[str], bool] | None = None,
    ) -> None:
        self.root = root
        self.exclude = exclude
        self.max_files = max_files
        self.max_file_bytes = max_file_bytes
        self._temporary: Path | None = None
        self.disk_error: str | None = None
        if store is not None:
            self._disk, self.disk_error = open_store(store)
        if store is None or self._disk is None:  # the builder needs a store: a temporary one
            self._temporary = Path(tempfile.mkdtemp(prefix="nearline-index-"))
            self._disk, _ = open_store(self._temporary)
        self.store: Path = self._temporary or store  # type: ignore[assignment]
        self._lock = threading.Lock()
        self._paths: list[str] = []
        self._entries: dict[str, FileEntry] = {}
        self._modules: Modules | None = None
        self._snapshot: list[FileEntry] | None = None
        self.generation = 0
        self.ready = threading.Event()
        """Set once a build is done, or at start when the store holds a former run's files."""
        self.building = False
        self.last: RefreshStats | None = None
        """The last build's figures."""
        self.built = threading.Event()
        """Set when a build ended (done, failed or stopped)."""

    def reload(self, *, built: bool = True) -> int:
        """The store's list of files, read again; how many. Ready after a build (``built``),
        or at start when the store holds a former run's files."""
        try:
            keys = [k for k in self._disk.iterkeys() if isinstance(k, str) and k != FORMAT_KEY]
        except Exception as exc:
            log.warning("project index read failed (%s)", exc)
            keys = []
        exclude = self.exclude
        paths = sorted(k for k in keys if exclude is None or not exclude(k))  # settings changed
        modules = Modules(self, module_names(paths))
        with self._lock:
            self._paths = paths
            self._entries = {}
            self._modules = modules
            self._snapshot = None
            self.generation += 1
        if built or paths:
            self.ready.set()
        return len(paths)

    def get(self, rel: str) -> FileEntry | None:
        with self._lock:
            entry = self._entries.get(rel)
        if entry is not None:
            return entry
        try:
            record = self._disk.get(rel)
        except Exception as exc:
            log.info("project index entry %s unreadable (%s)", rel, exc)
            return None
        if not isinstance(record, Record):
            return None
        with self._lock:
            return self._entries.setdefault(rel, record.entry)

    def modules(self) -> Mapping[str, FileEntry]:
        with self._lock:
            return self._modules if self._modules is not None else {}

    def entries(self) -> list[FileEntry]:
        """Every file's entry, sorted by path (read from the store once per generation: for
        the cold path, the escalation's project map)."""
        with self._lock:
            if self._snapshot is not None:
                return self._snapshot
            paths, generation = list(self._paths), self.generation
        found = [e for e in (self.get(rel) for rel in paths) if e is not None]
        with self._lock:
            if generation == self.generation:
                self._snapshot = found
        return found

    def update(self, path: Path, text: str, language: str) -> FileEntry | None:
        """The editor's text of one file (inside the root), into the store: its symbols anew
        when its content changed. The entry, or None (outside the project, not indexed)."""
        rel = self.relative(path)
        if rel is None or not language or len(text) > self.max_file_bytes:
            return None
        if self.exclude is not None and self.exclude(rel):
            return None
        digest = digest_of(text.encode("utf-8", "surrogatepass"))
        old = self.get(rel)
        if old is not None and old.digest == digest:
            return old
        with self._lock:
            if old is None and len(self._paths) >= self.max_files:
                return None
        entry = scan_text(rel, text, language, digest, old)
        try:
            self._disk.set(rel, Record(*saved_as(path, digest), entry))
        except Exception as exc:
            log.warning("project index write failed: %s", exc)
        with self._lock:
            self._entries[rel] = entry
            self._snapshot = None
            self.generation += 1
            if old is None:
                self._paths = sorted([*self._paths, rel])
                self._modules = Modules(self, module_names(self._paths))
        return entry

    def relative(self, path: Path) -> str | None:
        return relative_path(self.root, path)

    def close(self) -> None:
        with contextlib.suppress(Exception):  # closing is best effort
            self._disk.close()
        if self._temporary is not None:
            shutil.rmtree(self._temporary, ignore_errors=True)

    def __len__(self) -> int:
        with self._lock:
            return len(self._paths)
