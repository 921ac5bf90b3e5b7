"""Read-only views of open documents: checked, split into lines once per version, with LSP
positions (UTF-16 by default) turned into code-point columns."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath
from urllib.parse import unquote, urlparse

from nearline.errors import PositionError, UnsupportedDocumentError

BINARY_SAMPLE = 8192
BINARY_CONTROL_SHARE = 0.1
_TEXT_CONTROLS = {"\t", "\n", "\r", "\f", "\v", "\x1b"}


LANGUAGES = {
    ".py": "python",
    ".pyi": "python",
    ".js": "javascript",
    ".jsx": "javascript",
    ".ts": "typescript",
    ".tsx": "typescript",
    ".go": "go",
    ".rs": "rust",
    ".java": "java",
    ".kt": "kotlin",
    ".c": "c",
    ".h": "c",
    ".cc": "cpp",
    ".cpp": "cpp",
    ".hpp": "cpp",
    ".cs": "csharp",
    ".rb": "ruby",
    ".php": "php",
    ".swift": "swift",
    ".lua": "lua",
    ".sh": "shell",
    ".sql": "sql",
    ".md": "markdown",
    ".toml": "toml",
    ".yaml": "yaml",
    ".yml": "yaml",
    ".json": "json",
    ".html": "html",
    ".css": "css",
}


def path_of_uri(uri: str) -> Path | None:
    """The file-system path of a ``file:`` URI (None for other schemes); ``file:///C:/x``
    gives ``C:/x``."""
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        return None
    path = unquote(parsed.path)
    return Path(path[1:] if re.match(r"^/[A-Za-z]:", path) else path)


def language_of(path: str) -> str:
    """The language of a file, from its extension ("" when unknown)."""
    return LANGUAGES.get(PurePath(path).suffix.lower(), "")


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
    _check_size(uri, text, len(text), max_bytes)
    if "\x00" in text:
        raise UnsupportedDocumentError(f"{uri} holds binary data (NUL bytes); autocomplete is off")
    _check_sample(uri, text[:BINARY_SAMPLE])


def _check_size(uri: str, text: str | Sequence[str], chars: int, max_bytes: int) -> None:
    """``chars`` is ``text``'s length; its UTF-8 size is counted only when it may matter."""
    if chars > max_bytes or (chars * 4 > max_bytes and _utf8_size(text) > max_bytes):
        raise UnsupportedDocumentError(
            f"{uri} is larger than completion.max_document_bytes ({max_bytes} bytes); "
            "autocomplete is off for it"
        )


def _utf8_size(text: str | Sequence[str]) -> int:
    parts = [text] if isinstance(text, str) else text
    return sum(len(part.encode("utf-8", "replace")) for part in parts)


def _check_sample(uri: str, sample: str) -> None:
    odd = sum(1 for ch in sample if (ch < " " and ch not in _TEXT_CONTROLS) or ch == "\ufffd")
    if sample and odd / len(sample) > BINARY_CONTROL_SHARE:
        raise UnsupportedDocumentError(
            f"{uri} looks binary or is not valid UTF-8; autocomplete is off for it"
        )


