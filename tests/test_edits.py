"""Unit tests for nearline.escalation.edits: extracting, parsing, placing and applying diffs."""

from __future__ import annotations

from pathlib import Path

import pytest

from nearline.errors import DiffError
from nearline.escalation.edits import (
    FilePatch,
    Hunk,
    LineEdit,
    apply_edits,
    extract_diff,
    match_path,
    parse_diff,
    plan_file,
    split_lines,
)

DATA = Path(__file__).resolve().parent / "test_data" / "edits"


def read(name: str) -> str:
    return (DATA / name).read_text(encoding="utf-8")


def patched(text: str, diff: str) -> str:
    """``text`` after the single file patch in ``diff``."""
    (patch,) = parse_diff(diff)
    return apply_edits(text, plan_file(text, patch))


DOC = "".join(f"line {i}\n" for i in range(1, 11))  # 'line 1' .. 'line 10'


# -- extract_diff ------------------------------------------------------------------------------


def test_extract_fenced_block_with_prose_around() -> None:
    diff = extract_diff(read("answer_fenced.md"))
    assert diff.startswith("diff --git a/src/calc.py b/src/calc.py\n")
    assert diff.endswith("     return a / b\n")
    assert "Let me know" not in diff and "```" not in diff


def test_extract_joins_several_diff_blocks() -> None:
    answer = (
        "First file:\n```diff\n--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n```\n"
        "Second file:\n```patch\n--- a/y\n+++ b/y\n@@ -1 +1 @@\n-c\n+d\n```\n"
    )
    assert [p.new_path for p in parse_diff(extract_diff(answer))] == ["x", "y"]


def test_extract_ignores_other_code_blocks() -> None:
    answer = (
        "The helper looks like this:\n```python\ndef f():\n    pass\n```\n"
        "and the change:\n```diff\n--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n```\n"
    )
    assert extract_diff(answer) == "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n"


def test_extract_untagged_fence_holding_a_diff() -> None:
    answer = "Here:\n```\n--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n```\nDone."
    assert extract_diff(answer) == "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n"


def test_extract_unfenced_diff_from_first_header() -> None:
    answer = "I changed one line.\n--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n"
    assert extract_diff(answer) == "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n"


def test_extract_unfenced_diff_stops_at_a_closing_fence() -> None:
    answer = "Patch:\n--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n```\nThanks."
    assert extract_diff(answer) == "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n"


def test_extract_fence_around_a_markdown_diff() -> None:
    # The diff's own context line ' ```' does not close the answer's fence.
    diff = "--- a/README.md\n+++ b/README.md\n@@ -1,3 +1,3 @@\n ```sh\n-make\n+make all\n ```\n"
    assert extract_diff(f"Here:\n```diff\n{diff}```\nDone.") == diff


def test_extract_crlf_answer() -> None:
    answer = "Here:\r\n```diff\r\n--- a/x\r\n+++ b/x\r\n@@ -1 +1 @@\r\n-a\r\n+b\r\n```\r\n"
    assert extract_diff(answer) == "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n"


@pytest.mark.parametrize(
    "answer",
    ["", "I could not find anything to change.", "```python\nprint('hi')\n```"],
)
def test_extract_without_diff_raises(answer: str) -> None:
    with pytest.raises(DiffError, match="no unified diff"):
        extract_diff(answer)


# -- parse_diff --------------------------------------------------------------------------------


def test_parse_git_diff() -> None:
    (patch,) = parse_diff(extract_diff(read("answer_fenced.md")))
    assert patch.old_path == patch.new_path == "src/calc.py"
    first, second = patch.hunks
    assert first == Hunk(
        header="@@ -6,3 +6,4 @@ from __future__ import annotations",
        old_start=6,
        old=("def add(a: int, b: int) -> int:", "    return a + b", ""),
        new=("def add(a: int, b: int) -> int:", '    """The sum."""', "    return a + b", ""),
    )
    assert second.old_start == 18
    assert second.new[1] == "    if b == 0:"


