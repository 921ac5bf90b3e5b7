"""Completion cache: an in-memory LRU in front of a size-bounded diskcache store.

Keys are a hash of the model and the prompt window, so a suggestion survives a server restart.
Disk writes happen on a background thread, off the completion path. If the disk store cannot
be opened the cache keeps working in memory and says why in ``disk_error``.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

log = logging.getLogger(__name__)


def cache_key(*parts: str) -> str:
    h = hashlib.blake2b(digest_size=20)
    for part in parts:
        h.update(part.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.hexdigest()


class CompletionCache:
    def __init__(
        self, directory: Path | None, *, memory_entries: int = 4096, disk_size_mb: int = 64
    ) -> None:
        self._memory: OrderedDict[str, str] = OrderedDict()
        self._memory_entries = memory_entries
        self._lock = threading.Lock()
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nearline-cache")
        self.disk_error: str | None = None
        self._disk = None
        if directory is not None:
            self._disk = self._open_disk(directory, disk_size_mb)

    def _open_disk(self, directory: Path, disk_size_mb: int):  # type: ignore[no-untyped-def]
        import diskcache

        try:
            directory.mkdir(parents=True, exist_ok=True)
            disk = diskcache.Cache(str(directory), size_limit=disk_size_mb * 1024 * 1024)
            disk.set("__probe__", 1)  # fails now, not later, on a read-only folder
            return disk
        except Exception as exc:  # sqlite3.OperationalError, OSError, ...
            self.disk_error = (
                f"completion cache at {directory} is not writable ({exc}); using memory only"
            )
            log.warning(self.disk_error)
            return None

    def get(self, key: str) -> str | None:
        """From memory only: cheap enough for the event loop."""
        with self._lock:
            value = self._memory.get(key)
            if value is not None:
                self._memory.move_to_end(key)
            return value

    def load(self, key: str) -> str | None:
        """From memory, else from disk (then kept in memory): a disk read, for a worker
        thread."""
        value = self.get(key)
        if value is not None or self._disk is None:
            return value
        try:
            value = self._disk.get(key)
        except Exception as exc:
            log.warning("completion cache read failed: %s", exc)
            return None
        if isinstance(value, str):
            self._remember(key, value)
            return value
        return None

    def put(self, key: str, value: str) -> None:
        self._remember(key, value)
        if self._disk is not None:
            self._writer.submit(self._write, key, value)

    def _remember(self, key: str, value: str) -> None:
        with self._lock:
            self._memory[key] = value
            self._memory.move_to_end(key)
            while len(self._memory) > self._memory_entries:
                self._memory.popitem(last=False)

    def _write(self, key: str, value: str) -> None:
        try:
            assert self._disk is not None
            self._disk.set(key, value)
        except Exception as exc:
            log.warning("completion cache write failed: %s", exc)

    def flush(self) -> None:
        """Wait for pending disk writes."""
        self._writer.submit(lambda: None).result()

    def close(self) -> None:
        self._writer.shutdown(wait=True)
        if self._disk is not None:
            self._disk.close()
