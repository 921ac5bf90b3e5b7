"""Unified diffs from a model, checked against the current documents before anything changes.

``extract_diff`` finds the diff in a model's answer, ``parse_diff`` reads it tolerantly (wrong
``@@`` counts, CRLF, bare empty context lines), ``plan_file`` places every hunk in the current
text or raises ``DiffError`` naming the hunk, and ``apply_edits`` produces the new text.
Line numbers here are 0-based; a document's lines end at ``\\r\\n``, ``\\n`` or ``\\r`` (as in LSP).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise

from nearline.documents import path_of_uri
from nearline.errors import DiffError


@dataclass(frozen=True)
class Hunk:
    header: str
    """The ``@@ ... @@`` line as written."""
    old_start: int
    """1-based first old line from the header; 0 when the header gave no numbers (or for an
    insertion at the top)."""
    old: tuple[str, ...]
    """Context and removed lines, without line ends."""
    new: tuple[str, ...]
    """Context and added lines, without line ends."""


@dataclass(frozen=True)
class FilePatch:
    old_path: str | None
    """Path with ``a/`` stripped; None for a new file (``/dev/null``)."""
    new_path: str | None
    """Path with ``b/`` stripped; None for a deletion (``/dev/null``)."""
    hunks: tuple[Hunk, ...]


@dataclass(frozen=True)
class LineEdit:
    """Replace lines ``[start_line, end_line)`` of the current text with ``new_lines``."""

    start_line: int
    end_line: int
    new_lines: tuple[str, ...]


# -- extract_diff ------------------------------------------------------------------------------

# The closing fence has the opener's indent, so a diff context line ' ```' does not close it.
FENCE = re.compile(r"^([ \t]*)(`{3,}|~{3,})[ \t]*([\w+-]*)[^\n]*\n(.*?)^\1\2[ \t]*$", re.M | re.S)
DIFF_LANGS = {"diff", "patch", "udiff"}


def extract_diff(answer: str) -> str:
    """The diff in a model's answer: every ```diff (or ```patch) fenced block, joined; else every
    untagged fence that holds a diff; else the text from the first ``--- `` line (up to a closing
    fence). ``DiffError`` if there is none."""
    answer = answer.replace("\r\n", "\n")
    tagged, untagged = [], []
    for m in FENCE.finditer(answer):
        lang, body = m.group(3).lower(), m.group(4)
        if lang in DIFF_LANGS:
            tagged.append(body)
        elif not lang and _looks_like_diff(body):
            untagged.append(body)
    blocks = tagged or untagged
    if blocks:
        return "".join(b if b.endswith("\n") else b + "\n" for b in blocks)
    start = re.search(r"^--- ", answer, re.M)
    if start is None:
        raise DiffError("the answer holds no unified diff (no ```diff block and no '--- ' line)")
    rest = answer[start.start() :]
    end = re.search(r"^(`{3,}|~{3,})[ \t]*$", rest, re.M)
    return rest[: end.start()] if end else rest


def _looks_like_diff(body: str) -> bool:
    return bool(re.search(r"^--- ", body, re.M) and re.search(r"^(\+\+\+ |@@)", body, re.M))


# -- parse_diff --------------------------------------------------------------------------------

# '@@ -1,3 +1,4 @@ def f():', or with no numbers at all ('@@ @@', '@@ ... @@').
HUNK_HEADER = re.compile(r"^@@\s*(?:-(\d+)(?:,(\d+))?\s+\+(\d+)(?:,(\d+))?\s*|[^@\d]*)@@")


def parse_diff(diff: str) -> tuple[FilePatch, ...]:
    """The file patches in ``diff``. Lines outside hunks (``diff --git``, ``index``, prose) are
    skipped; ``DiffError`` if there is no file, a hunk has no file header, a file has no hunks,
    or a ``+``/``-`` line sits between two hunks outside any of them."""
    lines = [line.rstrip("\r") for line in diff.replace("\r\n", "\n").split("\n")]
    if lines[-1] == "":
        lines.pop()  # the end of the last line, not an empty line
    patches: list[FilePatch] = []
    paths: tuple[str | None, str | None] | None = None
    hunks: list[Hunk] = []
    stray: int | None = None

    def close() -> None:
        if paths is None:
            return
        if not hunks:
            raise DiffError(f"the diff for {_name(*paths)} has no hunks")
        patches.append(FilePatch(paths[0], paths[1], tuple(hunks)))

    i = 0
    while i < len(lines):
        line = lines[i]
        starts_file = _is_file_header(lines, i)
        if (starts_file or line.startswith("@@")) and stray is not None:
            raise DiffError(f"diff line {stray + 1} lies outside any hunk: {lines[stray][:80]!r}")
        if starts_file:
            close()
            paths, hunks = _file_paths(lines[i], lines[i + 1]), []
            i += 2
        elif line.startswith("@@"):
            if paths is None:
                raise DiffError(f"diff line {i + 1}: hunk {line!r} comes before any '--- ' header")
            hunk, i = _read_hunk(lines, i)
            hunks.append(hunk)
        else:
            if hunks and line[:1] in ("+", "-") and stray is None:
                stray = i
            i += 1
    close()
    if not patches:
        raise DiffError("no file patches found: a unified diff needs '--- ', '+++ ' and '@@' lines")
    return tuple(patches)


def _is_file_header(lines: list[str], i: int) -> bool:
    # A '--- ' line inside a hunk may remove a line that starts with '-- '; a header has '+++ '
    # right after it.
    return lines[i].startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ ")


def _file_paths(old_line: str, new_line: str) -> tuple[str | None, str | None]:
    old, new = _header_path(old_line, "a/"), _header_path(new_line, "b/")
    if old is None and new is None:
        raise DiffError(f"both sides of {old_line!r} / {new_line!r} are /dev/null")
    return old, new


def _header_path(line: str, prefix: str) -> str | None:
    path = line[4:].split("\t", 1)[0].strip()
    if len(path) >= 2 and path[0] == path[-1] == '"':
        path = path[1:-1]
    if path == "/dev/null":
        return None
    if not path:
        raise DiffError(f"no path in {line!r}")
    return path[len(prefix) :] if path.startswith(prefix) else path


def _read_hunk(lines: list[str], i: int) -> tuple[Hunk, int]:
    """The hunk whose header is ``lines[i]``, and the index after it. Its end is the next
    header or the first line that cannot belong to a hunk; the header's counts are only used to
    decide about trailing empty lines and about a context line missing its leading space."""
    header = lines[i]
    m = HUNK_HEADER.match(header)
    if m is None:
        raise DiffError(f"diff line {i + 1}: malformed hunk header {header!r}")
    old_start = int(m.group(1) or 0)
    want_old = _count(m.group(1), m.group(2))
    want_new = _count(m.group(3), m.group(4))
    body: list[tuple[str, str, bool]] = []  # (tag, text, was a bare empty line)
    j = i + 1
    while j < len(lines):
        line = lines[j]
        if line.startswith(("@@", "diff ")) or _is_file_header(lines, j):
            break
        if line[:1] in (" ", "+", "-"):
            body.append((line[0], line[1:], False))
        elif line == "":
            body.append((" ", "", True))
        elif line.startswith("\\"):
            pass  # '\ No newline at end of file': the document's own final newline is kept
        elif _short(body, want_old, want_new) and _hunk_line_follows(lines, j):
            body.append((" ", line, False))  # a context line that lost its leading space
        else:
            break
        j += 1
    bare = 0
    while bare < len(body) and body[len(body) - 1 - bare][2]:
        bare += 1
    if bare:
        head = body[: len(body) - bare]
        o, n = _counts(head)
        keep = 0
        if want_old is not None and want_new is not None:
            keep = max(0, min(bare, want_old - o, want_new - n))
        body = head + body[len(head) : len(head) + keep]
    old = tuple(text for tag, text, _ in body if tag != "+")
    new = tuple(text for tag, text, _ in body if tag != "-")
    if not old and not new:
        raise DiffError(f"diff line {i + 1}: hunk {header!r} is empty")
    return Hunk(header, old_start, old, new), j


def _count(start: str | None, count: str | None) -> int | None:
    if start is None:
        return None
    return 1 if count is None else int(count)


def _counts(body: list[tuple[str, str, bool]]) -> tuple[int, int]:
    return sum(tag != "+" for tag, _, _ in body), sum(tag != "-" for tag, _, _ in body)


def _short(body: list[tuple[str, str, bool]], want_old: int | None, want_new: int | None) -> bool:
    if want_old is None or want_new is None:
        return False
    o, n = _counts(body)
    return o < want_old or n < want_new


def _hunk_line_follows(lines: list[str], j: int) -> bool:
    nxt = lines[j + 1] if j + 1 < len(lines) else ""
    return nxt[:1] in (" ", "+", "-") and not _is_file_header(lines, j + 1)


# -- plan_file ---------------------------------------------------------------------------------


LINE = re.compile(r"([^\r\n]*)(?:\r\n|\r|\n)|([^\r\n]+)\Z")
LINE_WITH_END = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")


def split_lines(text: str) -> list[str]:
    """The document's lines without their ends; ``""`` has none, ``"a\\n"`` has one."""
    return [m.group(2) if m.group(1) is None else m.group(1) for m in LINE.finditer(text)]


