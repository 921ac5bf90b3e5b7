"""``evaluation.scoring`` on known strings: exact match, edit similarity and what a Tab would
have written for completions; whether a change applied, how close its lines are to the real
change and the files it touched, for escalations."""

from __future__ import annotations

import pytest

from nearline.evaluation.scoring import (
    ChangeScore,
    CompletionScore,
    accepted_part,
    changed_lines,
    levenshtein,
    score_change,
    score_completion,
    similarity,
)


@pytest.mark.parametrize(
    ("a", "b", "distance"),
    [("", "", 0), ("abc", "", 3), ("kitten", "sitting", 3), ("flaw", "lawn", 2), ("ab", "ba", 2)],
)
def test_levenshtein(a: str, b: str, distance: int) -> None:
    assert levenshtein(a, b) == distance == levenshtein(b, a)


def test_similarity() -> None:
    assert similarity("", "") == 1.0
    assert similarity("return x", "return x") == 1.0
    assert similarity("kitten", "sitting") == pytest.approx(1 - 3 / 7)
    assert similarity("abc", "xyz") == 0.0
    assert similarity("", "abc") == 0.0


def test_a_suggestion_that_is_the_author_s_text() -> None:
    expected = "range(len(prices)):\n        amount += prices[i]"
    assert score_completion(expected, expected) == CompletionScore(
        shown=True,
        exact=True,
        edit_similarity=1.0,
        tab_chars=len(expected),
        expected_chars=len(expected),
    )
    # Trailing spaces aside, the first line is what counts for exact and similarity.
    first_only = score_completion("range(len(prices)):   ", expected)
    assert first_only.exact and first_only.edit_similarity == 1.0
    assert first_only.tab_chars == 0  # "   " is not what the author wrote next


def test_a_shorter_suggestion_is_a_prefix_a_tab_keeps() -> None:
    score = score_completion("range(len(pri", "range(len(prices)):")
    assert not score.exact
    assert score.edit_similarity == pytest.approx(1 - 6 / 19)
    assert score.tab_chars == len("range(len(pri") and score.expected_chars == 19


def test_whole_leading_lines_are_kept_when_the_rest_goes_wrong() -> None:
    expected = "total(prices)\n    return amount\n"
    suggestion = "total(prices)\n    return 0\n"
    score = score_completion(suggestion, expected)
    assert score.exact and score.tab_chars == len("total(prices)")
    assert accepted_part(suggestion, expected, 100, lines=False) == ""


def test_a_wrong_or_empty_suggestion_scores_nothing() -> None:
    assert score_completion("", "return x") == CompletionScore(False, False, 0.0, 0, 8)
    assert score_completion("   \n", "return x") == CompletionScore(False, False, 0.0, 0, 8)
    wrong = score_completion("yield y", "return x")
    assert wrong.shown and not wrong.exact and wrong.tab_chars == 0
    assert wrong.edit_similarity == pytest.approx(similarity("yield y", "return x"))


def test_accepted_part_is_cut_to_the_limit_and_never_blank() -> None:
    assert accepted_part("return amount", "return amount", 6) == "return"
    assert accepted_part("  ", "  x", 10) == ""
    assert accepted_part("a\nb\nc", "a\nb\nd", 10) == "a\nb"


def test_changed_lines_name_the_file_and_side() -> None:
    old = "a = 1\nb = 2\nc = 3\n"
    new = "a = 1\nb = 20   \nc = 3\nd = 4\n"
    assert changed_lines("m.py", old, new) == ["m.py -b = 2", "m.py +b = 20", "m.py +d = 4"]
    assert changed_lines("n.py", None, "x\n") == ["n.py +x"]
    assert changed_lines("o.py", "x\n", None) == ["o.py -x"]


BEFORE = {
    "cart.py": "def total(prices):\n    for i in range(len(prices) - 1):\n        pass\n",
    "util.py": "def money(x):\n    return x\n",
}
REAL = {"cart.py": BEFORE["cart.py"].replace(" - 1", "")}


def test_the_same_change_scores_one() -> None:
    assert score_change(BEFORE, REAL, dict(REAL)) == ChangeScore(True, 1.0, 1.0, None)
    assert score_change(BEFORE, REAL, dict(REAL), tests_pass=True).tests_pass is True


def test_a_different_change_scores_lower() -> None:
    unrelated = {"util.py": "def money(x):\n    return round(x, 2)\n"}
    score = score_change(BEFORE, REAL, unrelated)
    assert score.applies and score.files_jaccard == 0.0
    assert score.line_similarity < 0.5
    near = {"cart.py": BEFORE["cart.py"].replace(" - 1", " - 0")}
    close = score_change(BEFORE, REAL, near)
    assert close.files_jaccard == 1.0
    assert score.line_similarity < close.line_similarity < 1.0
    both = {**REAL, **unrelated}
    assert score_change(BEFORE, REAL, both).files_jaccard == 0.5


def test_an_answer_that_did_not_apply() -> None:
    assert score_change(BEFORE, REAL, None) == ChangeScore(False, 0.0, 0.0, None)
    assert score_change(BEFORE, REAL, None, tests_pass=True).tests_pass is None


def test_an_answer_that_changes_nothing() -> None:
    same = score_change(BEFORE, REAL, {"cart.py": BEFORE["cart.py"]})
    assert same.applies and same.line_similarity == 0.0 and same.files_jaccard == 0.0
