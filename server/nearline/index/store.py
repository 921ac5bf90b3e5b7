"""The project index, kept in memory and on disk (diskcache, one record a file).

``refresh`` walks the project and reads only files whose size or modification time changed
since the record was written; a file whose bytes hash the same keeps its symbols. ``update``
takes a file's text from the editor (on a change or a save). ``entries`` is a snapshot for the
readers (completion context, the escalation's project map); ``generation`` grows with each
change. A store that cannot be opened or read is rebuilt, or the index lives in memory only
(``disk_error`` says why).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from nearline.documents import language_of
from nearline.index.process import die_with_parent, lowest_priority
from nearline.index.symbols import FileEntry, digest_of, module_name, scan_text
from nearline.index.walk import Found, walk

log = logging.getLogger(__name__)

FORMAT = 1
"""The records' layout; a store written with another is cleared."""
FORMAT_KEY = "__format__"
MAX_FILES = 20_000
MAX_FILE_BYTES = 512 * 1024


@dataclass(frozen=True)
class Record:
    size: int
    mtime_ns: int
    entry: FileEntry


@dataclass(frozen=True)
class RefreshStats:
    files: int
    read: int
    """Files whose bytes were read (new or changed size/time)."""
    parsed: int
    """Files whose content had changed: symbols read anew."""
    removed: int
    seconds: float
    processes: int = 0
    """Reading processes that did the reading (0: this process read)."""


PARALLEL_FROM = 64
WRITE_EVERY = 256
"""A build writes its records this many files at a time: one stopped midway (the server
gone, the machine off) resumes from there."""


def read_file(found: Found, old: Record | None) -> tuple[str, Record | None, bool]:
    """A file's new record (None: unreadable) and whether it was parsed (its content
    changed). A binary file's entry has no symbols and says so."""
    try:
        data = Path(found.path).read_bytes()
    except OSError:
        return found.rel, None, False
    digest = digest_of(data)
    if old is not None and old.entry.digest == digest:
        return found.rel, Record(found.size, found.mtime_ns, old.entry), False
    if b"\x00" in data[:8192]:  # kept as unreadable: not read again until it changes
        entry = FileEntry(found.rel, digest, found.language, error="binary content")
        return found.rel, Record(found.size, found.mtime_ns, entry), False
    text = data.decode("utf-8", errors="replace")
    entry = scan_text(found.rel, text, found.language, digest, old.entry if old else None)
    return found.rel, Record(found.size, found.mtime_ns, entry), True


def _read_chunk(
    chunk: list[tuple[Found, Record | None]],
) -> list[tuple[str, Record | None, bool]]:
    return [read_file(found, old) for found, old in chunk]


def _read_chunk_there(
    chunk: list[tuple[Found, Record | None]],
) -> tuple[int, list[tuple[str, Record | None, bool]]]:
    """In a reading process: which one, and the chunk's results."""
    return os.getpid(), _read_chunk(chunk)


def _worker_start(parent: int) -> None:
    """A reading process: gone with the process that made it (``parent``), and at the lowest
    CPU priority."""
    die_with_parent(parent)
    lowest_priority()


