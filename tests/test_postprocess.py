"""Unit tests for nearline.completion.postprocess: each filter alone, then the whole pipeline."""

from __future__ import annotations

import pytest

from nearline.completion.context import CompletionContext, Mode
from nearline.completion.postprocess import (
    PIPELINE,
    balance_brackets,
    drop_blank,
    drop_repetition,
    drop_suffix_overlap,
    drop_typed_whitespace,
    keep_typed_indent,
    limit_scope,
    make_pipeline,
    postprocess,
    trim_trailing_whitespace,
)


def ctx(
    line_prefix: str = "",
    line_suffix: str = "",
    *,
    mode: Mode = Mode.LINE,
    opener_indent: int = -1,
    before: str = "",
    after: str = "",
) -> CompletionContext:
    """A context whose cursor line is ``line_prefix|line_suffix``; ``before`` holds earlier
    window lines, ``after`` the lines below (each ending with a newline)."""
    return CompletionContext(
        prefix=before + line_prefix,
        suffix=line_suffix + "\n" + after,
        line_prefix=line_prefix,
        line_suffix=line_suffix,
        mode=mode,
        anchor=0,
        line=before.count("\n"),
        character=len(line_prefix),
        opener_indent=opener_indent,
    )


def block(line_prefix: str = "    ", opener_indent: int = 0, after: str = "") -> CompletionContext:
    return ctx(
        line_prefix,
        "",
        mode=Mode.BLOCK,
        opener_indent=opener_indent,
        before="def f(x):\n",
        after=after,
    )


# -- limit_scope -----------------------------------------------------------------------------


def test_limit_scope_line_mode_cuts_at_newline():
    assert limit_scope("foo()\nbar()", ctx("x = ")) == "foo()"
    assert limit_scope("foo()", ctx("x = ")) == "foo()"
    assert limit_scope("\nfoo()", ctx("x = ")) == ""


def test_limit_scope_block_mode_stops_at_dedent_to_opener():
    text = "y = x + 1\n    return y\n\ndef g():\n    pass"
    assert limit_scope(text, block()) == "y = x + 1\n    return y\n"


def test_limit_scope_block_mode_keeps_deeper_lines_and_blank_lines():
    text = "if x:\n        a = 1\n\n    return a"
    assert limit_scope(text, block()) == text


def test_limit_scope_block_mode_nested_opener():
    c = block("        ", opener_indent=4)
    text = "a = 1\n        b = 2\n    return b"
    assert limit_scope(text, c) == "a = 1\n        b = 2"


def test_limit_scope_block_mode_first_line_always_kept():
    assert limit_scope("return 1", block()) == "return 1"


def test_limit_scope_block_mode_max_lines():
    text = "\n".join(f"    x{i} = {i}" for i in range(20))
    assert limit_scope(text, block(), max_lines=3) == "    x0 = 0\n    x1 = 1\n    x2 = 2"
    assert limit_scope(text, block()).count("\n") == 7  # default: 8 lines


# -- trim_trailing_whitespace ----------------------------------------------------------------


def test_trim_trailing_whitespace():
    c = ctx()
    assert trim_trailing_whitespace("foo()   ", c) == "foo()"
    assert trim_trailing_whitespace("a = 1  \n  b = 2\t\n\n   \n", c) == "a = 1\n  b = 2"
    assert trim_trailing_whitespace("  lead", c) == "  lead"
    assert trim_trailing_whitespace("   ", c) == ""


# -- drop_suffix_overlap ---------------------------------------------------------------------


def test_drop_suffix_overlap_closer_after_cursor():
    assert drop_suffix_overlap("x)", ctx("print(", ")")) == "x"


def test_drop_suffix_overlap_longer_text_after_cursor():
    assert drop_suffix_overlap("a, b):", ctx("def f(", "):")) == "a, b"
    assert drop_suffix_overlap("a, b)  ", ctx("def f(", ")")) == "a, b"


def test_drop_suffix_overlap_partial_overlap():
    # The suggestion ends with the start of what follows the cursor.
    assert drop_suffix_overlap("a, b)", ctx("def f(", "):")) == "a, b"


