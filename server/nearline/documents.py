"""Read-only views of open documents: checked, split into lines once per version, with LSP
positions (UTF-16 by default) turned into code-point columns."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from nearline.errors import PositionError, UnsupportedDocumentError

BINARY_SAMPLE = 8192
BINARY_CONTROL_SHARE = 0.1
_TEXT_CONTROLS = {"\t", "\n", "\r", "\f", "\v", "\x1b"}


_OTHER_BREAKS = re.compile("[\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")
_LSP_LINES = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")


def split_lines(text: str) -> list[str]:
    """Lines with their ends, broken only where LSP breaks them (\\n, \\r\\n, \\r), not at the
    form feeds and Unicode separators that ``str.splitlines`` also breaks at."""
    if not _OTHER_BREAKS.search(text):
        return text.splitlines(keepends=True)
    return _LSP_LINES.findall(text)


@dataclass(frozen=True)
class DocumentView:
    uri: str
    version: int | None
    lines: Sequence[str]
    """Lines with their line ends; an empty document has none."""


def check_content(uri: str, text: str, max_bytes: int) -> None:
    """``UnsupportedDocumentError`` for a document too large or binary to complete in."""
    if len(text) > max_bytes or (
        len(text) * 4 > max_bytes and len(text.encode("utf-8", "replace")) > max_bytes
    ):
        raise UnsupportedDocumentError(
            f"{uri} is larger than completion.max_document_bytes ({max_bytes} bytes); "
            "autocomplete is off for it"
        )
    if "\x00" in text:
        raise UnsupportedDocumentError(f"{uri} holds binary data (NUL bytes); autocomplete is off")
    sample = text[:BINARY_SAMPLE]
    odd = sum(1 for ch in sample if (ch < " " and ch not in _TEXT_CONTROLS) or ch == "\ufffd")
    if sample and odd / len(sample) > BINARY_CONTROL_SHARE:
        raise UnsupportedDocumentError(
            f"{uri} looks binary or is not valid UTF-8; autocomplete is off for it"
        )


def _utf16_len(text: str) -> int:
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _utf16_to_index(text: str, units: int) -> int:
    if text.isascii():
        return units
    count = 0
    for i, ch in enumerate(text):
        if count >= units:
            return i
        count += 2 if ord(ch) > 0xFFFF else 1
    return len(text)


def _utf16_from_index(text: str, index: int) -> int:
    return _utf16_len(text[:index])


def to_code_points(
    view: DocumentView, line: int, character: int, encoding: str = "utf-16"
) -> tuple[int, int]:
    """Check a client position and return (line, code-point column); ``PositionError`` names
    the document's extent when the position lies past it."""
    lines = view.lines
    if line < 0 or character < 0:
        raise PositionError(f"position {line}:{character} is negative")
    last_line = len(lines) if (not lines or lines[-1].endswith(("\n", "\r"))) else len(lines) - 1
    if line > last_line:
        raise PositionError(
            f"position {line}:{character} is past the end of {view.uri} ({last_line + 1} lines)"
        )
    text = lines[line].rstrip("\r\n") if line < len(lines) else ""
    if encoding == "utf-32":
        width, column = len(text), character
    elif encoding == "utf-8":
        raw = text.encode("utf-8", "surrogatepass")
        width = len(raw)
        column = len(raw[:character].decode("utf-8", "ignore"))
    else:
        width, column = _utf16_len(text), _utf16_to_index(text, character)
    if character > width:
        raise PositionError(
            f"position {line}:{character} is past the end of line {line} "
            f"({width} characters) in {view.uri}"
        )
    return line, column


def to_client_units(text: str, column: int, encoding: str = "utf-16") -> int:
    """A code-point column in ``text`` as the client counts it."""
    if encoding == "utf-32":
        return column
    if encoding == "utf-8":
        return len(text[:column].encode("utf-8", "surrogatepass"))
    return _utf16_from_index(text, column)