def plan_file(text: str, patch: FilePatch) -> tuple[LineEdit, ...]:
    """The edits that apply ``patch`` to ``text``, in document order. Each hunk's old lines are
    looked for at the header's line (shifted as much as the previous hunk was), else at the
    nearest exact match, else the nearest match ignoring trailing whitespace. Lines the hunk
    keeps unchanged at its edges are left out of its edit. ``DiffError`` names the file and the
    hunk when one cannot be placed (missing, ambiguous, or overlapping another)."""
    lines = split_lines(text)
    name = _name(patch.old_path, patch.new_path)
    if patch.old_path is None:
        return _plan_create(lines, patch, name)
    if patch.new_path is None:
        return _plan_delete(lines, patch, name)
    placed: list[tuple[LineEdit, int]] = []  # (the hunk's changed lines, hunk index)
    shift = 0
    for index, hunk in enumerate(patch.hunks):

        def error(why: str, index: int = index) -> DiffError:
            return _hunk_error(name, patch, index, why)

        declared = _declared_index(hunk, len(lines))
        start = _locate(lines, hunk, declared, shift, error)
        if start is None and hunk.old[-1:] == hunk.new[-1:] == ("",):
            # Blank lines after a hunk are often a separator the counts did not rule out.
            hunk = _without_trailing_blanks(hunk)
            start = _locate(lines, hunk, declared, shift, error)
        if start is None:
            raise error("does not match the document: its old lines are not there")
        if declared is not None:
            shift = start - declared
        lead, trail = _unchanged_edges(hunk)
        new = hunk.new[lead : len(hunk.new) - trail]
        edit = LineEdit(start + lead, start + len(hunk.old) - trail, new)
        if edit.start_line != edit.end_line or edit.new_lines:  # else only context
            placed.append((edit, index))
    placed.sort(key=lambda p: (p[0].start_line, p[0].end_line, p[1]))
    for (a, a_index), (b, b_index) in pairwise(placed):
        if b.start_line < a.end_line:
            first, second = sorted((a_index, b_index))
            raise _hunk_error(name, patch, second, f"overlaps hunk {first + 1}")
    return tuple(edit for edit, _ in placed)