def test_parse_strips_timestamps_and_quotes() -> None:
    diff = (
        '--- "a/my file.py"\t2024-01-01 10:00\n+++ b/my file.py\t2024-01-02\n@@ -1 +1 @@\n-a\n+b\n'
    )
    (patch,) = parse_diff(diff)
    assert (patch.old_path, patch.new_path) == ("my file.py", "my file.py")


def test_parse_paths_without_prefix() -> None:
    (patch,) = parse_diff("--- src/x.py\n+++ src/x.py\n@@ -1 +1 @@\n-a\n+b\n")
    assert patch.old_path == patch.new_path == "src/x.py"


def test_parse_new_and_deleted_files() -> None:
    diff = (
        "--- /dev/null\n+++ b/new.py\n@@ -0,0 +1,2 @@\n+one\n+two\n"
        "--- a/old.py\n+++ /dev/null\n@@ -1,1 +0,0 @@\n-gone\n"
    )
    new, old = parse_diff(diff)
    assert (new.old_path, new.new_path, new.hunks[0].new) == (None, "new.py", ("one", "two"))
    assert (old.old_path, old.new_path, old.hunks[0].old) == ("old.py", None, ("gone",))


def test_parse_tolerates_wrong_counts() -> None:
    diff = (
        "--- a/x\n+++ b/x\n@@ -3,9 +3,1 @@\n line 3\n-line 4\n+LINE 4\n line 5\n"
        "@@ -8,1 +8,1 @@\n-line 8\n+LINE 8\n"
    )
    (patch,) = parse_diff(diff)
    assert [h.old for h in patch.hunks] == [("line 3", "line 4", "line 5"), ("line 8",)]
    assert [h.new for h in patch.hunks] == [("line 3", "LINE 4", "line 5"), ("LINE 8",)]


def test_parse_crlf_diff() -> None:
    diff = "--- a/x\r\n+++ b/x\r\n@@ -1,2 +1,2 @@\r\n a\r\n-b\r\n+c\r\n"
    (patch,) = parse_diff(diff)
    assert patch.hunks[0].old == ("a", "b") and patch.hunks[0].new == ("a", "c")


def test_parse_no_newline_marker_is_ignored() -> None:
    marker = "\\ No newline at end of file\n"
    diff = f"--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n{marker}+b\n{marker}"
    (patch,) = parse_diff(diff)
    assert patch.hunks[0].old == ("a",) and patch.hunks[0].new == ("b",)


def test_parse_bare_empty_line_is_context() -> None:
    diff = "--- a/x\n+++ b/x\n@@ -1,3 +1,3 @@\n a\n\n-b\n+c\n"
    (patch,) = parse_diff(diff)
    assert patch.hunks[0].old == ("a", "", "b")


def test_parse_trailing_empty_lines_follow_the_counts() -> None:
    # The counts say one empty context line ends the hunk; the second blank line is not part.
    diff = "--- a/x\n+++ b/x\n@@ -1,2 +1,2 @@\n-a\n+b\n\n\n"
    (patch,) = parse_diff(diff)
    assert patch.hunks[0].old == ("a", "") and patch.hunks[0].new == ("b", "")
    # Counts that leave no room for them drop them.
    (patch,) = parse_diff("--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n\n\n")
    assert patch.hunks[0].old == ("a",)


def test_parse_removed_line_that_looks_like_a_header() -> None:
    # Removing an SQL comment '-- note' gives '--- note'; no '+++ ' follows, so it is a removal.
    diff = "--- a/q.sql\n+++ b/q.sql\n@@ -1,2 +1,1 @@\n--- note\n select 1;\n"
    (patch,) = parse_diff(diff)
    assert patch.hunks[0].old == ("-- note", "select 1;")


def test_parse_context_line_missing_its_space_inside_a_hunk() -> None:
    diff = "--- a/x\n+++ b/x\n@@ -1,3 +1,3 @@\n a\nb\n-c\n+C\n"
    (patch,) = parse_diff(diff)
    assert patch.hunks[0].old == ("a", "b", "c")


def test_parse_stops_at_trailing_prose() -> None:
    diff = "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\nThis renames a to b.\n- it is shorter\n"
    (patch,) = parse_diff(diff)
    assert patch.hunks[0].old == ("a",) and patch.hunks[0].new == ("b",)