def _read_in_processes(
    todo: list[tuple[Found, Record | None]], workers: int, pids: set[int]
) -> Iterator[list[tuple[str, Record | None, bool]]]:
    """``read_file`` for each, in ``workers`` processes at the lowest CPU priority (the
    editor's keystrokes and the model come first), a chunk's results at a time; in this
    thread if processes cannot start. The processes that read go into ``pids``."""
    size = min(64, max(16, len(todo) // (workers * 8)))  # small chunks: results come back often
    chunks = [todo[i : i + size] for i in range(0, len(todo), size)]
    done = 0
    try:
        context = multiprocessing.get_context("spawn")  # no fork of a threaded server
        with ProcessPoolExecutor(
            workers, context, initializer=_worker_start, initargs=(os.getpid(),)
        ) as pool:
            for pid, part in pool.map(_read_chunk_there, chunks):
                done += 1
                pids.add(pid)
                yield part
    except (OSError, BrokenProcessPool) as exc:
        log.warning("project index: worker processes failed (%s); reading here", exc)
        for chunk in chunks[done:]:
            yield _read_chunk(chunk)


def saved_as(path: Path, digest: str) -> tuple[int, int]:
    """The file's (size, mtime) when its bytes on disk are the editor's text (a save), else
    (-1, -1): the next refresh reads the file again."""
    try:
        st = path.stat()
        if st.st_size <= MAX_FILE_BYTES * 4 and digest_of(path.read_bytes()) == digest:
            return st.st_size, st.st_mtime_ns
    except OSError:
        pass
    return -1, -1


def module_names(paths: Iterable[str]) -> dict[str, str]:
    """Dotted name → path for the Python files among ``paths``: ``a.b.c`` is also found as
    ``b.c`` and ``c``; the shortest path wins a tie."""
    found: dict[str, str] = {}
    for rel in sorted(paths, key=lambda p: (p.count("/"), p)):
        if language_of(rel) != "python":
            continue
        parts = module_name(rel).split(".")
        for i in range(len(parts)):
            found.setdefault(".".join(parts[i:]), rel)
    return found


def relative_path(root: Path, path: Path) -> str | None:
    """``path`` relative to ``root`` (POSIX), or None outside it."""
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except (ValueError, OSError):
        return None


def open_store(store: Path):  # type: ignore[no-untyped-def]
    """The index's diskcache at ``store`` (cleared when its layout is not ``FORMAT``; rebuilt
    when unreadable), and None; or None and why it cannot be had."""
    import diskcache

    for attempt in (1, 2):
        try:
            store.mkdir(parents=True, exist_ok=True)
            disk = diskcache.Cache(str(store))
            if disk.get(FORMAT_KEY) != FORMAT:
                disk.clear()
                disk.set(FORMAT_KEY, FORMAT)
            return disk, None
        except Exception as exc:  # a corrupt database, a read-only folder, ...
            if attempt == 1:
                log.warning("project index at %s unreadable (%s); rebuilding it", store, exc)
                shutil.rmtree(store, ignore_errors=True)
                continue
            error = f"project index at {store} is not writable ({exc}); in memory"
            log.warning(error)
            return None, error
    return None, None  # pragma: no cover


class ProjectIndex:
    def __init__(
        self,
        root: Path,
        store: Path | None,
        *,
        max_files: int = MAX_FILES,
        max_file_bytes: int = MAX_FILE_BYTES,
        workers: int = 0,
        exclude: Callable[[str], bool] | None = None,
    ) -> None:
        self.root = root
        self.exclude = exclude
        """Relative paths never indexed (the project's local-only files)."""
        self.workers = workers
        """Processes that read a first build."""
        self.max_files = max_files
        self.max_file_bytes = max_file_bytes
        self._records: dict[str, Record] = {}
        self._lock = threading.Lock()
        self._snapshot: list[FileEntry] | None = None
        self._modules: dict[str, FileEntry] | None = None
        self.generation = 0
        self.ready = threading.Event()
        """Set once the first refresh (or load) is done."""
        self.disk_error: str | None = None
        self.last: RefreshStats | None = None
        """The last refresh's figures."""
        self.reader_pids: set[int] = set()
        """The processes that read files for the last refresh (none: this one did)."""
        self._disk = self._open(store) if store is not None else None

    # -- the store on disk ---------------------------------------------------------------------
    def _open(self, store: Path):  # type: ignore[no-untyped-def]
        disk, self.disk_error = open_store(store)
        return disk

    def load(self) -> int:
        """The records kept on disk, into memory; how many. Unreadable ones are skipped."""
        if self._disk is None:
            return 0
        records: dict[str, Record] = {}
        try:
            for key in list(self._disk.iterkeys()):
                if key == FORMAT_KEY:
                    continue
                value = self._disk.get(key)
                if isinstance(value, Record) and isinstance(key, str):
                    records[key] = value
        except Exception as exc:
            log.warning("project index read failed (%s); it will be rebuilt", exc)
            return 0
        with self._lock:
            self._records = records
            self._changed()
        return len(records)

    def _write(self, changed: dict[str, Record], removed: Iterable[str]) -> None:
        if self._disk is None:
            return
        try:
            with self._disk.transact():
                for rel, record in changed.items():
                    self._disk.set(rel, record)
                for rel in removed:
                    self._disk.delete(rel)
        except Exception as exc:
            log.warning("project index write failed: %s", exc)

    def close(self) -> None:
        if self._disk is not None:
            self._disk.close()

    # -- keeping it current ----------------------------------------------------------------------
    def refresh(self) -> RefreshStats:
        """Walk the project; read the files that changed since their record; drop the files
        that are gone. For a background thread: it never blocks the readers. With
        ``self.workers``, files are read and parsed by that many low-priority processes once
        there are more than ``PARALLEL_FROM`` to read (a first build)."""
        start = time.perf_counter()
        workers = self.workers
        self.reader_pids = set()
        with self._lock:
            known = dict(self._records)
        seen: set[str] = set()
        todo: list[tuple[Found, Record | None]] = []
        for found in walk(self.root, max_file_bytes=self.max_file_bytes, max_files=self.max_files):
            if self.exclude is not None and self.exclude(found.rel):
                continue
            seen.add(found.rel)
            old = known.get(found.rel)
            if old is None or (old.size, old.mtime_ns) != (found.size, found.mtime_ns):
                todo.append((found, old))
        if workers > 0 and len(todo) > PARALLEL_FROM:
            parts: Iterable[list[tuple[str, Record | None, bool]]] = _read_in_processes(
                todo, workers, self.reader_pids
            )
        else:
            parts = (
                _read_chunk(todo[i : i + WRITE_EVERY]) for i in range(0, len(todo), WRITE_EVERY)
            )
        changed: dict[str, Record] = {}
        unwritten: dict[str, Record] = {}
        parsed = read = 0
        for part in parts:
            read += len(part)
            for rel, record, was_parsed in part:
                parsed += was_parsed
                if record is not None:
                    changed[rel] = unwritten[rel] = record
            if len(unwritten) >= WRITE_EVERY:
                self._write(unwritten, ())
                unwritten = {}
        removed = [rel for rel in known if rel not in seen]
        with self._lock:
            for rel in removed:
                self._records.pop(rel, None)
            self._records.update(changed)
            if changed or removed:
                self._changed()
        self._write(unwritten, removed)
        self.modules()  # found here, in the background, not by the first reader
        took = time.perf_counter() - start
        self.last = RefreshStats(len(seen), read, parsed, len(removed), took, len(self.reader_pids))
        self.ready.set()
        return self.last

    def update(self, path: Path, text: str, language: str) -> FileEntry | None:
        """The editor's text of one file (inside the root): its symbols anew when its content
        changed. Returns the entry (None: outside the project or not indexed)."""
        rel = self.relative(path)
        if rel is None or not language or len(text) > self.max_file_bytes:
            return None
        if self.exclude is not None and self.exclude(rel):
            return None
        digest = digest_of(text.encode("utf-8", "surrogatepass"))
        with self._lock:
            old = self._records.get(rel)
        if old is not None and old.entry.digest == digest:
            saved = saved_as(path, digest)  # saved again unchanged: a newer time to remember
            if saved != (-1, -1) and saved != (old.size, old.mtime_ns):
                record = Record(*saved, old.entry)
                with self._lock:
                    self._records[rel] = record
                self._write({rel: record}, ())
            return old.entry
        entry = scan_text(rel, text, language, digest, old.entry if old else None)
        record = Record(*saved_as(path, digest), entry)
        with self._lock:
            if old is None and len(self._records) >= self.max_files:
                return None
            self._records[rel] = record
            modules = self._modules
            self._changed()
            if old is not None and modules is not None:  # the same names: point them here
                self._modules = {
                    name: entry if found.path == rel else found for name, found in modules.items()
                }
        self._write({rel: record}, ())
        self.modules()  # a new file: names found again here, not on the event loop
        return entry

    def relative(self, path: Path) -> str | None:
        return relative_path(self.root, path)

    def _changed(self) -> None:
        """The caller holds the lock."""
        self._snapshot = None
        self._modules = None
        self.generation += 1

    # -- reading -------------------------------------------------------------------------------
    def entries(self) -> list[FileEntry]:
        """Every file's entry, sorted by path (the same list until the index changes)."""
        with self._lock:
            if self._snapshot is None:
                self._snapshot = [self._records[k].entry for k in sorted(self._records)]
            return self._snapshot

    def get(self, rel: str) -> FileEntry | None:
        with self._lock:
            record = self._records.get(rel)
        return record.entry if record is not None else None

    def modules(self) -> dict[str, FileEntry]:
        """Python files by every dotted name an import may use for them: ``a.b.c`` is also
        found as ``b.c`` and ``c`` (a ``src/`` layout, a folder on ``sys.path``); the shortest
        path wins a tie. Kept between changes; an edited file's entry is swapped in place."""
        with self._lock:
            if self._modules is not None:
                return self._modules
            entries = {rel: record.entry for rel, record in self._records.items()}
        found = {name: entries[rel] for name, rel in module_names(entries).items()}
        with self._lock:
            self._modules = found
        return found

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)
