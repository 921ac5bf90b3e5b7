"""``evaluation.cases`` on the commits of a real repository: completion cases only from the code
lines a commit added, cut at a word boundary, whose document and expected text make the file
again; escalation cases only from one logical step of 1-5 text files, with the task kind from
the message."""

from __future__ import annotations

from pathlib import Path

import pytest

from nearline.documents import split_lines
from nearline.evaluation.cases import (
    FOLLOWING_LINES,
    MAX_CHANGED_LINES,
    CaseFile,
    CompletionCase,
    added_blocks,
    cases_of,
    completion_cases,
    escalation_case,
    is_ident,
    task_kind,
    word_boundaries,
)
from nearline.evaluation.history import Commit, FileDiff, GitRepo
from nearline.tasks import TaskKind
from support.gitrepo import (
    CART,
    DISCOUNT,
    DISCOUNT_CODE,
    FIX_MESSAGE,
    FIXED,
    OFF_BY_ONE,
    T0,
    UTIL,
    Repo,
    shop,
)

ALL = 1000
"""More cases than any commit here has lines."""


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    return shop(tmp_path_factory.mktemp("eval-cases") / "shop")


@pytest.fixture(scope="module")
def history(repo: Repo) -> dict[str, tuple[Commit, list[FileDiff]]]:
    """Each named commit of the shop with its changed files."""
    git_repo = GitRepo(repo.root)
    names = {sha: name for name, sha in repo.shas.items()}
    return {names[c.sha]: (c, git_repo.changes(c)) for c in git_repo.commits(50)}


def new_text(history: dict[str, tuple[Commit, list[FileDiff]]], name: str, path: str) -> str:
    [diff] = [d for d in history[name][1] if d.path == path]
    assert diff.new is not None
    return diff.new


def cursor_offset(case: CompletionCase) -> int:
    lines = split_lines(case.document)
    return sum(len(line) for line in lines[: case.line]) + case.column


def rebuilt(case: CompletionCase) -> str:
    """The document with the expected text written at the cursor."""
    at = cursor_offset(case)
    return case.document[:at] + case.expected + case.document[at:]


def test_only_the_added_code_lines_become_cases(history: dict) -> None:
    """The discount commit added blank lines, a docstring, a comment and three code lines."""
    commit, diffs = history["discount"]
    cases = completion_cases(commit, diffs, ALL)
    text = new_text(history, "discount", "cart.py")
    lines = [line.rstrip("\n") for line in split_lines(text)]
    assert sorted(lines[c.line] for c in cases) == sorted(DISCOUNT_CODE)
    assert {(c.commit, c.path, c.language) for c in cases} == {(commit.sha, "cart.py", "python")}


def test_document_and_expected_make_the_file_at_the_commit(history: dict) -> None:
    seen = 0
    for name, (commit, diffs) in history.items():
        for case in completion_cases(commit, diffs, ALL):
            assert rebuilt(case) == new_text(history, name, case.path), case.id
            seen += 1
    assert seen >= 15


def test_the_cursor_is_at_a_word_boundary_with_something_left_to_write(history: dict) -> None:
    for name, (commit, diffs) in history.items():
        for case in completion_cases(commit, diffs, ALL):
            line = split_lines(new_text(history, name, case.path))[case.line].rstrip("\n")
            col = case.column
            indent = len(line) - len(line.lstrip(" \t"))
            assert col in word_boundaries(line)
            assert col == indent or not (is_ident(line[col - 1]) and is_ident(line[col])), case.id
            assert line[col] != " "
            first = case.expected.split("\n", 1)[0]
            assert first == line[col:] and len(first.replace(" ", "")) >= 2


def test_the_block_s_next_lines_are_taken_out_too(history: dict) -> None:
    commit, diffs = history["discount"]
    text = new_text(history, "discount", "cart.py")
    lines = [line.rstrip("\n") for line in split_lines(text)]
    [block] = added_blocks(diffs[0].old, text)
    for case in completion_cases(commit, diffs, ALL):
        end = min(block.stop, case.line + 1 + FOLLOWING_LINES)
        assert case.expected.split("\n")[1:] == lines[case.line + 1 : end]
        assert case.expected.count("\n") <= FOLLOWING_LINES
    at = lines.index(DISCOUNT_CODE[0])
    [def_line] = [c for c in completion_cases(commit, diffs, ALL) if c.line == at]
    assert def_line.expected.split("\n")[1:] == [
        '    """The amount after a discount.',
        "",
        "    Percent is from 0 to 100.",
        '    """',
    ]
    last = lines.index(DISCOUNT_CODE[-1])
    [last_line] = [c for c in completion_cases(commit, diffs, ALL) if c.line == last]
    assert "\n" not in last_line.expected  # the block ends there


