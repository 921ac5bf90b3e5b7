"""Unit tests for nearline.documents: content checks and LSP position conversion."""

from __future__ import annotations

import pytest

from nearline.documents import DocumentView, check_content, to_client_units, to_code_points
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