class OpenDocument:
    """An open document's lines, kept in step with the editor's incremental changes, and its
    content check (size, binary), redone only where a change can alter it: a keystroke costs
    the lines it touches, not a split and a scan of the whole document.

    ``view()`` is a snapshot: a change builds a new list of lines and never mutates one a view
    holds. Positions given to ``change`` are code points (see ``to_code_points``)."""

    def __init__(
        self, uri: str, text: str, version: int | None, max_bytes: int, language: str = ""
    ) -> None:
        self.uri = uri
        self.max_bytes = max_bytes
        self.language = language
        """The editor's language id ("python", ...)."""
        self.replace(text, version)

    def replace(self, text: str, version: int | None) -> None:
        """The whole text anew (open, a full-document change, or a resync)."""
        self.version = version
        self.lines: list[str] = split_lines(text)
        self.chars = len(text)
        self.problem: UnsupportedDocumentError | None = None
        try:
            check_content(self.uri, text, self.max_bytes)
        except UnsupportedDocumentError as exc:
            self.problem = exc

    def text(self) -> str:
        return "".join(self.lines)

    def view(self) -> DocumentView:
        """The current lines; ``UnsupportedDocumentError`` when the content is not for
        completion."""
        if self.problem is not None:
            raise self.problem
        return DocumentView(self.uri, self.version, self.lines)

    def change(
        self,
        start: tuple[int, int],
        end: tuple[int, int],
        text: str,
        version: int | None,
    ) -> None:
        """Replace the text from ``start`` to ``end`` ((line, code-point column); a column past
        a line's end means its end, a line past the last means the document's end) with
        ``text``."""
        lines = self.lines
        n = len(lines)
        (sl, sc), (el, ec) = (self._clamp(*p) for p in sorted((start, end)))
        head = lines[sl][:sc] if sl < n else ""
        tail = lines[el][ec:] if el < n else ""
        stop = min(el + 1, n)
        removed = sum(len(line) for line in lines[sl:stop]) - len(head) - len(tail)
        joined = head + text + tail
        # Line breaks meeting at a seam ("\r" then "\n") are one break, as a new split sees it.
        if joined.endswith("\r") and stop < n and lines[stop].startswith("\n"):
            joined += lines[stop]
            stop += 1
        if sl > 0 and joined.startswith("\n") and lines[sl - 1].endswith("\r"):
            sl -= 1
            joined = lines[sl] + joined
        self.lines = [*lines[:sl], *split_lines(joined), *lines[stop:]]
        self.chars += len(text) - removed
        self.version = version
        self._recheck(text, sl)

    def _clamp(self, line: int, column: int) -> tuple[int, int]:
        lines = self.lines
        if line >= len(lines):  # the document's end: after the last line, or at its end
            if lines and not lines[-1].endswith(("\n", "\r")):
                return len(lines) - 1, len(lines[-1])
            return len(lines), 0
        return line, max(0, min(column, len(lines[line].rstrip("\r\n"))))

    def _recheck(self, inserted: str, start_line: int) -> None:
        if self.problem is not None:  # it may be whole again: look at all of it
            self.replace(self.text(), self.version)
            return
        try:
            _check_size(self.uri, self.lines, self.chars, self.max_bytes)
            if "\x00" in inserted:
                raise UnsupportedDocumentError(
                    f"{self.uri} holds binary data (NUL bytes); autocomplete is off"
                )
            head, size = [], 0
            for number, line in enumerate(self.lines):
                if size >= BINARY_SAMPLE:
                    if number <= start_line:
                        return  # the change lies after the sample
                    break
                head.append(line)
                size += len(line)
            _check_sample(self.uri, "".join(head)[:BINARY_SAMPLE])
        except UnsupportedDocumentError as exc:
            self.problem = exc


def _utf16_len(text: str) -> int:
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _utf16_to_index(text: str, units: int) -> int:
    if text.isascii():
        return min(units, len(text))
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
    width = to_client_units(text, len(text), encoding)
    if character > width:
        raise PositionError(
            f"position {line}:{character} is past the end of line {line} "
            f"({width} characters) in {view.uri}"
        )
    return line, column_of(text, character, encoding)


def column_of(text: str, units: int, encoding: str = "utf-16") -> int:
    """A column in client units as a code-point index into ``text``, at most its end."""
    units = max(units, 0)
    if encoding == "utf-32":
        return min(units, len(text))
    if encoding == "utf-8":
        return len(text.encode("utf-8", "surrogatepass")[:units].decode("utf-8", "ignore"))
    return _utf16_to_index(text, units)


def to_client_units(text: str, column: int, encoding: str = "utf-16") -> int:
    """A code-point column in ``text`` as the client counts it."""
    if encoding == "utf-32":
        return column
    if encoding == "utf-8":
        return len(text[:column].encode("utf-8", "surrogatepass"))
    return _utf16_from_index(text, column)
