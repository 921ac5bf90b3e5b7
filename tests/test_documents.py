"""Unit tests for nearline.documents: content checks and LSP position conversion."""

from __future__ import annotations

import random

import pytest

from nearline import documents
from nearline.documents import (
    DocumentView,
    OpenDocument,
    check_content,
    split_lines,
    to_client_units,
    to_code_points,
)
from nearline.errors import DocumentError, PositionError, UnsupportedDocumentError

URI = "file:///work/a.py"

CODE = (
    "import os\n"
    "\n"
    "def main():\n"
    "\tprint('héllo 😀', os.sep)\r\n"
    "    return '\\x1b[0m'  # \x1b escape\n"
)


def view(text: str) -> DocumentView:
    return DocumentView(URI, 1, text.splitlines(keepends=True))


# -- check_content ---------------------------------------------------------------------------


def test_normal_code_passes():
    check_content(URI, CODE, 1024)
    check_content(URI, "", 1024)
    check_content(URI, "x" * 1024, 1024)


def test_too_large_is_unsupported():
    with pytest.raises(UnsupportedDocumentError) as info:
        check_content(URI, "x" * 1025, 1024)
    assert URI in str(info.value)
    assert "1024" in str(info.value)


def test_too_large_counts_utf8_bytes():
    text = "é" * 600  # 600 characters, 1200 bytes
    with pytest.raises(UnsupportedDocumentError):
        check_content(URI, text, 1024)
    check_content(URI, "é" * 512, 1024)


def test_nul_bytes_are_unsupported():
    with pytest.raises(UnsupportedDocumentError) as info:
        check_content(URI, "abc\x00def", 1024)
    assert "NUL" in str(info.value)
    assert URI in str(info.value)


def test_mostly_control_chars_are_unsupported():
    text = "\x01\x02\x03\x04" * 10 + "abcdef" * 10
    with pytest.raises(UnsupportedDocumentError) as info:
        check_content(URI, text, 10_000)
    assert URI in str(info.value)


def test_mostly_replacement_chars_are_unsupported():
    text = "\ufffd" * 30 + "text" * 10
    with pytest.raises(UnsupportedDocumentError):
        check_content(URI, text, 10_000)


def test_a_few_odd_chars_pass():
    check_content(URI, "x" * 95 + "\ufffd" * 5, 10_000)
    check_content(URI, "\x0c\n" + "def f(): pass\n" * 10, 10_000)


def test_unsupported_is_a_document_error():
    assert issubclass(UnsupportedDocumentError, DocumentError)
    assert issubclass(PositionError, DocumentError)


# -- to_code_points --------------------------------------------------------------------------


def test_ascii_positions():
    v = view("abc\ndef\n")
    assert to_code_points(v, 0, 0) == (0, 0)
    assert to_code_points(v, 0, 3) == (0, 3)
    assert to_code_points(v, 1, 2) == (1, 2)


def test_utf16_columns_with_emoji():
    v = view("a😀b\n")  # the emoji is two UTF-16 code units
    assert to_code_points(v, 0, 1) == (0, 1)
    assert to_code_points(v, 0, 3) == (0, 2)
    assert to_code_points(v, 0, 4) == (0, 3)
    with pytest.raises(PositionError):
        to_code_points(v, 0, 5)


def test_utf16_columns_with_accent():
    v = view("é = 1\n")
    assert to_code_points(v, 0, 1) == (0, 1)
    assert to_code_points(v, 0, 5) == (0, 5)


def test_utf8_columns():
    v = view("é😀x\n")  # 2 + 4 + 1 bytes
    assert to_code_points(v, 0, 0, "utf-8") == (0, 0)
    assert to_code_points(v, 0, 2, "utf-8") == (0, 1)
    assert to_code_points(v, 0, 6, "utf-8") == (0, 2)
    assert to_code_points(v, 0, 7, "utf-8") == (0, 3)
    with pytest.raises(PositionError) as info:
        to_code_points(v, 0, 8, "utf-8")
    assert "7 characters" in str(info.value)


def test_utf32_columns():
    v = view("é😀x\n")
    assert to_code_points(v, 0, 2, "utf-32") == (0, 2)
    assert to_code_points(v, 0, 3, "utf-32") == (0, 3)
    with pytest.raises(PositionError) as info:
        to_code_points(v, 0, 4, "utf-32")
    assert "3 characters" in str(info.value)


def test_line_past_end_names_the_extent():
    v = view("a\nb")
    assert to_code_points(v, 1, 1) == (1, 1)
    with pytest.raises(PositionError) as info:
        to_code_points(v, 2, 0)
    message = str(info.value)
    assert "2:0" in message
    assert URI in message
    assert "2 lines" in message


def test_character_past_end_names_the_extent():
    v = view("abc\r\nxyz\n")
    assert to_code_points(v, 0, 3) == (0, 3)  # the line end is not a column
    with pytest.raises(PositionError) as info:
        to_code_points(v, 0, 4)
    message = str(info.value)
    assert "0:4" in message
    assert "line 0" in message
    assert "3 characters" in message
    assert URI in message


def test_utf16_character_past_end_counts_code_units():
    with pytest.raises(PositionError) as info:
        to_code_points(view("a😀\n"), 0, 4)
    assert "3 characters" in str(info.value)


