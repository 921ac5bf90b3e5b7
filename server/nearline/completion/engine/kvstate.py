"""Evaluated prompt windows kept for later, so that switching documents, reopening a file or
restarting the server does not evaluate a window again.

A ``KvState`` is llama.cpp's sequence state (``llama_state_seq_get_data``) with the tokens it
holds. ``KvStates`` keeps them in memory, most recently used first, bounded in bytes (a slot
per recently used document: switching back restores it), and on disk in the cache folder
(diskcache, size-bounded), keyed by the model and the tokens, with a checksum: a damaged,
missing or mismatched state is skipped and counted, never restored and never fatal. Lookup is
by the longest common token prefix with the prompt about to be evaluated."""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

TOKEN_DTYPE = np.int32


@dataclass(frozen=True)
class KvState:
    tokens: np.ndarray
    """The tokens whose keys and values ``data`` holds, in order."""
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data) + self.tokens.nbytes


def common_prefix(a: np.ndarray, b: np.ndarray) -> int:
    n = min(len(a), len(b))
    if n == 0:
        return 0
    differ = np.flatnonzero(a[:n] != b[:n])
    return int(differ[0]) if len(differ) else n


@dataclass
class KvStats:
    memory_restores: int = 0
    disk_restores: int = 0
    disk_saves: int = 0
    skipped: int = 0
    """States found damaged, missing or refused by llama.cpp: evaluated again instead."""


class KvStates:
    def __init__(
        self,
        model_key: str,
        *,
        memory_bytes: int,
        disk_dir: Path | None = None,
        disk_bytes: int = 0,
    ) -> None:
        self.model_key = model_key
        """What a state depends on besides its tokens (the model file, the context's shape)."""
        self.memory_bytes = memory_bytes
        self.stats = KvStats()
        self._memory: OrderedDict[bytes, KvState] = OrderedDict()
        self._lock = threading.Lock()
        self._disk: Any = None
        self._index: dict[str, np.ndarray] = {}
        """Disk key → the tokens of the state stored under it."""
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nearline-kv")
        if disk_dir is not None and disk_bytes > 0:
            self._open_disk(disk_dir, disk_bytes)

    # -- memory --------------------------------------------------------------------------------
    def remember(self, state: KvState) -> None:
        """Keep ``state`` in memory (it replaces one with the same tokens)."""
        if state.size > self.memory_bytes:
            return
        key = self._digest(state.tokens)
        with self._lock:
            self._memory.pop(key, None)
            self._memory[key] = state
            used = sum(s.size for s in self._memory.values())
            while used > self.memory_bytes and self._memory:
                used -= self._memory.popitem(last=False)[1].size

    def best(self, tokens: np.ndarray) -> tuple[int, KvState | None, str | None]:
        """The kept state sharing the longest token prefix with ``tokens``: (that length, the
        state when in memory, else its disk key)."""
        found: int = 0
        state: KvState | None = None
        disk_key: str | None = None
        with self._lock:
            memory_key = None
            for digest, kept in self._memory.items():
                n = common_prefix(kept.tokens, tokens)
                if n > found:
                    found, state, memory_key = n, kept, digest
            if memory_key is not None:
                self._memory.move_to_end(memory_key)
            for key, kept_tokens in self._index.items():
                n = common_prefix(kept_tokens, tokens)
                if n > found:
                    found, state, disk_key = n, None, key
        return found, state, disk_key

    # -- disk ----------------------------------------------------------------------------------
    def _open_disk(self, folder: Path, size_bytes: int) -> None:
        import diskcache

        try:
            folder.mkdir(parents=True, exist_ok=True)
            self._disk = diskcache.Cache(str(folder), size_limit=size_bytes)
            for key in list(self._disk.iterkeys()):
                if isinstance(key, str) and key.startswith("t:"):
                    raw = self._disk.get(key)
                    if isinstance(raw, bytes):
                        self._index[key[2:]] = np.frombuffer(raw, dtype=TOKEN_DTYPE)
        except Exception as exc:  # an unreadable folder or database: memory only
            log.warning("KV states are not kept on disk (%s): %s", folder, exc)
            self._disk = None
            self._index.clear()

    def _disk_key(self, tokens: np.ndarray) -> str:
        return hashlib.blake2b(
            self.model_key.encode() + tokens.tobytes(), digest_size=20
        ).hexdigest()

    def on_disk(self, tokens: np.ndarray, slack: int = 0) -> bool:
        """Whether a state on disk holds ``tokens`` but for at most ``slack`` at the end."""
        if self._disk_key(tokens) in self._index:
            return True
        return slack > 0 and any(
            common_prefix(kept, tokens) >= len(tokens) - slack for kept in self._index.values()
        )

    def save(self, state: KvState) -> None:
        """Write ``state`` to disk in the background (once per token sequence)."""
        if self._disk is None:
            return
        key = self._disk_key(state.tokens)
        if key in self._index:
            return
        self._index[key] = state.tokens
        self._writer.submit(self._write, key, state)

    def _write(self, key: str, state: KvState) -> None:
        try:
            checksum = hashlib.blake2b(state.data, digest_size=16).digest()
            self._disk.set("s:" + key, checksum + state.data)
            self._disk.set("t:" + key, state.tokens.tobytes())
            self.stats.disk_saves += 1
        except Exception as exc:
            log.warning("could not keep a KV state on disk: %s", exc)
            self._index.pop(key, None)

    def load(self, key: str) -> KvState | None:
        """The state stored under ``key``, checked; None (and counted) when it is missing or
        damaged."""
        tokens = self._index.get(key)
        try:
            raw = self._disk.get("s:" + key) if self._disk is not None else None
        except Exception as exc:
            log.warning("could not read a KV state: %s", exc)
            raw = None
        if tokens is None or not isinstance(raw, bytes) or len(raw) < 16:
            self._skip(key)
            return None
        checksum, data = raw[:16], raw[16:]
        if hashlib.blake2b(data, digest_size=16).digest() != checksum:
            self._skip(key)
            return None
        return KvState(tokens, data)

    def forget(self, key: str | None, state: KvState | None = None) -> None:
        """A state llama.cpp refused: never offered again."""
        self.stats.skipped += 1
        if state is not None:
            with self._lock:
                self._memory.pop(self._digest(state.tokens), None)
        if key is not None:
            self._drop(key)

    def _skip(self, key: str) -> None:
        self.stats.skipped += 1
        self._drop(key)

    def _drop(self, key: str) -> None:
        self._index.pop(key, None)
        if self._disk is not None:
            for prefix in ("s:", "t:"):
                try:
                    self._disk.delete(prefix + key)
                except Exception:
                    log.debug("could not delete a KV state", exc_info=True)

    def flush(self) -> None:
        self._writer.submit(lambda: None).result()

    def close(self) -> None:
        self._writer.shutdown(wait=True)
        if self._disk is not None:
            self._disk.close()

    @staticmethod
    def _digest(tokens: np.ndarray) -> bytes:
        return hashlib.blake2b(tokens.tobytes(), digest_size=16).digest()


def as_tokens(tokens: Sequence[int] | np.ndarray) -> np.ndarray:
    """A copy of ``tokens`` (never a view of a buffer the engine writes to again)."""
    return np.array(tokens, dtype=TOKEN_DTYPE)
