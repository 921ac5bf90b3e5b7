"""Evaluation cases made from commits. Pure functions of a commit and its changed files.

Completion cases: lines the commit added to code files, each cut at a word boundary. The
document is the file as the commit left it, with the cut line's rest and up to
``FOLLOWING_LINES`` more lines of the same added block taken out: the person has typed up to
the cursor and has yet to write the rest. What they wrote is the expected text.

Escalation cases: a commit that changed 1 to ``MAX_FILES`` text files, a few hundred lines at
most, one logical step, becomes a request: its message is the instruction, the files as they
were before it are the documents, and its changed lines in the main file are the selection.
The task kind comes from the message: fix, tests, refactor, else a free-form ask."""

from __future__ import annotations

import contextlib
import difflib
import io
import random
import re
import tokenize
from collections.abc import Sequence
from dataclasses import dataclass

from nearline.documents import language_of, split_lines
from nearline.evaluation.history import Commit, FileDiff
from nearline.tasks import TaskKind

CASES_VERSION = 2
"""Part of the cache's keys: a change to how cases are made makes them again."""
FOLLOWING_LINES = 4
MIN_LINE_CHARS = 6
MAX_FILES = 5
MAX_CHANGED_LINES = 300
NOT_CODE = frozenset({"markdown", "toml", "yaml", "json", ""})
COMMENT_STARTS = ("#", "//", "--", "/*", "*", '"""', "'''")
_TRIVIAL = re.compile(
    r"^(wip|tmp|temp|fixup!|squash!|merge\b|revert\b|bump\b|release\b|v?\d)", re.I
)
_KINDS = (
    (TaskKind.FIX, re.compile(r"\b(fix(e[sd])?|bug|crash|error|broken|regression|typo)\b", re.I)),
    (TaskKind.TESTS, re.compile(r"\b(tests?|testing|coverage)\b", re.I)),
    (
        TaskKind.REFACTOR,
        re.compile(
            r"\b(refactor\w*|rename\w*|clean\w*|simplif\w*|extract\w*|"
            r"move[sd]?|tid(y|ies|ied))\b",
            re.I,
        ),
    ),
)


@dataclass(frozen=True)
class CompletionCase:
    commit: str
    path: str
    language: str
    line: int
    """0-based; the cursor's line in ``document``."""
    column: int
    """Code points."""
    document: str
    expected: str
    """What the author wrote from the cursor: the line's rest, then the block's next lines."""

    @property
    def id(self) -> str:
        return f"{self.commit[:12]}:{self.path}:{self.line + 1}:{self.column + 1}"


@dataclass(frozen=True)
class CaseFile:
    path: str
    before: str | None
    """None: the commit added the file."""
    after: str | None
    """None: the commit deleted it."""


@dataclass(frozen=True)
class EscalationCase:
    commit: str
    kind: str
    """A ``TaskKind`` value."""
    instruction: str
    files: tuple[CaseFile, ...]
    """The main file (the selection's) first."""
    start_line: int
    end_line: int
    """The selection in the main file before the commit, 0-based, inclusive."""

    @property
    def id(self) -> str:
        return f"{self.commit[:12]}:{self.kind}"


@dataclass(frozen=True)
class CommitCases:
    """Everything made from one commit (kept on disk under its id)."""

    commit: str
    subject: str
    completion: tuple[CompletionCase, ...]
    escalation: EscalationCase | None


