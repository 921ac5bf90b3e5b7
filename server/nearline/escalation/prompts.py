"""Chat prompts for escalated requests, laid out for provider prompt caches: the stable system
prompt first, then the project's files (sorted, so the same set is the same bytes), then the
request. Pure functions."""

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


def project_cache_key(root: str) -> str:
    """OpenAI's ``prompt_cache_key``: one per project, no path in the clear."""
    return "nearline-" + hashlib.sha256(root.encode()).hexdigest()[:16]


def context_message(files: Sequence[SourceFile]) -> str:
    parts = ["Project files for reference:"]
    for f in sorted(files, key=lambda f: f.path):
        parts.append(f"\n=== {f.path} ===\n{f.text.rstrip()}\n")
    return "\n".join(parts)


def request_message(
    task: str, selection: Selection | None, instruction: str, diagnostic: str = ""
) -> str:
    info = TASKS[TaskKind(task)]
    lines = [info.instruction]
    if instruction:
        lines.append(f"Request: {instruction}")
    if diagnostic:
        lines.append(f"Diagnostic: {diagnostic}")
    if selection is not None:
        lines.append(
            f"Selection: {selection.path}, lines {selection.start_line + 1}-"
            f"{selection.end_line + 1}:\n```\n{selection.text.rstrip()}\n```"
        )
    if info.changes_code or (info.kind is TaskKind.ASK and selection is not None):
        lines.append("If this asks for a change, answer with one unified diff.")
    return "\n".join(line for line in lines if line)


def build_messages(
    task: str,
    files: Sequence[SourceFile],
    selection: Selection | None,
    instruction: str = "",
    diagnostic: str = "",
) -> tuple[ChatMessage, ...]:
    return (
        ChatMessage("system", SYSTEM, cache=True),
        ChatMessage("user", context_message(files), cache=True),
        ChatMessage("user", request_message(task, selection, instruction, diagnostic)),
    )
