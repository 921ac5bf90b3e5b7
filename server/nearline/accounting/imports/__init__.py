"""Other AI tools' usage, read from their own logs and exports (issue 23): one reader per
source, a file in and plain records out (``records.Usage``, or ``records.ToolDay`` for daily
aggregates), each with a stable dedupe key, and the byte offset the file was read to. Only the
allow-listed fields are read: never a prompt, code, path, tool output or instruction. No other
layer knows these formats; ``run`` writes what they give to the ledger."""

from nearline.accounting.imports.records import FileRead, ToolDay, Usage
from nearline.accounting.imports.sources import SOURCES, Source

__all__ = ["SOURCES", "FileRead", "Source", "ToolDay", "Usage"]