def is_ident(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def word_boundaries(body: str) -> list[int]:
    """Columns where a word starts or ends, from the end of the indentation to before the
    last two non-blank characters (something is left to complete)."""
    indent = len(body) - len(body.lstrip(" \t"))
    end = len(body.rstrip())
    out = []
    for c in range(indent, end):
        if len(body[c:end].replace(" ", "")) < 2:
            break
        if c == indent or (body[c] != " " and is_ident(body[c]) != is_ident(body[c - 1])):
            out.append(c)
    return out


def string_lines(text: str, language: str) -> set[int]:
    """0-based lines inside or part of a multi-line string (docstrings), for Python; a file
    that does not tokenize keeps what was found before the error."""
    inside: set[int] = set()
    if language != "python":
        return inside
    with contextlib.suppress(tokenize.TokenError, SyntaxError):
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type == tokenize.STRING and tok.end[0] > tok.start[0]:
                inside.update(range(tok.start[0] - 1, tok.end[0]))
    return inside


def is_code_line(line: str) -> bool:
    text = line.strip()
    return (
        len(text) >= MIN_LINE_CHARS
        and not text.startswith(COMMENT_STARTS)
        and any(is_ident(ch) for ch in text)
    )


def line_changes(
    old: str | None, new: str | None
) -> tuple[list[str], list[tuple[str, int, int, int, int]]]:
    """``old``'s lines and difflib's opcodes from them to ``new``'s, the equal runs left out;
    lines compared without their ends (a line whose only change is its end is no change)."""
    a = [line.rstrip("\r\n") for line in split_lines(old or "")]
    b = [line.rstrip("\r\n") for line in split_lines(new or "")]
    ops = difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes()
    return a, [op for op in ops if op[0] != "equal"]


def added_blocks(old: str | None, new: str) -> list[range]:
    """Ranges of ``new``'s lines that the change added (inserted or replacing others)."""
    return [range(j1, j2) for tag, _, _, j1, j2 in line_changes(old, new)[1] if tag != "delete"]


def completion_cases(
    commit: Commit, diffs: Sequence[FileDiff], per_commit: int
) -> list[CompletionCase]:
    """Up to ``per_commit`` cases from the lines ``commit`` added to code files, drawn with a
    seed that is the commit's id (the same cases every time), spread over its files."""
    rng = random.Random(f"{commit.sha}:{CASES_VERSION}")
    by_file: list[list[tuple[FileDiff, list[str], range, int]]] = []
    for diff in sorted(diffs, key=lambda d: d.path):
        language = language_of(diff.path)
        if diff.new is None or not diff.text or language in NOT_CODE:
            continue
        lines = split_lines(diff.new)
        strings = string_lines(diff.new, language)
        spots = [
            (diff, lines, block, i)
            for block in added_blocks(diff.old, diff.new)
            for i in block
            if is_code_line(lines[i]) and i not in strings
        ]
        if spots:
            rng.shuffle(spots)
            by_file.append(spots)
    rng.shuffle(by_file)
    cases: list[CompletionCase] = []
    while by_file and len(cases) < per_commit:
        for spots in list(by_file):
            if len(cases) >= per_commit:
                break
            diff, lines, block, i = spots.pop()
            if not spots:
                by_file.remove(spots)
            body = lines[i].rstrip("\r\n")
            columns = word_boundaries(body)
            if columns:
                cases.append(cut(commit.sha, diff.path, lines, block, i, rng.choice(columns)))
    return cases


def cut(
    sha: str, path: str, lines: list[str], block: range, line: int, column: int
) -> CompletionCase:
    """The case of the cursor at ``line``:``column``, the block's next lines taken out too."""
    body = lines[line].rstrip("\r\n")
    end = min(block.stop, line + 1 + FOLLOWING_LINES)
    following = [lines[j].rstrip("\r\n") for j in range(line + 1, end)]
    expected = "\n".join([body[column:], *following])
    ending = lines[end - 1][len(lines[end - 1].rstrip("\r\n")) :]  # "" at a file's end
    document = "".join(lines[:line]) + body[:column] + ending + "".join(lines[end:])
    return CompletionCase(sha, path, language_of(path), line, column, document, expected)


def task_kind(message: str) -> TaskKind:
    subject = message.strip().split("\n", 1)[0]
    for kind, pattern in _KINDS:
        if pattern.search(subject):
            return kind
    return TaskKind.ASK


def escalation_case(commit: Commit, diffs: Sequence[FileDiff]) -> EscalationCase | None:
    """The commit as a request, or None when it is not one logical step of text files
    (no files, more than ``MAX_FILES``, binary, a rename, too many changed lines, only new
    files, a message that says nothing)."""
    message = commit.message.strip()
    if (
        not 1 <= len(diffs) <= MAX_FILES
        or any(not d.text or d.status == "R" for d in diffs)
        or len(commit.subject) < 8
        or _TRIVIAL.match(commit.subject)
    ):
        return None
    changed = {d.path: changed_old_lines(d.old, d.new) for d in diffs}
    total = sum(len(split_lines(d.new or "")) for d in diffs if d.old is None) + sum(
        n for _, n in changed.values()
    )
    modified = [d for d in diffs if d.old is not None and d.new is not None]
    if not modified or total > MAX_CHANGED_LINES:
        return None
    main = max(modified, key=lambda d: (changed[d.path][1], d.path))
    span = changed[main.path][0]
    files = [CaseFile(main.path, main.old, main.new)] + [
        CaseFile(d.path, d.old, d.new) for d in sorted(diffs, key=lambda d: d.path) if d is not main
    ]
    return EscalationCase(
        commit.sha, task_kind(message).value, message, tuple(files), span.start, span.stop - 1
    )


def changed_old_lines(old: str | None, new: str | None) -> tuple[range, int]:
    """The span of ``old``'s lines the change touches (an insertion: the line before it),
    and how many lines it removed and added."""
    a, ops = line_changes(old, new)
    if not ops:
        return range(0, 1), 0
    first = max(0, min(ops[0][1], len(a) - 1))
    last = max(first, min(max(op[2] for op in ops) - 1, len(a) - 1))
    count = sum((i2 - i1) + (j2 - j1) for _, i1, i2, j1, j2 in ops)
    return range(first, last + 1), count


def cases_of(commit: Commit, diffs: Sequence[FileDiff], per_commit: int) -> CommitCases:
    return CommitCases(
        commit.sha,
        commit.subject,
        tuple(completion_cases(commit, diffs, per_commit)),
        escalation_case(commit, diffs),
    )
