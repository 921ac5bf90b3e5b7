"""The prompt window around the cursor, built by small pure functions.

The window's first line (its anchor) stays put while the person types, and moves only in
large steps, so the prompt's token prefix is stable and llama.cpp's KV cache is reused: a
keystroke evaluates only the tokens it changed.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from nearline.completion.crossfile import Block

BLOCK_OPENERS = (":", "{", "(", "[", "=>", "->", " do", " then", "\\")
KEEP_RATIO = 0.4
"""After a move, the window holds this share of ``max_prefix_chars``; room to type the rest."""


class Mode(enum.Enum):
    LINE = "line"
    """Mid-line or end of line: stop at the end of the line."""
    BLOCK = "block"
    """Empty line after a block opener: several lines."""


@dataclass(frozen=True)
class CompletionContext:
    prefix: str
    """Window text before the cursor (from the anchor line)."""
    suffix: str
    """Window text after the cursor."""
    line_prefix: str
    line_suffix: str
    mode: Mode
    anchor: int
    """First line of the window."""
    line: int
    character: int
    """Cursor column in code points."""
    opener_indent: int = -1
    """Block mode: indentation of the line that opens the block; a suggested line indented no
    deeper ends the block."""
    below: str = ""
    """The window's whole lines after the cursor's line (``suffix`` without the line's
    rest): text that typing on the cursor's line does not change."""
    repo: tuple[Block, ...] = ()
    """Cross-file context: definitions from other files of the project, placed before the
    window; chosen again only when the window's anchor moves, so the prompt's start stays."""

    @property
    def indent(self) -> str:
        return self.line_prefix[: len(self.line_prefix) - len(self.line_prefix.lstrip())]


def trailing_whitespace(line_prefix: str) -> str:
    return line_prefix[len(line_prefix.rstrip(" \t")) :]


def prompt_prefix(ctx: CompletionContext) -> str:
    """The window before the cursor, less the spaces and tabs just before the cursor. BPE
    vocabularies attach leading spaces to the next word, so a prompt that ends in spaces (an
    auto-indented new line, ``return ``) is one the model rarely saw; it writes the spaces
    itself, and post-processing removes those already typed."""
    ws = trailing_whitespace(ctx.line_prefix)
    return ctx.prefix[: len(ctx.prefix) - len(ws)] if ws else ctx.prefix


def choose_anchor(
    lines: Sequence[str],
    line: int,
    line_prefix: str,
    previous: int | None,
    max_chars: int,
    keep_ratio: float = KEEP_RATIO,
) -> int:
    """Keep ``previous`` while the window before the cursor fits in ``max_chars``; otherwise
    start a new window that holds about ``keep_ratio`` of it, on a line boundary."""
    if previous is not None and 0 <= previous <= line:
        size = len(line_prefix) + sum(len(lines[i]) for i in range(previous, line))
        if size <= max_chars:
            return previous
    budget = int(max_chars * keep_ratio) - len(line_prefix)
    anchor = line
    while anchor > 0 and budget - len(lines[anchor - 1]) >= 0:
        budget -= len(lines[anchor - 1])
        anchor -= 1
    return anchor


def suffix_text(lines: Sequence[str], line: int, line_suffix: str, max_chars: int) -> str:
    """Text after the cursor, whole lines up to ``max_chars`` (the cursor's line always)."""
    parts = [line_suffix]
    size = len(line_suffix)
    for i in range(line + 1, len(lines)):
        if size + len(lines[i]) > max_chars:
            break
        parts.append(lines[i])
        size += len(lines[i])
    return "".join(parts)


def detect_mode(
    lines: Sequence[str], line: int, line_prefix: str, line_suffix: str
) -> tuple[Mode, int]:
    """Block mode only on an empty line whose previous non-blank line opens a block; with it,
    the opener's indentation."""
    if line_prefix.strip() or line_suffix.strip():
        return Mode.LINE, -1
    for i in range(line - 1, max(-1, line - 50), -1):
        text = lines[i].rstrip()
        if text:
            if text.endswith(BLOCK_OPENERS):
                return Mode.BLOCK, len(text) - len(text.lstrip())
            return Mode.LINE, -1
    return Mode.LINE, -1


def build_context(
    lines: Sequence[str],
    line: int,
    character: int,
    *,
    previous_anchor: int | None,
    max_prefix_chars: int,
    max_suffix_chars: int,
    keep_ratio: float = KEEP_RATIO,
) -> CompletionContext:
    """The window for a cursor at (``line``, ``character``); ``lines`` keep their line ends and
    the position is already checked and in code points."""
    current = lines[line] if line < len(lines) else ""
    body = current.rstrip("\r\n")
    line_prefix, line_suffix = body[:character], current[character:]
    anchor = choose_anchor(lines, line, line_prefix, previous_anchor, max_prefix_chars, keep_ratio)
    prefix = "".join(lines[anchor:line]) + line_prefix
    mode, opener_indent = detect_mode(lines, line, line_prefix, line_suffix)
    suffix = suffix_text(lines, line, line_suffix, max_suffix_chars)
    return CompletionContext(
        prefix=prefix,
        suffix=suffix,
        line_prefix=line_prefix,
        line_suffix=line_suffix.rstrip("\r\n"),
        mode=mode,
        anchor=anchor,
        line=line,
        character=character,
        opener_indent=opener_indent,
        below=suffix[len(line_suffix) :],
    )
