"""What a reader gives back: usage records with only the allow-listed fields, and what it made
of the file (lines read and skipped, and why, and where to start next time)."""

from __future__ import annotations

import collections
import datetime as dt
import functools
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any, BinaryIO

MAX_LINE = 16 << 20
"""A line longer than this is skipped unread (a tool output pasted whole, say)."""


@dataclass(frozen=True)
class Usage:
    """One model request another tool made, as the ledger will hold it."""

    source: str
    key: str
    """Stable across imports and copies of the file: the ledger row's identity."""
    ts: float
    model: str
    input_tokens: int
    """Uncached input."""
    cache_read_tokens: int
    cache_write_tokens: int
    output_tokens: int
    """Reasoning tokens included, once."""
    project: str
    """The session's working folder's name (never its path); "" when unknown."""
    cost_usd: float | None = None
    """The tool's own figure; None: price it from the price table."""
    provider: str = ""
    """Whose model; "": the source's provider."""
    until: float | None = None
    """An aggregate's end (from ``ts``): a provider export's bucket of many requests."""
    cache_write_1h_tokens: int = 0
    """The part of ``cache_write_tokens`` kept an hour (priced apart)."""

    @property
    def total_tokens(self) -> int:
        return (
            self.input_tokens
            + self.cache_read_tokens
            + self.cache_write_tokens
            + self.output_tokens
        )


@dataclass(frozen=True)
class ToolDay:
    """One day of a tool that reports daily aggregates, not requests (Copilot): per user,
    editor, language and model where the report says ("" where it does not)."""

    source: str
    day: str
    user: str = ""
    editor: str = ""
    language: str = ""
    model: str = ""
    suggestions: int = 0
    acceptances: int = 0
    lines_suggested: int = 0
    lines_accepted: int = 0
    chats: int = 0
    active_users: int = 0

    def row(self) -> tuple[object, ...]:
        """The ledger's ``tool_days`` row; its uid names the day and what it is of."""
        parts = (self.source, self.day, self.user, self.editor, self.language, self.model)
        uid = "d-" + hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]
        return (
            uid,
            *parts,
            self.suggestions,
            self.acceptances,
            self.lines_suggested,
            self.lines_accepted,
            self.chats,
            self.active_users,
        )


@dataclass
class FileRead:
    """One file's import: the records found, the lines skipped and why, and the offset of the
    first byte not read (a last line without its newline is left for the next import)."""

    path: Path
    start: int
    end: int = 0
    lines: int = 0
    skipped: collections.Counter[str] = field(default_factory=collections.Counter)

    def summary(self, records: int) -> str:
        said = ", ".join(f"{n} {why}" for why, n in sorted(self.skipped.items()))
        return f"{self.path.name}: {records} records from {self.lines} lines" + (
            f"; skipped {said}" if said else ""
        )


def skip_long(f: BinaryIO, raw: bytes) -> int | None:
    """After ``raw``, a line read without its newline: the whole line's length, read past
    (a line too long to be a record); None when it is a last line still being written."""
    if len(raw) <= MAX_LINE:
        return None
    length = len(raw)
    while raw and not raw.endswith(b"\n"):
        raw = f.readline(MAX_LINE + 1)
        length += len(raw)
    return length if raw else None


def lines(
    path: Path, start: int, read: FileRead, needles: tuple[bytes, ...] = ()
) -> Iterator[tuple[int, dict[str, Any]]]:
    """The file's JSON objects from byte ``start``, one a line, streamed (constant memory); each
    with the offset just past its line. Garbage, a line too long, and anything but an object
    are counted in ``read.skipped``; a last line without a newline is not read. ``needles``:
    only lines holding one of them are parsed (most of a log is prompts and tool output the
    reader never wants); the others are only checked to look like an object."""
    read.end = start
    with path.open("rb") as f:
        f.seek(start)
        offset = start
        while True:
            raw = f.readline(MAX_LINE + 1)
            if not raw:
                return
            if not raw.endswith(b"\n"):
                length = skip_long(f, raw)
                if length is None:
                    return  # still being written: left for the next import
                offset += length
                read.skipped["lines too long"] += 1
                read.end = offset
                continue
            offset += len(raw)
            read.end = offset
            read.lines += 1
            if needles and not any(n in raw for n in needles):
                if not (raw.startswith(b"{") and raw.rstrip().endswith(b"}")):
                    read.skipped["lines not JSON"] += 1
                continue
            try:
                found = json.loads(raw)
            except ValueError:
                read.skipped["lines not JSON"] += 1
                continue
            if not isinstance(found, dict):
                read.skipped["lines not an object"] += 1
                continue
            yield offset, found


def number(value: Any) -> int:
    """A token count; anything else (missing, null, text) is 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def timestamp(value: Any) -> float | None:
    """An ISO 8601 time (``Z`` or an offset) as a POSIX timestamp; None when it is not one."""
    if not isinstance(value, str):
        return None
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return when.timestamp()


def folder_name(cwd: Any) -> str:
    """A working folder's last part: a project's name, never its path."""
    return _last_part(cwd) if isinstance(cwd, str) and cwd else ""


@functools.lru_cache(maxsize=256)
def _last_part(path: str) -> str:
    return PurePath(path.replace("\\", "/")).name[:200]


def text(value: Any, limit: int = 200) -> str:
    """A short name (a model's, an id); "" for anything else."""
    return value[:limit] if isinstance(value, str) else ""


def report_objects(
    path: Path, read: FileRead, whole_max: int, too_big: str
) -> Iterator[dict[str, Any]]:
    """A downloaded report's objects, read whole each time: a JSON array of them, one object
    (pretty-printed or not), or one a line. An array or an object bigger than ``whole_max``
    is not read whole (``too_big`` says what to do instead); one a line is streamed."""
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(64).lstrip()
    if head.startswith(b"[") and size > whole_max:
        read.skipped[too_big] += 1
        return
    if head.startswith(b"["):
        try:
            found = json.loads(path.read_bytes())
        except ValueError:
            read.skipped["files not JSON"] += 1
            return
        read.end, read.lines = size, 1
        yield from (o for o in (found if isinstance(found, list) else []) if isinstance(o, dict))
        return
    if head.startswith(b"{") and size <= whole_max:
        try:  # one object, pretty-printed or not (else one a line)
            one = json.loads(path.read_bytes())
        except ValueError:
            one = None
        if isinstance(one, dict):
            read.end, read.lines = size, 1
            yield one
            return
    for _, found_line in lines(path, 0, read):
        yield found_line
