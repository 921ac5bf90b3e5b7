"""Unit tests for nearline.completion.context: the prompt window around the cursor."""

from __future__ import annotations

import pytest

from nearline.completion.context import (
    KEEP_RATIO,
    CompletionContext,
    Mode,
    build_context,
    choose_anchor,
    detect_mode,
    prompt_prefix,
    suffix_text,
    trailing_whitespace,
)

# 100 lines of exactly 10 characters each (line end included).
TEN = [f"line {i:04d}\n" for i in range(100)]
assert all(len(x) == 10 for x in TEN)


def window_size(lines, anchor, line, line_prefix):
    return len(line_prefix) + sum(len(lines[i]) for i in range(anchor, line))


# -- choose_anchor ---------------------------------------------------------------------------


def test_choose_anchor_first_window_holds_about_half_of_max():
    anchor = choose_anchor(TEN, 50, "", None, 100, keep_ratio=0.5)
    assert anchor == 45
    assert window_size(TEN, anchor, 50, "") == int(100 * 0.5)


def test_choose_anchor_counts_the_line_prefix_in_the_budget():
    # 50 chars of budget, 20 taken by the cursor's line: three whole lines fit.
    assert choose_anchor(TEN, 50, "x" * 20, None, 100, keep_ratio=0.5) == 47


def test_choose_anchor_keeps_previous_while_window_fits():
    # Typing down from a window that started at line 45: up to 100 chars the anchor stays.
    for line in range(45, 56):
        assert choose_anchor(TEN, line, "", 45, 100, keep_ratio=0.5) == 45
    # Typing on the line itself also keeps it while it fits.
    assert choose_anchor(TEN, 54, "x" * 10, 45, 100, keep_ratio=0.5) == 45


def test_choose_anchor_moves_in_a_large_step_when_window_overflows():
    assert window_size(TEN, 45, 56, "") == 110
    anchor = choose_anchor(TEN, 56, "", 45, 100, keep_ratio=0.5)
    assert anchor == 51
    assert window_size(TEN, anchor, 56, "") == 50
    # A long line prefix that overflows the kept window also moves it.
    assert choose_anchor(TEN, 55, "x" * 11, 45, 100, keep_ratio=0.5) == 52


def test_choose_anchor_is_stable_between_large_steps():
    anchors = []
    previous = None
    for line in range(50, 100):
        previous = choose_anchor(TEN, line, "", previous, 100, keep_ratio=0.5)
        anchors.append(previous)
    moves = sum(1 for a, b in zip(anchors, anchors[1:], strict=False) if a != b)
    # 50 lines of typing with a 100-char window that restarts at 50 chars: a move every
    # ~5 lines, never one per line.
    assert 5 <= moves <= 10
    for a, b in zip(anchors, anchors[1:], strict=False):
        assert b == a or b - a >= 5


def test_choose_anchor_moves_when_cursor_goes_above_it():
    assert choose_anchor(TEN, 40, "", 45, 100, keep_ratio=0.5) == 35
    assert choose_anchor(TEN, 0, "", 45, 100, keep_ratio=0.5) == 0


def test_choose_anchor_ignores_negative_previous():
    assert choose_anchor(TEN, 50, "", -1, 100, keep_ratio=0.5) == 45


def test_choose_anchor_stops_at_document_start():
    assert choose_anchor(TEN, 2, "", None, 100, keep_ratio=0.5) == 0
    assert choose_anchor([], 0, "", None, 100, keep_ratio=0.5) == 0


def test_choose_anchor_cursor_line_prefix_larger_than_budget():
    assert choose_anchor(TEN, 50, "x" * 80, None, 100, keep_ratio=0.5) == 50


# -- suffix_text -----------------------------------------------------------------------------


