"""GitHub Copilot's usage metrics, as a lead downloads them: daily aggregates, not requests
(no tokens, no cost), kept apart from nearline's own suggestions (``records.ToolDay``).

Two shapes: the metrics API's JSON array of days (``/orgs/{org}/copilot/metrics``: the whole
organisation's day, suggestions and acceptances per editor, model and language, chats per
editor and model), and the per-user usage report (NDJSON, or a JSON array, one object per user
and day: ``totals_by_language_feature`` with ``code_completion``'s activity counts, and the
user's chat interactions). Read whole each time the file changes; a day read again replaces
its earlier copy."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nearline.accounting.imports.records import FileRead, ToolDay, number, report_objects, text

SOURCE = "copilot"
WHOLE_MAX = 256 << 20
"""A JSON array bigger than this is not read (a year of an organisation's days is far less)."""
COMPLETION = "code_completion"


def _list(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def org_days(day: dict[str, Any]) -> Iterator[ToolDay]:
    """The metrics API's day: one aggregate per editor, model and language."""
    date = text(day.get("date"))
    completions = day.get("copilot_ide_code_completions") or {}
    for editor in _list(completions.get("editors") if isinstance(completions, dict) else None):
        for model in _list(editor.get("models")):
            for lang in _list(model.get("languages")):
                yield ToolDay(
                    SOURCE,
                    date,
                    editor=text(editor.get("name")),
                    language=text(lang.get("name")),
                    model=text(model.get("name")),
                    suggestions=number(lang.get("total_code_suggestions")),
                    acceptances=number(lang.get("total_code_acceptances")),
                    lines_suggested=number(lang.get("total_code_lines_suggested")),
                    lines_accepted=number(lang.get("total_code_lines_accepted")),
                    active_users=number(lang.get("total_engaged_users")),
                )
    chat = day.get("copilot_ide_chat") or {}
    for editor in _list(chat.get("editors") if isinstance(chat, dict) else None):
        for model in _list(editor.get("models")):
            yield ToolDay(
                SOURCE,
                date,
                editor=text(editor.get("name")),
                model=text(model.get("name")),
                chats=number(model.get("total_chats")),
                active_users=number(model.get("total_engaged_users")),
            )


def user_days(day: dict[str, Any]) -> Iterator[ToolDay]:
    """The usage report's user and day: completions per language, and chats."""
    date, user = text(day.get("day")), text(day.get("user_login"))
    for part in _list(day.get("totals_by_language_feature")):
        if part.get("feature") != COMPLETION:
            continue
        yield ToolDay(
            SOURCE,
            date,
            user=user,
            language=text(part.get("language")),
            suggestions=number(part.get("code_generation_activity_count")),
            acceptances=number(part.get("code_acceptance_activity_count")),
            lines_suggested=number(part.get("loc_suggested_to_add_sum")),
            lines_accepted=number(part.get("loc_added_sum")),
            active_users=1,
        )
    chats = number(day.get("user_initiated_interaction_count"))
    if chats:
        yield ToolDay(SOURCE, date, user=user, chats=chats, active_users=1)


def days_of(found: dict[str, Any], read: FileRead) -> Iterator[ToolDay]:
    if "date" in found and ("copilot_ide_code_completions" in found or "copilot_ide_chat" in found):
        yield from org_days(found)
    elif "day" in found and "user_login" in found:
        yield from user_days(found)
    else:
        read.skipped["objects neither a day of the metrics nor a user's day"] += 1


def read(
    path: Path, start: int = 0, *, hold_last: bool = False
) -> tuple[Iterator[ToolDay], FileRead]:
    """The file's days, whole (``start`` and ``hold_last`` do not apply to a report)."""
    found = FileRead(path, 0)

    def records() -> Iterator[ToolDay]:
        too_big = "JSON arrays too big to read whole (use the NDJSON report)"
        for day in report_objects(path, found, WHOLE_MAX, too_big):
            yield from days_of(day, found)

    return records(), found
