"""Each document's prompt window as last chosen (its first line and its cross-file blocks),
kept across restarts, so that the first prompt after a restart is the one whose evaluated
state was kept on disk, whatever the project index is doing meanwhile.

One small JSON file in the cache folder, read once when the service starts and written in the
background (at most every ``SAVE_DELAY_S``, and on close). A damaged file is ignored."""

from __future__ import annotations

import json
import logging
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nearline.completion.crossfile import Block

log = logging.getLogger(__name__)

MAX_DOCUMENTS = 256
SAVE_DELAY_S = 1.0
FORMAT = 1


@dataclass(frozen=True)
class Window:
    anchor: int
    """The window's first line."""
    blocks: tuple[Block, ...]


def _parse(raw: Any) -> Window | None:
    try:
        blocks = tuple(Block(str(p), str(t)) for p, t in raw["blocks"])
        return Window(int(raw["anchor"]), blocks)
    except (KeyError, TypeError, ValueError):
        return None


class WindowStore:
    """Per document URI, its last window; newest first, at most ``MAX_DOCUMENTS``."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._windows: OrderedDict[str, Window] = OrderedDict()
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._dirty = False
        if path is not None:
            self._read(path)

    def _read(self, path: Path) -> None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.info("kept windows at %s unreadable (%s); starting without them", path, exc)
            return
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            return
        for uri, raw in (data.get("windows") or {}).items():
            window = _parse(raw)
            if window is not None and isinstance(uri, str):
                self._windows[uri] = window

    def get(self, uri: str) -> Window | None:
        with self._lock:
            return self._windows.get(uri)

    def put(self, uri: str, window: Window) -> None:
        with self._lock:
            if self._windows.get(uri) == window:
                return
            self._windows.pop(uri, None)
            self._windows[uri] = window
            while len(self._windows) > MAX_DOCUMENTS:
                self._windows.popitem(last=False)
            self._dirty = True
            if self.path is not None and self._timer is None:
                self._timer = threading.Timer(SAVE_DELAY_S, self.save)
                self._timer.daemon = True
                self._timer.start()

    def save(self) -> None:
        """Write the file now (atomically) if anything changed."""
        with self._lock:
            self._timer = None
            if not self._dirty or self.path is None:
                return
            self._dirty = False
            data = {
                "format": FORMAT,
                "windows": {
                    uri: {
                        "anchor": w.anchor,
                        "blocks": [[b.path, b.text] for b in w.blocks],
                    }
                    for uri, w in self._windows.items()
                },
            }
        path = self.path
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(data), encoding="utf-8")
            os.replace(tmp, path)
        except OSError as exc:
            log.info("kept windows not written (%s)", exc)
            tmp.unlink(missing_ok=True)

    def close(self) -> None:
        with self._lock:
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
        self.save()
