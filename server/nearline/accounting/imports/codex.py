"""Codex CLI's rollout logs: JSONL files under ``${CODEX_HOME:-~/.codex}/sessions/``. A
``session_meta`` line names the session and its folder, a ``turn_context`` line the model, and
an ``event_msg`` of type ``token_count`` the tokens: ``last_token_usage`` for the turn (else
the growth of ``total_token_usage``). Its ``input_tokens`` include the cached ones, and its
``output_tokens`` the reasoning ones (``reasoning_output_tokens`` is a part, not more).
Records have no id: a turn's key is the session's and the running total's, so the same event
written twice, or the same file read twice, is one record."""

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

SOURCE = "codex"
NEEDLES = (b'"token_count"', b'"session_meta"', b'"turn_context"')
"""What the lines it reads hold (the rest is not parsed)."""
FIELDS = ("input_tokens", "cached_input_tokens", "output_tokens")


def roots(env: Mapping[str, str] = os.environ) -> list[Path]:
    home = env.get("CODEX_HOME") or str(Path(env.get("HOME") or Path.home()) / ".codex")
    return [Path(home).expanduser() / "sessions"]


def _counts(value: Any) -> dict[str, int] | None:
    if not isinstance(value, dict) or not any(k in value for k in FIELDS):
        return None
    return {k: number(value.get(k)) for k in (*FIELDS, "total_tokens")}


def read(
    path: Path, start: int = 0, *, hold_last: bool = False
) -> tuple[Iterator[Usage], FileRead]:
    """The file's records past byte ``start``, streamed. The session's name, folder and model
    come from lines before it, so the file is read from its beginning, and only the records
    past ``start`` are given. (``hold_last``: nothing to hold, a token count is whole.)"""
    found = FileRead(path, start)

    def records() -> Iterator[Usage]:
        session, project, model = path.stem, "", ""
        previous: dict[str, int] | None = None
        seen: set[str] = set()
        counted = FileRead(path, 0)
        for after, line in lines(path, 0, counted, NEEDLES):
            payload = line.get("payload")
            payload = payload if isinstance(payload, dict) else {}
            kind = line.get("type")
            if kind == "session_meta":
                session = text(payload.get("id")) or session
                project = folder_name(payload.get("cwd")) or project
            elif kind == "turn_context":
                model = text(payload.get("model")) or model
                project = folder_name(payload.get("cwd")) or project
            if kind != "event_msg" or payload.get("type") != "token_count":
                continue
            info = payload.get("info")
            if info is None:  # the rate limits alone: no tokens yet
                continue
            total = _counts(info.get("total_token_usage")) if isinstance(info, dict) else None
            last = _counts(info.get("last_token_usage")) if isinstance(info, dict) else None
            if last is None and total is not None:
                last = {k: v - (previous or {}).get(k, 0) for k, v in total.items()}
            when = timestamp(line.get("timestamp"))
            if last is None or when is None or not model:
                if after > start:
                    found.skipped["token counts without tokens, a time or a model"] += 1
                continue
            key_total = total if total is not None else last
            key = f"{session}:{key_total['total_tokens'] or sum(key_total[k] for k in FIELDS)}"
            previous = total or previous
            if key in seen or after <= start:
                seen.add(key)
                continue
            seen.add(key)
            cached = min(last["cached_input_tokens"], last["input_tokens"])
            yield Usage(
                source=SOURCE,
                key=key,
                ts=when,
                model=model,
                input_tokens=max(last["input_tokens"] - cached, 0),
                cache_read_tokens=cached,
                cache_write_tokens=0,
                output_tokens=max(last["output_tokens"], 0),
                project=project,
            )
        found.lines = counted.lines
        found.end = counted.end
        for why, n in counted.skipped.items():
            found.skipped[why] += n

    return records(), found
