"""Other AI tools' usage, read from their own logs and exports (issue 23): one reader per
source, a file in and plain records out (``records.Usage``), each with a stable dedupe key, and
the byte offset the file was read to. Only the allow-listed fields are read: never a prompt,
code, path, tool output or instruction. No other layer knows these formats."""

from nearline.accounting.imports import claude_code, codex
from nearline.accounting.imports.records import FileRead, Usage

READERS = {"claude-code": claude_code.read, "codex": codex.read}
"""Source name (the ledger's ``client``) → its reader."""

__all__ = ["READERS", "FileRead", "Usage"]
