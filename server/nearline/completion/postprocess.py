"""Post-processing: a list of small filters, each ``(text, context) -> text``.

An empty string from any filter means "no suggestion". Order matters and is the list's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial

from nearline.completion.context import CompletionContext, Mode, trailing_whitespace

Filter = Callable[[str, CompletionContext], str]

OPENERS = {"(": ")", "[": "]", "{": "}"}
CLOSERS = {v: k for k, v in OPENERS.items()}


def drop_typed_whitespace(text: str, ctx: CompletionContext) -> str:
    """The prompt left out the whitespace typed before the cursor (``prompt_prefix``); drop
    as much of it as the model wrote again."""
    ws = trailing_whitespace(ctx.line_prefix)
    n = 0
    while n < len(ws) and n < len(text) and text[n] == ws[n]:
        n += 1
    return text[n:]


def keep_typed_indent(text: str, ctx: CompletionContext) -> str:
    """On a line holding only the indentation the editor put there, the suggestion starts at
    that indentation: whitespace it adds on its first line would misindent it on Tab."""
    if ctx.line_prefix and not ctx.line_prefix.strip():
        first, newline, rest = text.partition("\n")
        return first.lstrip(" \t") + newline + rest
    return text


def limit_scope(text: str, ctx: CompletionContext, max_lines: int = 8) -> str:
    """Line mode: up to the end of the line. Block mode: at most ``max_lines`` lines, ending
    before the first line indented no deeper than the line that opened the block."""
    if ctx.mode is Mode.LINE:
        return text.split("\n", 1)[0]
    lines = text.split("\n")
    kept = [lines[0]]
    for line in lines[1:]:
        stripped = line.lstrip()
        if len(kept) >= max_lines and stripped:
            break
        if stripped and len(line) - len(stripped) <= ctx.opener_indent:
            break
        kept.append(line)
    return "\n".join(kept)


def trim_trailing_whitespace(text: str, ctx: CompletionContext) -> str:
    """Strip trailing spaces on every line and trailing blank lines."""
    return "\n".join(line.rstrip() for line in text.split("\n")).rstrip("\n")


def drop_suffix_overlap(text: str, ctx: CompletionContext) -> str:
    """Drop the end of the suggestion that repeats what already follows the cursor: on the
    cursor's line (``foo(x))`` before ``)``), unless the suggestion closes that bracket
    itself (``foo(x)``); or whole lines that repeat the lines after the cursor."""
    after = ctx.line_suffix.strip()
    if after:
        body = text.rstrip()
        for size in range(min(len(after), len(body)), 0, -1):
            overlap = after[:size]
            if body.endswith(overlap) and (size == len(after) or not overlap.isalnum()):
                trimmed = body[:-size]
                before, rest = ctx.line_prefix, ctx.line_suffix
                if _unbalanced(before + trimmed + rest) <= _unbalanced(before + body + rest):
                    return trimmed
                return text
        return text
    next_lines = [ln.strip() for ln in ctx.suffix.split("\n")[1:] if ln.strip()]
    if not next_lines:
        return text
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if i > 0 and line.strip() and line.strip() == next_lines[0]:
            return "\n".join(lines[:i])
    return text


def _unbalanced(text: str) -> int:
    """Brackets left open plus closers with no opener."""
    stack: list[str] = []
    stray = 0
    for ch in text:
        if ch in OPENERS:
            stack.append(ch)
        elif ch in CLOSERS:
            if stack and stack[-1] == CLOSERS[ch]:
                stack.pop()
            else:
                stray += 1
    return len(stack) + stray


def balance_brackets(text: str, ctx: CompletionContext) -> str:
    """Cut the suggestion at the first closing bracket that nothing before it opened (on the
    cursor's line or in the suggestion) and that the text after the cursor already closes."""
    stack = _open_brackets(ctx.line_prefix)
    for i, ch in enumerate(text):
        if ch in OPENERS:
            stack.append(ch)
        elif ch in CLOSERS:
            if stack and stack[-1] == CLOSERS[ch]:
                stack.pop()
            elif not stack:
                # Closes a bracket opened on an earlier line, or a stray one.
                if ctx.mode is Mode.LINE and ch in ctx.line_suffix:
                    return text[:i]
            else:
                return text[:i]
    return text


def _open_brackets(text: str) -> list[str]:
    stack: list[str] = []
    for ch in text:
        if ch in OPENERS:
            stack.append(ch)
        elif ch in CLOSERS and stack and stack[-1] == CLOSERS[ch]:
            stack.pop()
    return stack


def drop_repetition(text: str, ctx: CompletionContext) -> str:
    """Keep lines up to the first one that repeats an earlier suggestion line, and drop a
    suggestion that is one short piece over and over (``a, a, a, a``)."""
    lines = text.split("\n")
    seen: set[str] = set()
    for i, line in enumerate(lines):
        key = line.strip()
        if key and key in seen and len(key) > 2:
            lines = lines[:i]
            break
        seen.add(key)
    text = "\n".join(lines)
    return "" if _is_periodic(text.strip()) else text


def _is_periodic(text: str, min_repeats: int = 4) -> bool:
    n = len(text)
    for period in range(1, n // min_repeats + 1):
        unit = text[:period]
        if unit.strip() and (unit * (n // period + 1))[:n] == text:
            return True
    return False


def drop_blank(text: str, ctx: CompletionContext) -> str:
    """Whitespace-only suggestions are none."""
    return text if text.strip() else ""


def make_pipeline(max_block_lines: int = 8) -> tuple[Filter, ...]:
    return (
        partial(limit_scope, max_lines=max_block_lines),
        drop_typed_whitespace,
        keep_typed_indent,
        trim_trailing_whitespace,
        drop_suffix_overlap,
        balance_brackets,
        drop_repetition,
        trim_trailing_whitespace,
        drop_blank,
    )


PIPELINE = make_pipeline()


def postprocess(text: str, ctx: CompletionContext, pipeline: tuple[Filter, ...] = PIPELINE) -> str:
    for step in pipeline:
        text = step(text, ctx)
        if not text:
            return ""
    return text


def confidence(logprobs: Sequence[float]) -> float:
    """How sure the model was of a suggestion: the geometric mean of its tokens'
    probabilities (1.0 for none)."""
    return math.exp(sum(logprobs) / len(logprobs)) if logprobs else 1.0


def worth_showing(text: str, logprobs: Sequence[float], min_confidence: float) -> str:
    """``text``, or nothing when the model was too unsure of it: a suggestion shown and not
    taken costs the person a look, and teaches them to ignore the ghost text."""
    return text if confidence(logprobs) >= min_confidence else ""