def _declared_index(hunk: Hunk, line_count: int) -> int | None:
    """0-based line where the header says the hunk's old lines begin; None if it says nothing.
    For a hunk without old lines (``-5,0``) it is the line the new ones go before."""
    if hunk.old_start == 0 and hunk.old:
        return None
    return min(hunk.old_start if not hunk.old else hunk.old_start - 1, line_count)


def _locate(
    lines: list[str],
    hunk: Hunk,
    declared: int | None,
    shift: int,
    error: Callable[[str], DiffError],
) -> int | None:
    """Where the hunk's old lines begin; None if nowhere. ``error`` builds the ambiguity error."""
    old = list(hunk.old)
    if not old:
        if declared is None:
            if lines:
                raise error("has neither old lines nor a line number to place it")
            return 0
        return max(0, min(declared + shift, len(lines)))
    if declared is not None and lines[declared : declared + len(old)] == old:
        return declared
    expected = None if declared is None else declared + shift
    for same in (str.__eq__, _same_but_trailing_space):
        found = [i for i in range(len(lines) - len(old) + 1) if _matches(lines, i, old, same)]
        if not found:
            continue
        if expected is None:
            if len(found) > 1:
                raise error(f"is ambiguous: its lines occur at lines {_lines_list(found)}")
            return found[0]
        found.sort(key=lambda i: abs(i - expected))
        if len(found) > 1 and abs(found[0] - expected) == abs(found[1] - expected):
            raise error(
                f"is ambiguous: its lines occur at lines {found[0] + 1} and {found[1] + 1}, "
                f"equally near line {expected + 1}"
            )
        return found[0]
    return None


def _without_trailing_blanks(hunk: Hunk) -> Hunk:
    old, new = list(hunk.old), list(hunk.new)
    while old and new and old[-1] == new[-1] == "":
        old.pop()
        new.pop()
    return Hunk(hunk.header, hunk.old_start, tuple(old), tuple(new))


def _same_but_trailing_space(a: str, b: str) -> bool:
    return a.rstrip() == b.rstrip()


def _matches(lines: list[str], at: int, old: list[str], same: Callable[[str, str], bool]) -> bool:
    return all(same(lines[at + k], line) for k, line in enumerate(old))


def _lines_list(found: list[int]) -> str:
    shown = ", ".join(str(i + 1) for i in found[:5])
    return shown + (f" and {len(found) - 5} more" if len(found) > 5 else "")


