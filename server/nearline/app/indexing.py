"""The workspace's project index as the server keeps it: where it is stored, its build in a
process of its own, and an open document's text going into it."""

from __future__ import annotations

import contextlib
import gc
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nearline.app.child import Child
from nearline.config import Settings
from nearline.documents import language_of, path_of_uri
from nearline.escalation.privacy import local_only_match
from nearline.index.shared import SharedIndex
from nearline.index.store import ProjectIndex, RefreshStats
from nearline.paths import cache_dir, project_store

log = logging.getLogger(__name__)


def _index_options(root: Path | None, settings: Settings) -> dict[str, Any] | None:
    """What opens the index of the workspace at ``root``: its store in the cache folder's
    ``index/`` (None when the disk cache is off), its limits, and the project's local-only
    files left out; None when indexing is off or there is no root."""
    opts, local_only = settings.index, settings.privacy.local_only
    if root is None or not opts.enable or not root.is_dir():
        return None
    store = None
    if settings.cache.enable_disk:
        store = project_store(cache_dir(settings.cache.dir), "index", root)
    return {
        "root": root,
        "store": store,
        "max_files": opts.max_files,
        "max_file_bytes": opts.max_file_kb * 1024,
        "exclude": lambda rel: local_only_match(rel, local_only) is not None,
    }


def open_index(root: Path | None, settings: Settings) -> ProjectIndex | None:
    """The workspace's index, built in this process (in memory only when the disk cache is
    off); None when indexing is off or there is no root."""
    options = _index_options(root, settings)
    return ProjectIndex(**options, workers=settings.index.workers) if options else None


def open_shared_index(root: Path | None, settings: Settings) -> SharedIndex | None:
    """The server's view of the workspace's index (built by ``IndexBuilder``; a temporary
    store when the disk cache is off); None when indexing is off or there is no root."""
    options = _index_options(root, settings)
    return SharedIndex(**options) if options else None


class IndexBuilder:
    """Brings a ``SharedIndex``'s store up to date in a child process
    (``nearline.app.index_build``) at the lowest CPU priority, paused while the engine works
    (``hold``): the server's threads only wait for it. ``stop`` ends it at once; so does the
    server's end, however it ends."""

    def __init__(
        self,
        index: SharedIndex,
        settings: Settings,
        on_done: Callable[[RefreshStats], None] | None = None,
    ) -> None:
        self.index = index
        self.job = {
            "root": str(index.root),
            "store": str(index.store),
            "max_files": settings.index.max_files,
            "max_file_bytes": settings.index.max_file_kb * 1024,
            "workers": 0,  # one process: stopped and resumed whole, nothing left behind
            "local_only": list(settings.privacy.local_only),
        }
        self.on_done = on_done
        self.child = Child("nearline.app.index_build")
        self.thread = threading.Thread(target=self._run, name="nearline-index", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        """On its own thread, which lives as long as the child (Linux's parent-death signal
        is sent when the thread that started a child ends)."""
        index = self.index
        try:
            index.reload(built=False)  # what the last run kept: ready at once
            index.building = True
            stats = self._build()
            if stats is None:
                return
            index.reload()
            index.last = stats
            log.info(
                "indexed %d files in %.1f s (%d read, %d parsed, %d gone)",
                stats.files,
                stats.seconds,
                stats.read,
                stats.parsed,
                stats.removed,
            )
            if self.on_done is not None:
                self.on_done(stats)
        except Exception:  # the index is an aid: never the server's end
            log.exception("project index failed")
        finally:
            index.building = False
            index.ready.set()
            index.built.set()

    def _build(self) -> RefreshStats | None:
        stats: RefreshStats | None = None
        for found in self.child.run(self.job):
            with contextlib.suppress(TypeError, KeyError):
                stats = RefreshStats(**found["stats"])
        if stats is None and not self.child.stopped.is_set():
            log.warning("project index build ended without a result")
        return stats

    def stop(self) -> None:
        """End the build now (its process group is killed); what it wrote so far is kept
        (each batch is one transaction)."""
        self.child.stop()

    def hold(self, busy: bool) -> None:
        """Pause the build while the engine works, and let it go on after (``Child.hold``)."""
        self.child.hold(busy)


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


def index_text(index: ProjectIndex | SharedIndex, uri: str, text: str) -> None:
    """An open document's text into the index (once the first build is done)."""
    path = path_of_uri(uri)
    if path is not None and index.ready.is_set():
        index.update(path, text, language_of(str(path)))