def test_parse_header_without_numbers() -> None:
    (patch,) = parse_diff("--- a/x\n+++ b/x\n@@ ... @@\n-a\n+b\n")
    assert patch.hunks[0].old_start == 0


@pytest.mark.parametrize(
    ("diff", "message"),
    [
        ("", "no file patches"),
        ("hello\nworld\n", "no file patches"),
        ("@@ -1 +1 @@\n-a\n+b\n", "before any '--- ' header"),
        ("--- a/x\n+++ b/x\n", "has no hunks"),
        ("--- a/x\n+++ b/x\n@@ -1 +1\n-a\n+b\n", "malformed hunk header"),
        ("--- a/x\n+++ b/x\n@@ -1 +1 @@\n", "is empty"),
        ("--- /dev/null\n+++ /dev/null\n@@ -0,0 +1 @@\n+a\n", "both sides"),
        # A change line between hunks, outside any, would be silently lost.
        ("--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\noops\n+c\n@@ -5 +5 @@\n-d\n+e\n", "outside any"),
    ],
)
def test_parse_nonsense_raises(diff: str, message: str) -> None:
    with pytest.raises(DiffError, match=message):
        parse_diff(diff)


# -- plan_file + apply_edits -------------------------------------------------------------------


def test_apply_exact() -> None:
    diff = "--- a/x\n+++ b/x\n@@ -4,3 +4,3 @@\n line 4\n-line 5\n+LINE 5\n line 6\n"
    assert patched(DOC, diff) == DOC.replace("line 5\n", "LINE 5\n")


def test_plan_returns_only_changed_lines() -> None:
    diff = "--- a/x\n+++ b/x\n@@ -4,3 +4,4 @@\n line 4\n-line 5\n+LINE 5\n+extra\n line 6\n"
    (patch,) = parse_diff(diff)
    assert plan_file(DOC, patch) == (LineEdit(4, 5, ("LINE 5", "extra")),)


def test_apply_fixture_answer() -> None:
    (patch,) = parse_diff(extract_diff(read("answer_fenced.md")))
    assert apply_edits(read("calc.py"), plan_file(read("calc.py"), patch)) == read(
        "calc_expected.py"
    )


def test_apply_shifted_line_numbers() -> None:
    # The header says line 2; the lines are at 6 (the model counted from an older version).
    diff = "--- a/x\n+++ b/x\n@@ -2,3 +2,2 @@\n line 6\n-line 7\n line 8\n"
    assert patched(DOC, diff) == DOC.replace("line 7\n", "")


def test_later_hunks_shift_like_the_first() -> None:
    # Both hunks' contexts ('x') occur twice; the second hunk is expected 10 lines after where
    # the first one was found, not where its header says.
    text = "x\na\n" + "pad\n" * 8 + "x\nb\n" + "pad\n" * 3 + "x\nb\n" + "pad\n" * 10
    diff = "--- a/f\n+++ b/f\n@@ -21,2 +21,2 @@\n x\n-a\n+A\n@@ -31,2 +31,2 @@\n x\n-b\n+B\n"
    assert patched(text, diff) == text.replace("a\n", "A\n").replace("x\nb\n", "x\nB\n", 1)


def test_apply_wrong_counts() -> None:
    diff = "--- a/x\n+++ b/x\n@@ -4,7 +4,12 @@\n line 4\n-line 5\n+LINE 5\n line 6\n"
    assert patched(DOC, diff) == DOC.replace("line 5\n", "LINE 5\n")


def test_blank_separator_kept_by_the_counts_is_dropped_when_it_does_not_match() -> None:
    # The counts (3 old lines) take the blank line as context; the document has 'line 2' there.
    diff = "--- a/x\n+++ b/x\n@@ -1,3 +1,3 @@\n-line 1\n+LINE 1\n\n@@ -5 +5 @@\n-line 5\n+LINE 5\n"
    expected = DOC.replace("line 1\n", "LINE 1\n").replace("line 5\n", "LINE 5\n")
    assert patched(DOC, diff) == expected


