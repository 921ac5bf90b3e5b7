"""The table of precomputed answers: one JSON file, keyed by what llama-server's ``/infill``
is sent (the end of ``input_prefix`` and the start of ``input_suffix``), written atomically
after each answer so an interrupted precompute resumes where it stopped."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from remotebench import ROOT

TABLE = ROOT / "scripts" / "bench_data" / "remote_answers" / "qwen2.5-coder-1.5b.json"
FORMAT = 1
KEY_PREFIX_CHARS = 800
KEY_SUFFIX_CHARS = 200
NEAR_PREFIX_CHARS = 200
"""A miss whose last 200 prefix characters match an entry is a layout mismatch (the window's
start or the suffix differ from what the precompute assumed), not a position left out."""


def key_of(prefix: str, suffix: str) -> str:
    text = prefix[-KEY_PREFIX_CHARS:] + "\0" + suffix[:KEY_SUFFIX_CHARS]
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def near_of(prefix: str) -> str:
    return hashlib.sha1(prefix[-NEAR_PREFIX_CHARS:].encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class Entry:
    answer: str
    split: str
    pos: str
    """``file:line:column`` (1-based) and the position's kind, for a person reading the file."""
    near: str = ""


class AnswerTable:
    """key -> Entry; thread-safe reads, ``add`` saves the file."""

    def __init__(self, path: Path | None = None, meta: dict[str, Any] | None = None) -> None:
        self.path = path
        self.meta: dict[str, Any] = dict(meta or {})
        self.entries: dict[str, Entry] = {}
        self._near: set[str] = set()
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path: Path) -> AnswerTable:
        table = cls(path)
        if not path.exists():
            return table
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != FORMAT:
            raise SystemExit(f"{path}: format {data.get('format')!r}, expected {FORMAT}")
        table.meta = dict(data.get("meta") or {})
        for key, raw in (data.get("answers") or {}).items():
            table.entries[key] = Entry(
                raw["answer"], raw.get("split", ""), raw.get("pos", ""), raw.get("near", "")
            )
        table._near = {e.near for e in table.entries.values() if e.near}
        return table

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, key: str) -> bool:
        return key in self.entries

    def get(self, key: str) -> Entry | None:
        with self._lock:
            return self.entries.get(key)

    def is_near(self, near: str) -> bool:
        with self._lock:
            return near in self._near

    def add(self, key: str, entry: Entry, save: bool = True) -> None:
        with self._lock:
            self.entries[key] = entry
            if entry.near:
                self._near.add(entry.near)
        if save:
            self.save()

    def save(self) -> None:
        if self.path is None:
            return
        with self._lock:  # one answer a line: the file reads (and diffs) as a list
            rows = [
                json.dumps(k)
                + ": "
                + json.dumps(
                    {"answer": e.answer, "split": e.split, "pos": e.pos, "near": e.near},
                    ensure_ascii=False,
                )
                for k, e in self.entries.items()
            ]
            head = f'{{"format": {FORMAT}, "meta": {json.dumps(self.meta)},\n"answers": {{\n'
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(head + ",\n".join(rows) + "\n}}\n", encoding="utf-8")
        os.replace(tmp, self.path)
