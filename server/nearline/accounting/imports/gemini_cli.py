"""Gemini CLI's local telemetry: with ``telemetry.outfile`` set (``GEMINI_TELEMETRY_OUTFILE``;
there is no default, ``~/.gemini/telemetry.log`` is looked for), it appends OpenTelemetry
records as pretty-printed JSON objects, one after another (not one a line), with spans and
metric dumps between. A log record whose ``attributes["event.name"]`` is
``gemini_cli.api_response`` is one model request: ``input_token_count`` includes the cached
tokens, ``output_token_count`` leaves out the thinking ones (``thoughts_token_count``), and
``tool_token_count`` is input of its own. Records have no id: the key is the session's, the
prompt's, the time and the model. No working folder is recorded: no project."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from nearline.accounting.imports.records import (
    MAX_LINE,
    FileRead,
    Usage,
    number,
    skip_long,
    text,
    timestamp,
)

SOURCE = "gemini-cli"
EVENT = "gemini_cli.api_response"


def roots(env: Mapping[str, str] = os.environ) -> list[Path]:
    configured = env.get("GEMINI_TELEMETRY_OUTFILE", "")
    if configured:
        return [Path(configured).expanduser()]
    return [Path(env.get("HOME") or Path.home()) / ".gemini" / "telemetry.log"]


def objects(path: Path, start: int, read: FileRead) -> Iterator[dict[str, Any]]:
    """The JSON objects from byte ``start``, each from a line opening with ``{`` to a line
    that is ``}`` (a compact one on one line too), streamed; an object not yet closed is left
    for the next import. What cannot be read is counted in ``read.skipped``."""
    read.end = start
    with path.open("rb") as f:
        f.seek(start)
        offset = start
        parts: list[bytes] = []
        size = 0
        for raw in iter(lambda: f.readline(MAX_LINE + 1), b""):
            if not raw.endswith(b"\n"):
                length = skip_long(f, raw)
                if length is None:
                    return  # still being written: left for the next import
                offset += length
                read.end = offset
                parts, size = [], 0
                read.skipped["lines too long"] += 1
                continue
            offset += len(raw)
            read.lines += 1
            if not parts and not raw.startswith(b"{"):
                read.end = offset
                if raw.strip():
                    read.skipped["lines outside a record"] += 1
                continue
            parts.append(raw)
            size += len(raw)
            closed = raw.rstrip() == b"}" or (len(parts) == 1 and raw.rstrip().endswith(b"}"))
            if size > MAX_LINE:
                parts, size = [], 0  # no telemetry record is this big: skip to the next
                read.skipped["records too long"] += 1
                continue
            if not closed:
                continue
            body, parts, size = b"".join(parts), [], 0
            try:
                found = json.loads(body)
            except ValueError:
                if len(body.splitlines()) == 1:
                    parts, size = [body], len(body)  # an object's first line that ends in }
                    continue
                read.end = offset
                read.skipped["records not JSON"] += 1
                continue
            read.end = offset
            if isinstance(found, dict):
                yield found


def usage_of(record: dict[str, Any], read: FileRead) -> Usage | None:
    attributes = record.get("attributes")
    if not isinstance(attributes, dict) or attributes.get("event.name") != EVENT:
        return None
    when = timestamp(attributes.get("event.timestamp"))
    model = text(attributes.get("model"))
    if when is None or not model or "input_token_count" not in attributes:
        read.skipped["API responses without a time, a model or token counts"] += 1
        return None
    prompt = number(attributes.get("input_token_count"))
    cached = min(number(attributes.get("cached_content_token_count")), prompt)
    session, turn = text(attributes.get("session.id")), text(attributes.get("prompt_id"))
    return Usage(
        source=SOURCE,
        key=f"{session}:{turn}:{attributes.get('event.timestamp')}:{model}",
        ts=when,
        model=model,
        input_tokens=prompt - cached + number(attributes.get("tool_token_count")),
        cache_read_tokens=cached,
        cache_write_tokens=0,
        output_tokens=number(attributes.get("output_token_count"))
        + number(attributes.get("thoughts_token_count")),
        project="",
    )


def read(
    path: Path, start: int = 0, *, hold_last: bool = False
) -> tuple[Iterator[Usage], FileRead]:
    """The file's records from byte ``start``, streamed (``hold_last``: a record is whole
    once written, nothing to hold)."""
    found = FileRead(path, start)

    def records() -> Iterator[Usage]:
        for record in objects(path, start, found):
            usage = usage_of(record, found)
            if usage is not None:
                yield usage

    return records(), found