def test_apply_two_files_from_one_answer() -> None:
    docs = {
        "/w/proj/src/calc.py": read("calc.py"),
        "/w/proj/tests/test_calc.py": read("test_calc.py"),
    }
    results = {}
    for patch in parse_diff(extract_diff(read("answer_two_files.md"))):
        path = match_path(patch, docs)
        assert path is not None
        results[path] = apply_edits(docs[path], plan_file(docs[path], patch))
    assert '    """The difference."""\n    return a - b\n' in results["/w/proj/src/calc.py"]
    assert results["/w/proj/tests/test_calc.py"] == (
        "from calc import add, sub\n\n\ndef test_add():\n    assert add(1, 2) == 3\n"
        "\n\ndef test_sub():\n    assert sub(3, 2) == 1\n"
    )


def test_hunk_that_does_not_match_names_the_hunk() -> None:
    diff = (
        "--- a/src/x.py\n+++ b/src/x.py\n@@ -1,1 +1,1 @@\n-line 1\n+LINE 1\n"
        "@@ -7,2 +7,2 @@ def helper():\n line 7\n-line 99\n+LINE 99\n"
    )
    (patch,) = parse_diff(diff)
    with pytest.raises(DiffError) as info:
        plan_file(DOC, patch)
    message = str(info.value)
    assert "src/x.py" in message
    assert "hunk 2 of 2 (@@ -7,2 +7,2 @@ def helper():)" in message
    assert "'line 7'; 'line 99'" in message
    assert "does not match" in message and "nothing was applied" in message


def test_ambiguous_context_raises() -> None:
    text = "a\nb\nc\nx\nx\nx\na\nb\nc\n"
    # Old lines at 1 and 7; the header says 4: both 3 lines away.
    diff = "--- a/f\n+++ b/f\n@@ -4,3 +4,3 @@\n a\n-b\n+B\n c\n"
    (patch,) = parse_diff(diff)
    with pytest.raises(DiffError, match="ambiguous.*lines 1 and 7"):
        plan_file(text, patch)


def test_nearest_of_several_matches_wins() -> None:
    text = "a\nb\nc\nx\nx\nx\nx\na\nb\nc\n"
    diff = "--- a/f\n+++ b/f\n@@ -6,3 +6,3 @@\n a\n-b\n+B\n c\n"
    assert patched(text, diff) == "a\nb\nc\nx\nx\nx\nx\na\nB\nc\n"


def test_header_without_numbers_needs_a_unique_match() -> None:
    assert patched(DOC, "--- a/x\n+++ b/x\n@@ @@\n-line 3\n+LINE 3\n") == DOC.replace(
        "line 3\n", "LINE 3\n"
    )
    (patch,) = parse_diff("--- a/x\n+++ b/x\n@@ @@\n-x\n+y\n")
    with pytest.raises(DiffError, match="ambiguous"):
        plan_file("x\ny\nx\n", patch)


def test_overlapping_hunks_raise() -> None:
    diff = (
        "--- a/x\n+++ b/x\n@@ -4,3 +4,3 @@\n line 4\n-line 5\n+LINE 5\n line 6\n"
        "@@ -5,2 +5,2 @@\n-line 5\n+Line 5\n line 6\n"
    )
    (patch,) = parse_diff(diff)
    with pytest.raises(DiffError, match="hunk 2 of 2.*overlaps hunk 1"):
        plan_file(DOC, patch)


def test_hunks_sharing_only_context_apply() -> None:
    diff = (
        "--- a/x\n+++ b/x\n@@ -3,3 +3,3 @@\n line 3\n-line 4\n+LINE 4\n line 5\n"
        "@@ -5,3 +5,3 @@\n line 5\n-line 6\n+LINE 6\n line 7\n"
    )
    expected = DOC.replace("line 4\n", "LINE 4\n").replace("line 6\n", "LINE 6\n")
    assert patched(DOC, diff) == expected