def test_word_boundaries() -> None:
    # A word's start, or where letters meet punctuation; never at a space, never inside a
    # word, and two characters at least are left to write.
    assert word_boundaries("    return a + b") == [4, 11]
    assert word_boundaries("x = f(y)") == [0, 4, 5, 6]
    assert word_boundaries("total(prices)") == [0, 5, 6]
    assert word_boundaries("   ") == []


def test_the_same_cases_every_time_and_per_commit_honoured(repo: Repo, history: dict) -> None:
    again = {c.sha: c for c in GitRepo(repo.root).commits(50)}
    for name, (commit, diffs) in history.items():
        first = completion_cases(commit, diffs, 2)
        assert first == completion_cases(again[commit.sha], GitRepo(repo.root).changes(commit), 2)
        assert len(first) <= 2
        assert completion_cases(commit, diffs, 0) == []
        everything = completion_cases(commit, diffs, ALL)
        assert len(completion_cases(commit, diffs, 1)) == min(1, len(everything)), name
        assert set(first) <= set(everything)


def test_the_cuts_are_drawn_from_the_commit_s_id_alone() -> None:
    """A seed of the commit's id, not of this process: every machine draws the same cuts."""
    commit = Commit("c0ffee" + "0" * 34, "b" * 40, T0, "add a discount and a cents helper")
    diffs = [
        FileDiff("cart.py", "M", CART, CART + DISCOUNT, True),
        FileDiff(
            "util.py", "M", UTIL, UTIL + "\n\ndef cents(amount):\n    return round(amount)\n", True
        ),
    ]
    cuts = [(c.path, c.line, c.column, c.expected) for c in completion_cases(commit, diffs, 3)]
    assert cuts == [
        ("cart.py", 22, 25, ") / 100\n    return amount - amount * rate"),
        ("util.py", 4, 10, "amount):\n    return round(amount)"),
        ("cart.py", 23, 20, "amount * rate"),
    ]


def test_cases_are_spread_over_the_commit_s_files(history: dict) -> None:
    commit, diffs = history["rename"]
    assert {c.path for c in completion_cases(commit, diffs, 2)} == {"cart.py", "util.py"}


def test_no_completion_cases_from_text_binary_or_removed_files(history: dict) -> None:
    assert completion_cases(*history["readme"], ALL) == []  # README.md only
    assert {c.path for c in completion_cases(*history["logo"], ALL)} == {"util.py"}  # no logo.png
    assert {c.path for c in completion_cases(*history["six"], ALL)} == {
        "cart.py",
        "util.py",
        "config.py",
        "shipping.py",
        "tax.py",
    }
    gone = FileDiff("old.py", "D", "def gone():\n    return 1\n", None, True)
    assert completion_cases(history["fix"][0], [gone], ALL) == []


def test_the_fix_commit_is_a_fix_request(history: dict) -> None:
    commit, diffs = history["fix"]
    case = escalation_case(commit, diffs)
    assert case is not None
    assert case.kind == TaskKind.FIX.value and case.instruction == FIX_MESSAGE
    before = new_text(history, "discount", "cart.py")
    after = new_text(history, "fix", "cart.py")
    assert case.files == (CaseFile("cart.py", before, after),)
    changed = split_lines(before).index(OFF_BY_ONE)
    assert (case.start_line, case.end_line) == (changed, changed)
    assert split_lines(after)[changed] == FIXED
    assert case.id == f"{commit.sha[:12]}:fix"


def test_a_refactor_of_two_files_starts_with_the_one_it_changed_most(history: dict) -> None:
    commit, diffs = history["rename"]
    case = escalation_case(commit, diffs)
    assert case is not None and case.kind == "refactor"
    assert [f.path for f in case.files] == ["cart.py", "util.py"]
    before = split_lines(case.files[0].before or "")
    assert before[case.start_line].startswith("from util import money")
    assert before[case.end_line].strip() == "return money(total(prices))"


def test_an_addition_selects_the_line_before_it(history: dict) -> None:
    commit, diffs = history["discount"]
    case = escalation_case(commit, diffs)
    assert case is not None and case.kind == "ask"
    last = len(split_lines(case.files[0].before or "")) - 1
    assert (case.start_line, case.end_line) == (last, last)


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("logo", "a binary file"),
        ("wip", "a message that says nothing"),
        ("tax", "only a new file"),
        ("six", "more than 5 files"),
        ("start", "the root commit: no files changed"),
    ],
)
def test_commits_that_are_not_one_logical_step(history: dict, name: str, why: str) -> None:
    assert escalation_case(*history[name]) is None, why
    assert cases_of(*history[name], 2).escalation is None


