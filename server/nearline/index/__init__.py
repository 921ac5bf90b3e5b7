"""The project index: every file of the project (``.gitignore`` respected), its top-level
symbols and imports, kept on disk and updated per file by content hash.

``symbols`` reads one file (pure); ``store.ProjectIndex`` walks the project in the background
and keeps the entries; the completion context and the escalation's project map read them.
"""

from nearline.index.symbols import FileEntry, Symbol, SymbolKind, digest_of, scan_text

__all__ = ["FileEntry", "Symbol", "SymbolKind", "digest_of", "scan_text"]
