"""Between LSP types and plain data: edits of whole files as the smallest ``TextEdit``, a
``FileChange`` as workspace edit parts, a completion as a ``CompletionItem``, and where an
incremental change left the cursor."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lsprotocol import types

from nearline.completion import CompletionResult
from nearline.documents import OpenDocument, column_of, split_lines, to_client_units
from nearline.escalation.results import FileChange

WORD_CHARS = "_0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def minimal_edit(old: str, new: str, encoding: str = "utf-16") -> types.TextEdit:
    """One edit replacing only the lines that differ between ``old`` and ``new``."""
    a, b = split_lines(old), split_lines(new)
    head = 0
    while head < min(len(a), len(b)) and a[head] == b[head]:
        head += 1
    tail = 0
    while tail < min(len(a), len(b)) - head and a[len(a) - 1 - tail] == b[len(b) - 1 - tail]:
        tail += 1
    end_line = len(a) - tail
    if end_line < len(a) or not a or a[-1].endswith(("\n", "\r")):
        end = types.Position(line=end_line, character=0)
    else:  # the replaced part runs to the end of a last line with no line end
        last = a[-1]
        end = types.Position(line=len(a) - 1, character=to_client_units(last, len(last), encoding))
    return types.TextEdit(
        range=types.Range(start=types.Position(line=head, character=0), end=end),
        new_text="".join(b[head : len(b) - tail]),
    )


def edit_parts(change: FileChange, encoding: str) -> list[Any]:
    """A file change as ``documentChanges`` entries: a created file, or one edit."""
    ident = types.OptionalVersionedTextDocumentIdentifier(uri=change.uri, version=change.version)
    if change.old_text is None:
        start = types.Position(line=0, character=0)
        return [
            types.CreateFile(
                uri=change.uri, options=types.CreateFileOptions(ignore_if_exists=False)
            ),
            types.TextDocumentEdit(
                text_document=ident,
                edits=[
                    types.TextEdit(
                        range=types.Range(start=start, end=start), new_text=change.new_text
                    )
                ],
            ),
        ]
    return [
        types.TextDocumentEdit(
            text_document=ident,
            edits=[minimal_edit(change.old_text, change.new_text, encoding)],
        )
    ]


def workspace_edit(changes: Sequence[FileChange], encoding: str) -> types.WorkspaceEdit:
    return types.WorkspaceEdit(
        document_changes=[part for change in changes for part in edit_parts(change, encoding)]
    )


def completion_item(
    result: CompletionResult, line_text: str, position: types.Position, encoding: str
) -> types.CompletionItem:
    """The suggestion as a completion item for clients without inline completion: it replaces
    the word before the cursor with that word and the suggestion."""
    before = line_text[: result.character]
    word = before[len(before.rstrip(WORD_CHARS)) :]
    start = types.Position(
        line=position.line,
        character=position.character
        - (
            to_client_units(before, len(before), encoding)
            - to_client_units(before, len(before) - len(word), encoding)
        ),
    )
    first_line = result.text.split("\n", 1)[0]
    label = (word + first_line).strip() or result.text.strip()
    return types.CompletionItem(
        label=label[:80],
        kind=types.CompletionItemKind.Text,
        detail=f"nearline · {result.model_id}",
        filter_text=word + result.text,
        sort_text="0",
        insert_text_format=types.InsertTextFormat.PlainText,
        text_edit=types.TextEdit(
            range=types.Range(start=start, end=position), new_text=word + result.text
        ),
    )


def change_end(
    changes: Sequence[types.TextDocumentContentChangeEvent],
) -> tuple[int, int] | None:
    """Where the last incremental change left the cursor (an estimate in client units)."""
    if not changes:
        return None
    change = changes[-1]
    if not isinstance(change, types.TextDocumentContentChangePartial):
        return None
    start = change.range.start
    text = change.text
    if "\n" in text:
        return start.line + text.count("\n"), len(text.rsplit("\n", 1)[1])
    return start.line, start.character + len(text)


def code_points(doc: OpenDocument, position: types.Position, encoding: str) -> tuple[int, int]:
    """A client position as (line, code-point column), clamped to the document."""
    lines = doc.lines
    line = min(max(position.line, 0), len(lines))
    text = lines[line].rstrip("\r\n") if line < len(lines) else ""
    return line, column_of(text, position.character, encoding)