def test_messages_and_sizes_that_make_no_request(history: dict) -> None:
    commit, diffs = history["fix"]
    for message in ("fix it", "Revert the fix", "fixup! fix: off-by-one", "v1.2.3", "Bump deps"):
        short = Commit(commit.sha, commit.parent, commit.time, message)
        assert escalation_case(short, diffs) is None, message
    huge = FileDiff("a.py", "M", "x = 1\n", "".join(f"y{i} = {i}\n" for i in range(400)), True)
    assert MAX_CHANGED_LINES < 400
    assert escalation_case(commit, [huge]) is None


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ("fix: off-by-one in total()", TaskKind.FIX),
        ("Fixes the crash on an empty cart", TaskKind.FIX),
        ("Handle the regression in tax", TaskKind.FIX),
        ("add tests for total", TaskKind.TESTS),
        ("Refactoring the cart", TaskKind.REFACTOR),
        ("rename money to as_money", TaskKind.REFACTOR),
        ("tidy up util", TaskKind.REFACTOR),
        ("add a discount function", TaskKind.ASK),
        ("add a cart\n\nThis fixes a bug with tests", TaskKind.ASK),  # the subject decides
        ("prefix the totals", TaskKind.ASK),  # a word, not part of one
    ],
)
def test_task_kind_from_the_subject(message: str, kind: TaskKind) -> None:
    assert task_kind(message) is kind


def test_cases_of_gathers_both_kinds(history: dict) -> None:
    commit, diffs = history["fix"]
    cases = cases_of(commit, diffs, 2)
    assert cases.commit == commit.sha and cases.subject == "fix: off-by-one in total()"
    assert len(cases.completion) == 1  # one changed line
    assert cases.escalation == escalation_case(commit, diffs)


def test_a_commit_of_a_file_with_windows_line_ends(tmp_path: Path) -> None:
    repo = Repo.init(tmp_path / "crlf")
    repo.commit("one", "start", {"a.py": "def f():\r\n    return 1\r\n"})
    repo.commit(
        "two",
        "add g to a.py",
        {"a.py": "def f():\r\n    return 1\r\n\r\ndef g(x):\r\n    return x\r\n"},
    )
    git_repo = GitRepo(repo.root)
    commit = git_repo.commits(1)[0]
    cases = completion_cases(commit, git_repo.changes(commit), ALL)
    # Both added code lines; the documents keep their CRLFs, the expected texts have none.
    assert {(c.line, c.column, c.document, c.expected) for c in cases} == {
        (3, 0, "def f():\r\n    return 1\r\n\r\n\r\n", "def g(x):\n    return x"),
        (4, 4, "def f():\r\n    return 1\r\n\r\ndef g(x):\r\n    \r\n", "return x"),
    }
    assert len(cases) == 2


def commit_cases(root: Path, before: str, after: str) -> list[CompletionCase]:
    repo = Repo.init(root)
    repo.commit("one", "start", {"a.py": before})
    repo.commit("two", "change a.py", {"a.py": after})
    git_repo = GitRepo(repo.root)
    commit = git_repo.commits(1)[0]
    return completion_cases(commit, git_repo.changes(commit), ALL)


def test_a_line_that_only_gains_a_newline_at_the_end_is_not_added(tmp_path: Path) -> None:
    cases = commit_cases(
        tmp_path / "r",
        "def f():\n    return 1",
        "def f():\n    return 1\n\n\ndef g(x):\n    return x + 1\n",
    )
    lines = {split_lines(rebuilt(c))[c.line].rstrip("\n") for c in cases}
    assert lines == {"def g(x):", "    return x + 1"}


def test_line_ends_made_unix_add_no_code(tmp_path: Path) -> None:
    assert (
        commit_cases(tmp_path / "r", "def f():\r\n    return 1\r\n", "def f():\n    return 1\n")
        == []
    )


def test_a_file_without_a_newline_at_its_end(tmp_path: Path) -> None:
    after = "def f():\n    return 1\n\n\ndef g(x):\n    return x + 1"
    cases = commit_cases(tmp_path / "r", "def f():\n    return 1\n", after)
    assert cases and all(rebuilt(c) == after for c in cases)
