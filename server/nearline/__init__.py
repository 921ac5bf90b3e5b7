"""nearline: local-first AI autocomplete over LSP."""

__version__ = "0.1.0"