def test_hunks_out_of_order_come_back_in_document_order() -> None:
    diff = "--- a/x\n+++ b/x\n@@ -8 +8 @@\n-line 8\n+LINE 8\n@@ -2 +2 @@\n-line 2\n+LINE 2\n"
    (patch,) = parse_diff(diff)
    edits = plan_file(DOC, patch)
    assert [e.start_line for e in edits] == [1, 7]
    assert apply_edits(DOC, edits) == DOC.replace("line 8\n", "LINE 8\n").replace(
        "line 2\n", "LINE 2\n"
    )


def test_crlf_document_keeps_crlf() -> None:
    text = "one\r\ntwo\r\nthree\r\n"
    diff = "--- a/f\n+++ b/f\n@@ -1,3 +1,4 @@\n one\n-two\n+TWO\n+two and a half\n three\n"
    assert patched(text, diff) == "one\r\nTWO\r\ntwo and a half\r\nthree\r\n"


def test_crlf_diff_on_lf_document() -> None:
    diff = "--- a/f\r\n+++ b/f\r\n@@ -1,2 +1,2 @@\r\n one\r\n-two\r\n+TWO\r\n"
    assert patched("one\ntwo\n", diff) == "one\nTWO\n"


def test_document_without_final_newline_keeps_none() -> None:
    diff = "--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n one\n-two\n+TWO\n"
    assert patched("one\ntwo", diff) == "one\nTWO"
    # A line added after the unterminated last line: the old last line gets an end.
    diff = "--- a/f\n+++ b/f\n@@ -2 +2,2 @@\n two\n+three\n"
    assert patched("one\ntwo", diff) == "one\ntwo\nthree"
    # The '\ No newline' marker changes nothing about the final-newline state.
    diff = "--- a/f\n+++ b/f\n@@ -1 +1 @@\n-one\n\\ No newline at end of file\n+ONE\n"
    assert patched("one", diff) == "ONE"
    assert patched("one\n", diff) == "ONE\n"


def test_bare_empty_context_line_applies() -> None:
    text = "def f():\n    a = 1\n\n    return a\n"
    diff = (
        "--- a/f\n+++ b/f\n@@ -1,4 +1,4 @@\n def f():\n     a = 1\n\n-    return a\n"
        "+    return a + 1\n"
    )
    assert patched(text, diff) == "def f():\n    a = 1\n\n    return a + 1\n"


def test_trailing_whitespace_fallback() -> None:
    text = "def f():   \n    return 1  \n"
    diff = "--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n def f():\n-    return 1\n+    return 2\n"
    # The context line keeps the document's own (trailing) spaces.
    assert patched(text, diff) == "def f():   \n    return 2\n"


def test_trailing_whitespace_only_change_applies() -> None:
    text = "a  \nb\n"
    assert patched(text, "--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n-a  \n+a\n b\n") == "a\nb\n"


def test_leading_whitespace_difference_does_not_match() -> None:
    (patch,) = parse_diff("--- a/f\n+++ b/f\n@@ -1 +1 @@\n-return 1\n+return 2\n")
    with pytest.raises(DiffError, match="does not match"):
        plan_file("    return 1\n", patch)


def test_pure_insertion_hunk() -> None:
    diff = "--- a/x\n+++ b/x\n@@ -3,0 +4,2 @@\n+new a\n+new b\n"
    assert patched(DOC, diff) == DOC.replace("line 3\n", "line 3\nnew a\nnew b\n")


def test_context_only_hunk_gives_no_edit() -> None:
    diff = "--- a/x\n+++ b/x\n@@ -2,2 +2,2 @@\n line 2\n line 3\n@@ -5 +5 @@\n-line 5\n+LINE 5\n"
    (patch,) = parse_diff(diff)
    assert plan_file(DOC, patch) == (LineEdit(4, 5, ("LINE 5",)),)
    (patch,) = parse_diff("--- a/x\n+++ b/x\n@@ -2 +2 @@\n line 99\n")
    with pytest.raises(DiffError, match="does not match"):
        plan_file(DOC, patch)