def test_suffix_text_takes_whole_lines_up_to_max():
    lines = ["a\n", "bb\n", "ccc\n", "d\n"]
    assert suffix_text(lines, 0, "\n", 8) == "\nbb\nccc\n"
    assert suffix_text(lines, 0, "\n", 7) == "\nbb\n"
    assert suffix_text(lines, 0, "\n", 100) == "\nbb\nccc\nd\n"


def test_suffix_text_always_holds_the_cursor_line():
    lines = ["0123456789\n", "next\n"]
    assert suffix_text(lines, 0, "23456789\n", 3) == "23456789\n"
    assert suffix_text(lines, 0, "x)\n", 0) == "x)\n"


def test_suffix_text_at_last_line():
    assert suffix_text(["a\n", "b"], 1, "b", 100) == "b"
    assert suffix_text([], 0, "", 100) == ""


def test_suffix_text_stops_at_first_line_that_does_not_fit():
    lines = ["x\n", "long line\n", "y\n"]
    assert suffix_text(lines, 0, "\n", 5) == "\n"


# -- detect_mode -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "opener, indent",
    [
        ("def f():\n", 0),
        ("    if x:\n", 4),
        ("function f() {\n", 0),
        ("  {\n", 2),
        ("items = [\n", 0),
        ("call(\n", 0),
        ("const f = () =>\n", 0),
        ("fn f() ->\n", 0),
        ("5.times do\n", 0),
        ("if x then\n", 0),
        ("def f():\r\n", 0),
    ],
)
def test_detect_mode_block_after_opener(opener, indent):
    lines = [opener, "\n"]
    assert detect_mode(lines, 1, "", "\n") == (Mode.BLOCK, indent)


def test_detect_mode_block_on_indented_empty_line():
    lines = ["def f():\n", "    \n"]
    assert detect_mode(lines, 1, "    ", "\n") == (Mode.BLOCK, 0)


def test_detect_mode_skips_blank_lines_to_the_opener():
    lines = ["class A:\n", "\n", "   \n", "\n"]
    assert detect_mode(lines, 3, "", "") == (Mode.BLOCK, 0)


def test_detect_mode_block_on_line_after_trailing_newline():
    lines = ["def f():\n"]
    assert detect_mode(lines, 1, "", "") == (Mode.BLOCK, 0)


def test_detect_mode_line_when_line_has_text():
    lines = ["def f():\n", "    return\n"]
    assert detect_mode(lines, 1, "    return", "\n") == (Mode.LINE, -1)
    assert detect_mode(lines, 1, "    ", "return\n") == (Mode.LINE, -1)


def test_detect_mode_line_when_previous_line_opens_nothing():
    lines = ["x = 1\n", "\n"]
    assert detect_mode(lines, 1, "", "\n") == (Mode.LINE, -1)
    lines = ["def f():\n", "    x = 1\n", "\n"]
    assert detect_mode(lines, 2, "", "\n") == (Mode.LINE, -1)


def test_detect_mode_line_at_document_start():
    assert detect_mode(["\n"], 0, "", "\n") == (Mode.LINE, -1)
    assert detect_mode([], 0, "", "") == (Mode.LINE, -1)
    assert detect_mode(["\n", "\n"], 1, "", "\n") == (Mode.LINE, -1)


# -- build_context ---------------------------------------------------------------------------


def ctx_for(lines, line, character, previous=None, max_prefix=1200, max_suffix=400):
    return build_context(
        lines,
        line,
        character,
        previous_anchor=previous,
        max_prefix_chars=max_prefix,
        max_suffix_chars=max_suffix,
        keep_ratio=0.5,
    )


def test_build_context_mid_line():
    lines = ["def f(x):\n", "    return x\n", "\n", "print(f(1))\n"]
    ctx = ctx_for(lines, 1, 4)
    assert ctx == CompletionContext(
        prefix="def f(x):\n    ",
        suffix="return x\n\nprint(f(1))\n",
        line_prefix="    ",
        line_suffix="return x",
        mode=Mode.LINE,
        anchor=0,
        line=1,
        character=4,
        opener_indent=-1,
        below="\nprint(f(1))\n",
    )
    assert ctx.indent == "    "


