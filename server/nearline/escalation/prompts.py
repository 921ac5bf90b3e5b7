"""Chat prompts for escalated requests, laid out for provider prompt caches::

    system prompt      the same bytes for every request          cache breakpoint
    project map        the same bytes for a team on one commit   cache breakpoint
                       between rebuilds (``project_map``)
    project files      the request's files, sorted by path
    request            task, instruction, diagnostic, selection

Provider caches are per organization: a team sending the same system prompt and map shares
one cached prefix. The request's own files get no breakpoint: a breakpoint writes the prefix
at 1.25x the input price, which pays only if it is read again within the cache's 5 minutes,
and the same set of files rarely is. The map's breakpoint may live an hour
(``project_map.cache_ttl``: a write at 2x, worth it when a team's requests on one map come more
than 5 minutes apart). A selection inside a file the prompt carries is pointed at (its file and
lines), not sent twice. Pure functions."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from nearline.providers import ChatMessage
from nearline.tasks import TASKS, TaskKind

SYSTEM = """\
You are nearline, a careful senior software engineer working inside the user's editor.
When asked to change code (refactor, write tests, fix), answer with exactly one unified diff \
in a ```diff fenced block: paths relative to the project root as --- a/PATH and +++ b/PATH \
(--- /dev/null for a new file), hunks with @@ headers and three lines of unchanged context, \
lines copied exactly from the files shown. Change only what the request needs. Before the \
diff write at most one short sentence; nothing after it.
When asked to explain or answer a question, reply in concise Markdown.\
"""


@dataclass(frozen=True)
class SourceFile:
    path: str
    """Relative to the project root when it lies inside it."""
    text: str


@dataclass(frozen=True)
class Selection:
    path: str
    start_line: int
    """0-based, inclusive."""
    end_line: int
    """0-based, inclusive."""
    text: str


def project_cache_key(project: str) -> str:
    """OpenAI's ``prompt_cache_key``: one per project, the project's name hashed (a team's
    checkouts share it, so their requests go where the shared prefix is cached)."""
    return "nearline-" + hashlib.sha256(project.encode()).hexdigest()[:16]


def context_message(files: Sequence[SourceFile]) -> str:
    parts = ["Project files for reference:"]
    for f in sorted(files, key=lambda f: f.path):
        parts.append(f"\n=== {f.path} ===\n{f.text.rstrip()}\n")
    return "\n".join(parts)


POINT_AT_LINES = 40
"""A selection this long or longer is pointed at in its file, for a provider that bills input
tokens; a shorter one is sent again: it anchors the answer's diff, and costs little. Measured
with Qwen2.5-Coder 1.5B on ``scripts/bench_selection.py``: pointing at every selection took
the share of diffs that apply from 81% to 38% on its 16 short changes, and 3 of 6 to 0 of 6
on its 6 long ones (``--long``), so a free provider (a team's own server) gets every
selection again. Long selections are where the tokens are (on the cost benchmark, the
flagship's complex and debugging requests)."""


def shown_in(selection: Selection, files: Sequence[SourceFile]) -> bool:
    """Whether the selection is long enough to point at, and a file the prompt carries holds
    its lines as they are."""
    lines = selection.end_line - selection.start_line + 1
    return (
        lines >= POINT_AT_LINES
        and bool(selection.text.strip())
        and any(f.path == selection.path and selection.text in f.text for f in files)
    )


def ends(selection: Selection, width: int = 100) -> str:
    """Where a selection starts and ends, in its own words: a model finds lines by their text
    better than by their numbers."""
    found = [line.strip()[:width] for line in selection.text.splitlines() if line.strip()]
    if len(found) == 1:
        return f"the line `{found[0]}`"
    return f"from `{found[0]}` to `{found[-1]}`"


def request_message(
    task: str,
    selection: Selection | None,
    instruction: str,
    diagnostic: str = "",
    files: Sequence[SourceFile] = (),
    point_at: bool = True,
) -> str:
    """The request; with ``point_at``, a long selection inside one of ``files`` (the
    prompt's) is pointed at by its file and lines (and its first and last line's text), not
    sent twice."""
    info = TASKS[TaskKind(task)]
    lines = [info.instruction]
    if instruction:
        lines.append(f"Request: {instruction}")
    if diagnostic:
        lines.append(f"Diagnostic: {diagnostic}")
    if selection is not None:
        where = f"Selection: {selection.path}, lines {selection.start_line + 1}-"
        if point_at and shown_in(selection, files):
            lines.append(f"{where}{selection.end_line + 1} (in the file above, {ends(selection)}).")
        else:
            lines.append(f"{where}{selection.end_line + 1}:\n```\n{selection.text.rstrip()}\n```")
    if info.changes_code or (info.kind is TaskKind.ASK and selection is not None):
        lines.append("If this asks for a change, answer with one unified diff.")
    return "\n".join(line for line in lines if line)


def build_messages(
    task: str,
    files: Sequence[SourceFile],
    selection: Selection | None,
    instruction: str = "",
    diagnostic: str = "",
    project_map: str = "",
    cache_ttl: str = "",
    point_at: bool = True,
) -> tuple[ChatMessage, ...]:
    """System prompt, project map (when there is one), files, request; breakpoints after the
    first two (``ChatMessage.cache``), both with the map's ``cache_ttl`` (a longer lifetime
    may not follow a shorter one). ``point_at``: see ``request_message``."""
    ttl = cache_ttl if project_map and cache_ttl != "5m" else ""
    head = [ChatMessage("system", SYSTEM, cache=True, ttl=ttl)]
    if project_map:
        head.append(ChatMessage("user", project_map, cache=True, ttl=ttl))
    return (
        *head,
        ChatMessage("user", context_message(files)),
        ChatMessage(
            "user", request_message(task, selection, instruction, diagnostic, files, point_at)
        ),
    )
