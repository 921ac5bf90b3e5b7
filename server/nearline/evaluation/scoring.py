"""How good an answer is against what the project's author really wrote. Pure functions.

Completions: exact match and edit similarity of the suggestion's first line against the rest
of the real line, and the characters a Tab would have written (``accepted_part``). Changes:
whether the diff applied, how close its changed lines are to the real commit's, and the files
it touched against the commit's."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass

from nearline.documents import split_lines


def levenshtein(a: str, b: str) -> int:
    if len(a) < len(b):
        a, b = b, a
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


def similarity(a: str, b: str) -> float:
    """1 - Levenshtein(a, b) / max(len(a), len(b)); 1.0 for two empty strings."""
    longest = max(len(a), len(b))
    return 1.0 - levenshtein(a, b) / longest if longest else 1.0


def accepted_part(ghost: str, expected: str, limit: int, lines: bool = True) -> str:
    """What Tab writes: ``ghost`` if it is a prefix of ``expected``, else (``lines``) its
    longest run of leading whole lines that is (without the last one's line break); cut to
    ``limit`` characters; "" when that is blank."""
    take = ghost if expected.startswith(ghost) else ""
    if not take and lines:
        end = ghost.find("\n")
        while end >= 0 and expected.startswith(ghost[: end + 1]):
            take = ghost[:end]
            end = ghost.find("\n", end + 1)
    take = take[:limit]
    return take if take.strip() else ""


@dataclass(frozen=True)
class CompletionScore:
    shown: bool
    """The suggestion was not empty."""
    exact: bool
    """Its first line is the rest of the real line (trailing spaces aside)."""
    edit_similarity: float
    tab_chars: int
    """Characters a Tab would have written (0: nothing worth a Tab)."""
    expected_chars: int


def score_completion(suggestion: str, expected: str) -> CompletionScore:
    first = suggestion.split("\n", 1)[0].rstrip()
    want = expected.split("\n", 1)[0].rstrip()
    tab = accepted_part(suggestion, expected, len(expected))
    return CompletionScore(
        shown=bool(suggestion.strip()),
        exact=bool(want) and first == want,
        edit_similarity=similarity(first, want) if first else 0.0,
        tab_chars=len(tab),
        expected_chars=len(expected),
    )


def changed_lines(path: str, old: str | None, new: str | None) -> list[str]:
    """The lines a change removed ("-") and added ("+"), in order, trailing spaces aside."""
    a = [line.rstrip() for line in split_lines(old or "")]
    b = [line.rstrip() for line in split_lines(new or "")]
    out: list[str] = []
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag != "equal":
            out += [f"{path} -{line}" for line in a[i1:i2]]
            out += [f"{path} +{line}" for line in b[j1:j2]]
    return out


@dataclass(frozen=True)
class ChangeScore:
    applies: bool
    line_similarity: float
    """How alike the answer's changed lines are to the commit's (difflib ratio, 0..1)."""
    files_jaccard: float
    """Files both changed / files either changed."""
    tests_pass: bool | None
    """None: no test command configured, or the diff did not apply."""


Texts = Mapping[str, "str | None"]
"""Path → text (None: the file does not exist)."""


def score_change(
    before: Texts, real: Texts, answer: Texts | None, tests_pass: bool | None = None
) -> ChangeScore:
    """``real`` and ``answer`` map each path they changed to its new text; ``answer`` None:
    the answer's diff did not apply (or there was none)."""
    if answer is None:
        return ChangeScore(False, 0.0, 0.0, None)
    real_lines = [line for p in sorted(real) for line in changed_lines(p, before.get(p), real[p])]
    got_lines = [
        line for p in sorted(answer) for line in changed_lines(p, before.get(p), answer[p])
    ]
    real_files = {p for p in real if before.get(p) != real[p]}
    got_files = {p for p in answer if before.get(p) != answer[p]}
    union = real_files | got_files
    ratio = (
        difflib.SequenceMatcher(None, real_lines, got_lines, autojunk=False).ratio()
        if real_lines or got_lines
        else 1.0
    )
    return ChangeScore(
        True, ratio, len(real_files & got_files) / len(union) if union else 1.0, tests_pass
    )