def test_drop_suffix_overlap_partial_overlap_not_for_words():
    assert drop_suffix_overlap("bar f", ctx("x = ", "foo()")) == "bar f"


def test_drop_suffix_overlap_no_overlap():
    assert drop_suffix_overlap("x + 1", ctx("print(", ")")) == "x + 1"
    assert drop_suffix_overlap("x + 1", ctx("y = ")) == "x + 1"


def test_drop_suffix_overlap_whole_following_line():
    c = block(after="    return y\n")
    assert drop_suffix_overlap("y = x * 2\n    return y\n", c) == "y = x * 2"
    assert drop_suffix_overlap("y = x * 2\n    z = y\n", c) == "y = x * 2\n    z = y\n"


def test_drop_suffix_overlap_skips_blank_lines_below():
    c = block(after="\n\n    return y\n")
    assert drop_suffix_overlap("y = 1\n    return y", c) == "y = 1"


def test_drop_suffix_overlap_balanced_call_keeps_its_own_closer():
    # "foo(x))" repeats the ")" after the cursor; "foo(x" would not.
    assert drop_suffix_overlap("foo(x))", ctx("print(", ")")) == "foo(x)"


def test_drop_suffix_overlap_does_not_unbalance_suggestion():
    assert drop_suffix_overlap("foo(x)", ctx("print(", ")")) == "foo(x)"


# -- balance_brackets ------------------------------------------------------------------------


def test_balance_brackets_cuts_at_closer_the_suffix_already_closes():
    assert balance_brackets("a)", ctx("x = ", ")")) == "a"
    assert balance_brackets("1, 2] + y", ctx("x = ", "]")) == "1, 2"


def test_balance_brackets_cuts_at_mismatched_closer():
    assert balance_brackets("x])", ctx("foo(")) == "x"
    assert balance_brackets("a(b]", ctx("y = ")) == "a(b"


def test_balance_brackets_keeps_closer_opened_on_cursor_line():
    assert balance_brackets("a, b)", ctx("foo(", ")")) == "a, b)"
    assert balance_brackets("g(1))", ctx("f(")) == "g(1))"


def test_balance_brackets_keeps_balanced_text():
    assert balance_brackets("{'a': [1, (2)]}", ctx("x = ")) == "{'a': [1, (2)]}"


def test_balance_brackets_keeps_closer_for_earlier_line():
    # A bracket opened on an earlier line and not closed after the cursor: keep the closer.
    assert balance_brackets(")", ctx("    b", before="foo(\n    a,\n")) == ")"
    assert balance_brackets("\n}", block(after="x\n")) == "\n}"


# -- drop_repetition -------------------------------------------------------------------------


def test_drop_repetition_periodic_text_is_dropped():
    c = ctx("f(")
    assert drop_repetition("a, a, a, a, a", c) == ""
    assert drop_repetition("foo foo foo foo foo", c) == ""


def test_drop_repetition_keeps_lines_up_to_repeated_line():
    text = "x = 1\ny = 2\nx = 1\nz = 3"
    assert drop_repetition(text, block()) == "x = 1\ny = 2"


def test_drop_repetition_repeated_line_compares_stripped():
    text = "foo()\n    foo()"
    assert drop_repetition(text, block()) == "foo()"


def test_drop_repetition_allows_short_repeated_lines():
    text = "if a:\n    }\n    }\nend"
    assert drop_repetition(text, block()) == text


def test_drop_repetition_keeps_ordinary_text():
    c = ctx("x = ")
    assert drop_repetition("foo(bar, baz)", c) == "foo(bar, baz)"
    assert drop_repetition("a, a, a", c) == "a, a, a"  # three times is not a loop


# -- drop_typed_whitespace ------------------------------------------------------------------


def test_drop_typed_whitespace_removes_what_the_cursor_line_already_has():
    assert drop_typed_whitespace("        return x", ctx("        ")) == "return x"
    assert drop_typed_whitespace(" x + 1", ctx("return ")) == "x + 1"


