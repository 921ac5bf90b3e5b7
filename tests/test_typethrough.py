"""Unit tests for nearline.completion.typethrough: answering from the shown suggestion."""

from __future__ import annotations

from nearline.completion.context import CompletionContext, Mode
from nearline.completion.typethrough import ShownSuggestions

URI = "file:///a.py"
BEFORE = "import os\n"


def ctx(
    line_prefix: str, line_suffix: str = "", anchor: int = 0, before: str = BEFORE
) -> CompletionContext:
    return CompletionContext(
        prefix=before + line_prefix,
        suffix=line_suffix + "\n",
        line_prefix=line_prefix,
        line_suffix=line_suffix,
        mode=Mode.LINE,
        anchor=anchor,
        line=before.count("\n"),
        character=len(line_prefix),
    )


def shown(text: str = "foo(bar)", at: str = "x = ", **kw) -> ShownSuggestions:
    s = ShownSuggestions()
    s.remember(URI, ctx(at, **kw), text)
    return s


def test_typing_a_matching_prefix_returns_the_remainder():
    s = shown()
    assert s.remainder(URI, ctx("x = f")) == "oo(bar)"
    assert s.remainder(URI, ctx("x = foo(")) == "bar)"
    assert s.remainder(URI, ctx("x = foo(bar")) == ")"


def test_nothing_typed_yet_returns_none():
    assert shown().remainder(URI, ctx("x = ")) is None


def test_mismatching_char_returns_none():
    s = shown()
    assert s.remainder(URI, ctx("x = g")) is None
    assert s.remainder(URI, ctx("x = foo[")) is None


def test_typing_the_whole_suggestion_returns_none():
    s = shown()
    assert s.remainder(URI, ctx("x = foo(bar)")) is None
    assert s.remainder(URI, ctx("x = foo(bar))")) is None


def test_backspace_within_typed_text_still_matches():
    s = shown()
    assert s.remainder(URI, ctx("x = foo(b")) == "ar)"
    assert s.remainder(URI, ctx("x = foo")) == "(bar)"  # two backspaces
    assert s.remainder(URI, ctx("x = f")) == "oo(bar)"


def test_backspace_past_where_it_was_shown_returns_none():
    s = shown()
    assert s.remainder(URI, ctx("x =")) is None
    assert s.remainder(URI, ctx("y = f")) is None


def test_other_anchor_returns_none():
    s = shown()
    assert s.remainder(URI, ctx("x = f", anchor=1)) is None


def test_other_line_suffix_returns_none():
    s = shown("bar)", at="foo(", line_suffix="")
    assert s.remainder(URI, ctx("foo(b")) == "ar)"
    assert s.remainder(URI, ctx("foo(b", line_suffix=")")) is None


def test_multi_line_suggestion_typed_through_newline():
    s = ShownSuggestions()
    s.remember(URI, ctx("def f():"), "\n    return 1")
    typed = ctx("    ", before=BEFORE + "def f():\n")
    assert s.remainder(URI, typed) == "return 1"


def test_other_document_returns_none():
    s = shown()
    assert s.remainder("file:///b.py", ctx("x = f")) is None


def test_forget():
    s = shown()
    s.forget(URI)
    assert s.remainder(URI, ctx("x = f")) is None
    s.forget(URI)  # forgetting twice is fine
    s.forget("file:///never.py")


def test_remember_replaces_the_previous_suggestion():
    s = shown()
    s.remember(URI, ctx("x = f"), "lag")
    assert s.remainder(URI, ctx("x = fl")) == "ag"
    assert s.remainder(URI, ctx("x = fo")) is None


def test_empty_suggestion_never_matches():
    s = shown("")
    assert s.remainder(URI, ctx("x = f")) is None


def test_extend_lengthens_the_shown_text():
    s = shown("foo")
    assert s.remainder(URI, ctx("x = fo")) == "o"
    assert s.remainder(URI, ctx("x = foo")) is None
    s.extend(URI, ctx("x = "), "foo(bar)")
    assert s.remainder(URI, ctx("x = foo")) == "(bar)"
    assert s.remainder(URI, ctx("x = fo")) == "o(bar)"


def test_extend_ignores_text_that_does_not_continue_the_shown_one():
    s = shown("foo")
    s.extend(URI, ctx("x = "), "bar(1)")
    assert s.remainder(URI, ctx("x = f")) == "oo"
    assert s.remainder(URI, ctx("x = b")) is None


def test_extend_ignores_another_window():
    s = shown("foo")
    s.extend(URI, ctx("y = "), "foo(bar)")
    assert s.remainder(URI, ctx("x = foo")) is None


def test_extend_unknown_document_is_a_no_op():
    s = ShownSuggestions()
    s.extend(URI, ctx("x = "), "foo")
    assert s.remainder(URI, ctx("x = f")) is None