def _unchanged_edges(hunk: Hunk) -> tuple[int, int]:
    """How many lines the hunk keeps unchanged at its start and at its end."""
    old, new = hunk.old, hunk.new
    lead = 0
    while lead < min(len(old), len(new)) and old[lead] == new[lead]:
        lead += 1
    trail = 0
    while trail < min(len(old), len(new)) - lead and old[-1 - trail] == new[-1 - trail]:
        trail += 1
    return lead, trail


def _plan_create(lines: list[str], patch: FilePatch, name: str) -> tuple[LineEdit, ...]:
    new = tuple(line for hunk in patch.hunks for line in hunk.new)
    if any(hunk.old for hunk in patch.hunks):
        raise _hunk_error(name, patch, 0, "creates the file but also lists old lines")
    if any(line.strip() for line in lines) and tuple(lines) != new:
        raise DiffError(f"{name}: the diff creates this file, but it already exists with content")
    return (LineEdit(0, len(lines), new),)


def _plan_delete(lines: list[str], patch: FilePatch, name: str) -> tuple[LineEdit, ...]:
    old = [line for hunk in patch.hunks for line in hunk.old]
    if any(hunk.new for hunk in patch.hunks):
        raise _hunk_error(name, patch, 0, "deletes the file but also lists new lines")
    if len(old) != len(lines) or not _matches(lines, 0, old, _same_but_trailing_space):
        raise DiffError(f"{name}: the diff deletes this file, but its lines differ from the file's")
    return (LineEdit(0, len(lines), ()),)


def _name(old_path: str | None, new_path: str | None) -> str:
    return old_path or new_path or "?"


def _hunk_error(name: str, patch: FilePatch, index: int, why: str) -> DiffError:
    hunk = patch.hunks[index]
    first = "; ".join(repr(line[:60]) for line in (hunk.old or hunk.new)[:2])
    return DiffError(
        f"{name}: hunk {index + 1} of {len(patch.hunks)} ({hunk.header}) {why} "
        f"(it begins {first}); nothing was applied"
    )


# -- apply_edits -------------------------------------------------------------------------------


def apply_edits(text: str, edits: Sequence[LineEdit]) -> str:
    """The text after ``edits`` (sorted, not overlapping, as from ``plan_file``). New lines end
    like the document's first line; the final-newline state stays as it was (a new file
    ends with one)."""
    parts = LINE_WITH_END.findall(text)
    first_end = re.search(r"\r\n|\r|\n", text)
    eol = first_end.group() if first_end else "\n"
    final_newline = not text or text.endswith(("\n", "\r"))
    out: list[str] = []
    at = 0
    for edit in edits:
        if not at <= edit.start_line <= edit.end_line <= len(parts):
            raise DiffError(
                f"edit of lines {edit.start_line}-{edit.end_line} is out of order or past the "
                f"end ({len(parts)} lines)"
            )
        out.extend(parts[at : edit.start_line])
        out.extend(line + eol for line in edit.new_lines)
        at = edit.end_line
    out.extend(parts[at:])
    # A kept last line that had no end may now have lines after it; the end comes back last.
    out = [p if p.endswith(("\n", "\r")) else p + eol for p in out]
    result = "".join(out)
    if not final_newline and result:
        result = result[: -len(_line_end(result))]
    return result


def _line_end(line: str) -> str:
    return "\r\n" if line.endswith("\r\n") else line[-1:]


# -- match_path --------------------------------------------------------------------------------


def match_path(patch: FilePatch, candidates: Iterable[str]) -> str | None:
    """The candidate (absolute path or ``file:`` URI) that the patch's path names: the
    candidate whose last path components equal the patch path's (``src/a.py`` matches
    ``/w/proj/src/a.py``, not ``/w/proj/xsrc/a.py``). The old path is tried first, then the
    new one. None if nothing matches; ``DiffError`` if two different files do."""
    candidates = list(candidates)
    for path in (patch.old_path, patch.new_path):
        if path is None:
            continue
        want = _components(path)
        if not want:
            continue
        hits: dict[tuple[str, ...], str] = {}
        for candidate in candidates:
            parts = _components(_candidate_path(candidate))
            if len(parts) >= len(want) and parts[len(parts) - len(want) :] == want:
                hits.setdefault(parts, candidate)
        if len(hits) > 1:
            shown = ", ".join(sorted(hits.values())[:5])
            raise DiffError(f"the diff's path {path!r} is ambiguous: it matches {shown}")
        if hits:
            return next(iter(hits.values()))
    return None


def _candidate_path(candidate: str) -> str:
    path = path_of_uri(candidate) if candidate.startswith("file:") else None
    return path.as_posix() if path is not None else candidate


def _components(path: str) -> tuple[str, ...]:
    return tuple(p for p in path.replace("\\", "/").split("/") if p not in ("", "."))
