"""Claude Code's session logs: JSONL files under ``~/.claude/projects/`` and
``~/.config/claude/projects/`` (``$CLAUDE_CONFIG_DIR/projects/`` when set, a comma-separated
list). An ``assistant`` line carries ``message.usage``. Streaming writes one message more than
once, its counts growing: the consecutive lines of one message (``message.id`` and
``requestId``) are one record, the one with the most tokens. The same message in another file
(a copy of the session, a sub-agent's log) has the same key, so it is counted once."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from nearline.accounting.imports.records import (
    FileRead,
    Usage,
    folder_name,
    lines,
    number,
    text,
    timestamp,
)

SOURCE = "claude-code"
NEEDLES = (b'"assistant"', b'"usage"')
"""What a line with a model's answer holds (the rest is not parsed)."""
TOKEN_FIELDS = (
    "input_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
    "output_tokens",
)


def roots(env: Mapping[str, str] = os.environ) -> list[Path]:
    """Where Claude Code keeps its projects' logs."""
    configured = env.get("CLAUDE_CONFIG_DIR", "")
    if configured:
        return [Path(p).expanduser() / "projects" for p in configured.split(",") if p.strip()]
    home = Path(env.get("HOME") or Path.home())
    return [home / ".claude" / "projects", home / ".config" / "claude" / "projects"]


def usage_of(line: dict[str, Any], read: FileRead) -> Usage | None:
    """The record of one line; None for a line that is not a model's answer (counted in
    ``read.skipped`` when it should have been one)."""
    if line.get("type") != "assistant":
        return None
    message = line.get("message")
    usage = message.get("usage") if isinstance(message, dict) else None
    if not isinstance(message, dict) or not isinstance(usage, dict):
        read.skipped["assistant lines without usage"] += 1
        return None
    model = text(message.get("model"))
    if model == "<synthetic>":  # Claude Code's own notes, no model ran
        return None
    ident, when = text(message.get("id")), timestamp(line.get("timestamp"))
    if not ident or when is None or not any(k in usage for k in TOKEN_FIELDS):
        read.skipped["assistant lines without an id, a time or token counts"] += 1
        return None
    request = text(line.get("requestId"))
    cost = line.get("costUSD")
    written = usage.get("cache_creation")
    hour = number(written.get("ephemeral_1h_input_tokens")) if isinstance(written, dict) else 0
    return Usage(
        source=SOURCE,
        key=f"{ident}:{request}" if request else ident,
        ts=when,
        model=model,
        input_tokens=number(usage.get("input_tokens")),
        cache_read_tokens=number(usage.get("cache_read_input_tokens")),
        cache_write_tokens=number(usage.get("cache_creation_input_tokens")),
        cache_write_1h_tokens=min(hour, number(usage.get("cache_creation_input_tokens"))),
        output_tokens=number(usage.get("output_tokens")),
        project=folder_name(line.get("cwd")),
        cost_usd=float(cost) if isinstance(cost, (int, float)) and cost >= 0 else None,
    )


def read(
    path: Path, start: int = 0, *, hold_last: bool = False
) -> tuple[Iterator[Usage], FileRead]:
    """The file's records from byte ``start``, streamed. ``hold_last``: the file may still be
    written (its session is open): its last message is left for the next import, which reads
    again from its first line (``FileRead.end``)."""
    found = FileRead(path, start)

    def records() -> Iterator[Usage]:
        pending: Usage | None = None
        pending_at = start
        line_at = start
        for after, line in lines(path, start, found, NEEDLES):
            record = usage_of(line, found)
            if record is not None:
                if pending is not None and pending.key == record.key:
                    if record.total_tokens >= pending.total_tokens:
                        pending = record
                else:
                    if pending is not None:
                        yield pending
                    pending, pending_at = record, line_at
            line_at = after
        if pending is not None:
            if hold_last:
                found.end = pending_at
            else:
                yield pending

    return records(), found