def test_build_context_end_of_line():
    lines = ["x = foo(\n", "y = 2\n"]
    ctx = ctx_for(lines, 0, 8)
    assert ctx.prefix == "x = foo("
    assert ctx.line_prefix == "x = foo("
    assert ctx.line_suffix == ""
    assert ctx.suffix == "\ny = 2\n"
    assert ctx.below == "y = 2\n"
    assert ctx.mode is Mode.LINE
    assert ctx.indent == ""


def test_build_context_block_mode():
    lines = ["class A:\n", "    def f(self):\n", "        \n", "x = A()\n"]
    ctx = ctx_for(lines, 2, 8)
    assert ctx.mode is Mode.BLOCK
    assert ctx.opener_indent == 4
    assert ctx.prefix == "class A:\n    def f(self):\n        "
    assert ctx.line_prefix == "        "
    assert ctx.line_suffix == ""
    assert ctx.suffix == "\nx = A()\n"
    assert ctx.indent == "        "


def test_build_context_crlf_line_ends():
    lines = ["x = 1\r\n", "y = 2\r\n"]
    ctx = ctx_for(lines, 0, 5)
    assert ctx.line_prefix == "x = 1"
    assert ctx.line_suffix == ""
    assert ctx.suffix == "\r\ny = 2\r\n"
    ctx = ctx_for(lines, 0, 2)
    assert ctx.line_suffix == "= 1"


def test_build_context_empty_document():
    ctx = ctx_for([], 0, 0)
    assert (ctx.prefix, ctx.suffix, ctx.line_prefix, ctx.line_suffix) == ("", "", "", "")
    assert ctx.mode is Mode.LINE
    assert ctx.anchor == 0


def test_build_context_line_after_trailing_newline():
    ctx = ctx_for(["def f():\n"], 1, 0)
    assert ctx.prefix == "def f():\n"
    assert ctx.suffix == ""
    assert ctx.mode is Mode.BLOCK
    assert ctx.opener_indent == 0


def test_build_context_window_starts_at_anchor():
    ctx = ctx_for(TEN, 50, 3, max_prefix=100)
    assert ctx.anchor == 46  # 50 chars of budget less the 3 of the line prefix
    assert ctx.prefix == "".join(TEN[46:50]) + "lin"
    assert ctx.line_prefix == "lin"
    assert ctx.line_suffix == "e 0050"


def test_build_context_keeps_previous_anchor_while_it_fits():
    ctx = ctx_for(TEN, 52, 0, previous=45, max_prefix=100)
    assert ctx.anchor == 45
    assert ctx.prefix.startswith(TEN[45])
    ctx = ctx_for(TEN, 57, 0, previous=45, max_prefix=100)
    assert ctx.anchor == 52
    assert ctx.prefix == "".join(TEN[52:57])


def test_build_context_suffix_bounded_by_max_suffix_chars():
    ctx = ctx_for(TEN, 10, 9, max_suffix=25)
    assert ctx.suffix == "\n" + TEN[11] + TEN[12]


def test_default_keep_ratio_leaves_room_to_type():
    assert 0.3 <= KEEP_RATIO <= 0.6
    anchor = choose_anchor(TEN, 50, "", None, 100)
    assert window_size(TEN, anchor, 50, "") <= int(100 * KEEP_RATIO)


def test_trailing_whitespace_and_prompt_prefix():
    assert trailing_whitespace("    ") == "    "
    assert trailing_whitespace("return \t") == " \t"
    assert trailing_whitespace("x") == ""
    ctx = ctx_for(["def f():\n", "    \n"], 1, 4)
    assert ctx.prefix == "def f():\n    "
    assert prompt_prefix(ctx) == "def f():\n"
    ctx = ctx_for(["x = 1\n"], 0, 5)
    assert prompt_prefix(ctx) == "x = 1"