def test_new_file() -> None:
    diff = "--- /dev/null\n+++ b/pkg/new.py\n@@ -0,0 +1,2 @@\n+import os\n+print(os.sep)\n"
    (patch,) = parse_diff(diff)
    assert plan_file("", patch) == (LineEdit(0, 0, ("import os", "print(os.sep)")),)
    assert patched("", diff) == "import os\nprint(os.sep)\n"


def test_new_file_over_existing_content_raises() -> None:
    (patch,) = parse_diff("--- /dev/null\n+++ b/x\n@@ -0,0 +1 @@\n+a\n")
    with pytest.raises(DiffError, match="already exists"):
        plan_file("something else\n", patch)


def test_deleted_file() -> None:
    diff = "--- a/x\n+++ /dev/null\n@@ -1,2 +0,0 @@\n-a\n-b\n"
    (patch,) = parse_diff(diff)
    assert plan_file("a\nb\n", patch) == (LineEdit(0, 2, ()),)
    assert patched("a\nb\n", diff) == ""
    with pytest.raises(DiffError, match="deletes this file"):
        plan_file("a\nb\nc\n", patch)


def test_apply_edits_is_pure_and_checks_order() -> None:
    text = "a\nb\nc\n"
    edits = [LineEdit(0, 1, ("A",)), LineEdit(2, 3, ("C", "D"))]
    assert apply_edits(text, edits) == "A\nb\nC\nD\n"
    assert text == "a\nb\nc\n"
    with pytest.raises(DiffError, match="out of order"):
        apply_edits(text, list(reversed(edits)))
    with pytest.raises(DiffError, match="past the end"):
        apply_edits(text, [LineEdit(2, 9, ())])


@pytest.mark.parametrize(
    ("text", "lines"),
    [
        ("", []),
        ("a", ["a"]),
        ("a\n", ["a"]),
        ("a\r\nb", ["a", "b"]),
        ("a\rb\r", ["a", "b"]),
        ("\n\n", ["", ""]),
    ],
)
def test_split_lines(text: str, lines: list[str]) -> None:
    assert split_lines(text) == lines


# -- match_path --------------------------------------------------------------------------------


def fp(path: str | None, new: str | None = "") -> FilePatch:
    return FilePatch(path, path if new == "" else new, ())


CANDIDATES = [
    "/w/proj/src/a.py",
    "/w/proj/xsrc/b.py",
    "file:///w/proj/lib/my%20mod.py",
    "/w/proj/README.md",
    "/w/other/README.md",
]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("src/a.py", "/w/proj/src/a.py"),
        ("a.py", "/w/proj/src/a.py"),
        ("proj/src/a.py", "/w/proj/src/a.py"),
        ("./src/a.py", "/w/proj/src/a.py"),
        ("/w/proj/src/a.py", "/w/proj/src/a.py"),
        ("src\\a.py", "/w/proj/src/a.py"),
        ("rc/a.py", None),  # components, not characters
        ("src/b.py", None),  # 'xsrc' is not 'src'
        ("lib/my mod.py", "file:///w/proj/lib/my%20mod.py"),
        ("other/src/a.py", None),
        ("proj/README.md", "/w/proj/README.md"),
    ],
)
def test_match_path(path: str, expected: str | None) -> None:
    assert match_path(fp(path), CANDIDATES) == expected


def test_match_path_ambiguous_raises() -> None:
    with pytest.raises(DiffError, match="ambiguous.*README.md"):
        match_path(fp("README.md"), CANDIDATES)


def test_match_path_same_file_twice_is_not_ambiguous() -> None:
    assert match_path(fp("a.py"), ["/w/src/a.py", "file:///w/src/a.py"]) == "/w/src/a.py"


def test_match_path_new_file_and_rename() -> None:
    assert match_path(fp(None, "src/new.py"), CANDIDATES) is None
    assert match_path(fp(None, "src/a.py"), CANDIDATES) == "/w/proj/src/a.py"
    # A rename applies to the old path's document.
    assert match_path(FilePatch("src/a.py", "src/c.py", ()), CANDIDATES) == "/w/proj/src/a.py"


def test_match_path_windows_uri() -> None:
    uri = "file:///C:/Users/me/proj/src/a.py"
    assert match_path(fp("src/a.py"), [uri]) == uri
