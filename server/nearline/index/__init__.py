"""The project index: every file of the project (``.gitignore`` respected), its top-level
symbols and imports, kept on disk and updated per file by content hash.

``symbols`` reads one file (pure); ``store.ProjectIndex`` walks the project and keeps the
entries (in a build process of its own for the server, in-process for ``nearline eval``);
``shared.SharedIndex`` is the server's lazy reader of the store; ``process`` makes a build's
processes idle-priority and gone with their parent. The completion context and the
escalation's project map read the entries.
"""

from nearline.index.symbols import FileEntry, Symbol, SymbolKind, digest_of, scan_text

__all__ = ["FileEntry", "Symbol", "SymbolKind", "digest_of", "scan_text"]
