"""The workspace's project index as the server keeps it: where it is stored, its background
build, and an open document's text going into it."""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Callable
from pathlib import Path

from nearline.config import Settings
from nearline.documents import language_of, path_of_uri
from nearline.escalation.privacy import local_only_match
from nearline.index.store import ProjectIndex, RefreshStats
from nearline.paths import cache_dir, project_store

log = logging.getLogger(__name__)


def open_index(root: Path | None, settings: Settings) -> ProjectIndex | None:
    """The index of the workspace at ``root``, kept in the cache folder's ``index/`` (in
    memory only when the disk cache is off), without the project's local-only files; None
    when indexing is off or there is no root."""
    opts, local_only = settings.index, settings.privacy.local_only
    if root is None or not opts.enable or not root.is_dir():
        return None
    store = None
    if settings.cache.enable_disk:
        store = project_store(cache_dir(settings.cache.dir), "index", root)
    return ProjectIndex(
        root,
        store,
        max_files=opts.max_files,
        max_file_bytes=opts.max_file_kb * 1024,
        workers=opts.workers,
        exclude=lambda rel: local_only_match(rel, local_only) is not None,
    )


def refresh_quietly(index: ProjectIndex) -> RefreshStats:
    """``index.refresh()`` with Python's cycle collector paused meanwhile, then the objects
    made so far frozen out of its reach. A first build makes some 300,000 objects for 10,000
    files; a full collection over them holds the interpreter for hundreds of milliseconds,
    and a keystroke on the event loop would wait for it (measured: a 494 ms stall)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return index.refresh()
    finally:
        if was_enabled:
            gc.enable()
        gc.freeze()


def build_in_background(
    index: ProjectIndex, on_done: Callable[[RefreshStats], None] | None = None
) -> threading.Thread:
    """Load what the disk keeps, then bring it up to date, on a thread of its own; nothing
    waits for it. A failure is logged and leaves the index as it is (``ready`` set)."""

    def build() -> None:
        try:
            index.load()
            stats = refresh_quietly(index)
            log.info(
                "indexed %d files in %.1f s (%d read, %d parsed, %d gone)",
                stats.files,
                stats.seconds,
                stats.read,
                stats.parsed,
                stats.removed,
            )
            if on_done is not None:
                on_done(stats)
        except Exception:  # the index is an aid: never the server's end
            log.exception("project index failed")
            index.ready.set()

    thread = threading.Thread(target=build, name="nearline-index", daemon=True)
    thread.start()
    return thread


def index_text(index: ProjectIndex, uri: str, text: str) -> None:
    """An open document's text into the index (once the first build is done)."""
    path = path_of_uri(uri)
    if path is not None and index.ready.is_set():
        index.update(path, text, language_of(str(path)))