def test_empty_line_after_trailing_newline_is_valid():
    v = view("abc\n")
    assert to_code_points(v, 1, 0) == (1, 0)
    with pytest.raises(PositionError):
        to_code_points(v, 1, 1)
    with pytest.raises(PositionError) as info:
        to_code_points(v, 2, 0)
    assert "2 lines" in str(info.value)


def test_empty_line_after_trailing_carriage_return_is_valid():
    assert to_code_points(view("abc\r"), 1, 0) == (1, 0)
    assert to_code_points(view("abc\r\n"), 1, 0) == (1, 0)


def test_empty_document():
    v = view("")
    assert v.lines == []
    assert to_code_points(v, 0, 0) == (0, 0)
    with pytest.raises(PositionError):
        to_code_points(v, 0, 1)
    with pytest.raises(PositionError) as info:
        to_code_points(v, 1, 0)
    assert "1 lines" in str(info.value)


def test_negative_position():
    v = view("abc\n")
    with pytest.raises(PositionError):
        to_code_points(v, -1, 0)
    with pytest.raises(PositionError):
        to_code_points(v, 0, -1)


# -- to_client_units -------------------------------------------------------------------------


def test_to_client_units_utf16():
    assert to_client_units("abc", 2) == 2
    assert to_client_units("a😀b", 1) == 1
    assert to_client_units("a😀b", 2) == 3
    assert to_client_units("a😀b", 3) == 4
    assert to_client_units("é = 1", 1) == 1


def test_to_client_units_utf8_and_utf32():
    assert to_client_units("é😀x", 1, "utf-8") == 2
    assert to_client_units("é😀x", 2, "utf-8") == 6
    assert to_client_units("é😀x", 3, "utf-8") == 7
    assert to_client_units("é😀x", 2, "utf-32") == 2


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16", "utf-32"])
def test_round_trip(encoding):
    text = "x = 'é😀'  # ok"
    v = view(text + "\n")
    for column in range(len(text) + 1):
        units = to_client_units(text, column, encoding)
        assert to_code_points(v, 0, units, encoding) == (0, column)


# -- open documents, kept line by line --------------------------------------------------------


def test_changes_keep_the_lines_as_a_new_split_would() -> None:
    """Random edits (CR, CRLF, form feeds, astral characters, positions past the end) give the
    same lines as splitting the edited text anew."""
    rng = random.Random(7)
    pieces = ["a", "b", " ", "\n", "\r", "\r\n", "x\ty", "é", "😀", "\x0c"]
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 30)))
        doc = OpenDocument("file:///t", text, 1, 10**6)
        for version in range(2, 7):
            lines = split_lines(text)
            (sl, sc), (el, ec) = sorted(
                (rng.randint(0, len(lines) + 1), rng.randint(0, 6)) for _ in range(2)
            )

            new = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 4)))
            text = text[: offset(text, sl, sc)] + new + text[offset(text, el, ec) :]
            doc.change((sl, sc), (el, ec), new, version)
            assert doc.lines == split_lines(text)
            assert doc.chars == len(text) and doc.text() == text and doc.version == version


def offset(text: str, line: int, column: int) -> int:
    """Where (line, column) is in ``text``, clamped as the LSP says."""
    lines = split_lines(text)
    if line >= len(lines):
        return len(text)
    return sum(len(x) for x in lines[:line]) + min(column, len(lines[line].rstrip("\r\n")))


def test_a_view_is_a_snapshot() -> None:
    doc = OpenDocument("file:///t", "a\nb\n", 1, 1000)
    before = doc.view()
    doc.change((1, 0), (1, 1), "c", 2)
    assert list(before.lines) == ["a\n", "b\n"] and before.version == 1
    assert list(doc.view().lines) == ["a\n", "c\n"]


def test_the_content_check_follows_the_edits() -> None:
    doc = OpenDocument("file:///t", "x = 1\n", 1, 1024)
    doc.change((0, 5), (0, 5), "\x00", 2)
    with pytest.raises(UnsupportedDocumentError, match="NUL"):
        doc.view()
    doc.change((0, 5), (0, 6), "", 3)  # the NUL is gone: whole again
    assert doc.view().version == 3
    doc.change((1, 0), (1, 0), "y" * 2000, 4)
    with pytest.raises(UnsupportedDocumentError, match="larger than"):
        doc.view()
    doc.change((1, 0), (1, 2000), "", 5)
    doc.change((0, 0), (0, 0), "\x01\x02\x03\x04" * 10, 6)  # control characters up front
    with pytest.raises(UnsupportedDocumentError, match="looks binary"):
        doc.view()


def test_an_edit_after_the_sample_does_not_scan_it_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = "".join(f"line {i}\n" for i in range(3000))  # the sample is its first 8192 chars
    doc = OpenDocument("file:///t", text, 1, 10**6)
    scans: list[int] = []
    monkeypatch.setattr(documents, "_check_sample", lambda uri, sample: scans.append(len(sample)))
    doc.change((2999, 0), (2999, 0), "x", 2)
    assert scans == []
    doc.change((0, 0), (0, 0), "y", 3)
    assert scans == [documents.BINARY_SAMPLE]