def test_drop_typed_whitespace_keeps_text_when_model_wrote_less_or_none():
    assert drop_typed_whitespace("    return x", ctx("        ")) == "return x"
    assert drop_typed_whitespace("(x)", ctx("return ")) == "(x)"
    assert drop_typed_whitespace(" x", ctx("return")) == " x"


# -- drop_blank ------------------------------------------------------------------------------


def test_drop_blank():
    c = ctx()
    assert drop_blank("   \n\t", c) == ""
    assert drop_blank("", c) == ""
    assert drop_blank(" x", c) == " x"


# -- the pipeline ----------------------------------------------------------------------------


def test_pipeline_order():
    steps = make_pipeline(5)
    assert steps[0].func is limit_scope and steps[0].keywords == {"max_lines": 5}
    assert steps[1:] == (
        drop_typed_whitespace,
        keep_typed_indent,
        trim_trailing_whitespace,
        drop_suffix_overlap,
        balance_brackets,
        drop_repetition,
        trim_trailing_whitespace,
        drop_blank,
    )
    assert PIPELINE[0].keywords == {"max_lines": 8}


def test_postprocess_line_mode_cuts_at_newline():
    assert postprocess("foo(1)\nbar(2)\n", ctx("x = ")) == "foo(1)"


def test_postprocess_line_mode_trailing_whitespace():
    assert postprocess("foo(1)   \n", ctx("x = ")) == "foo(1)"


def test_postprocess_suffix_overlap():
    assert postprocess("x)", ctx("print(", ")")) == "x"
    assert postprocess("x):\n    pass", ctx("def f(", "):")) == "x"


def test_postprocess_unmatched_closer():
    assert postprocess("a] + b", ctx("x = f(", ")")) == "a"


def test_postprocess_block_mode_stops_at_dedent():
    text = "y = x + 1\n    return y\n\ndef g():\n    pass\n"
    assert postprocess(text, block()) == "y = x + 1\n    return y"


def test_postprocess_block_mode_max_lines():
    text = "\n".join(f"    x{i} = {i}" for i in range(20))
    # The cursor's line already holds the first line's indentation.
    assert postprocess(text, block(), make_pipeline(4)) == "x0 = 0\n" + "\n".join(
        f"    x{i} = {i}" for i in range(1, 4)
    )
    assert postprocess(text, block()).count("\n") == 7


def test_postprocess_block_mode_drops_line_already_below():
    c = block(after="    return y\n")
    assert postprocess("y = x\n    return y\n", c) == "y = x"


def test_postprocess_repetition():
    assert postprocess("a, a, a, a, a", ctx("f(", ")")) == ""
    text = "a = 1\n    b = 2\n    a = 1\n    b = 2"
    assert postprocess(text, block()) == "a = 1\n    b = 2"


@pytest.mark.parametrize("text", ["", "   ", "\n\n", "  \n\t\n"])
def test_postprocess_blank_is_no_suggestion(text):
    assert postprocess(text, ctx("x = ")) == ""
    assert postprocess(text, block()) == ""


def test_postprocess_only_overlap_is_no_suggestion():
    assert postprocess(")", ctx("print(x", ")")) == ""


def test_postprocess_leaves_good_suggestion_alone():
    assert postprocess("range(10):", ctx("for i in ")) == "range(10):"


# -- indentation at line starts ----------------------------------------------------------------


def test_after_auto_indent_the_suggestion_starts_at_the_typed_indentation():
    # Seen with Qwen2.5-Coder: "   def read_line(...)" after four typed spaces.
    typed = ctx("    ", before="class Reader:\n")
    assert postprocess("       def read_line(self):", typed) == "def read_line(self):"
    assert postprocess("def read_line(self):", typed) == "def read_line(self):"
    assert keep_typed_indent("\t x = 1", ctx("\t")) == "x = 1"


def test_later_lines_and_unindented_lines_keep_their_indentation():
    body = "if x:\n        y = 1"
    assert keep_typed_indent("  " + body, block("    ")) == body
    assert keep_typed_indent("    return x", ctx("")) == "    return x"  # nothing typed
    assert keep_typed_indent(" + 1", ctx("x =")) == " + 1"  # not a line start
