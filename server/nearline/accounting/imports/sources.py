"""The sources ``nearline usage import`` knows: each one's name (the ledger rows' client), whose
models it runs, where it keeps its logs, which files are its, and its reader."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from nearline.accounting.imports import claude_code, codex, copilot, exports, gemini_cli
from nearline.accounting.imports.records import FileRead, ToolDay, Usage

Reader = Callable[..., tuple[Iterator[Usage | ToolDay], FileRead]]
"""``read(path, start, *, hold_last)``: the file's records from byte ``start``."""


def _none(env: Mapping[str, str] = os.environ) -> list[Path]:
    return []


@dataclass(frozen=True)
class Source:
    name: str
    provider: str
    """The provider its rows name (a record may name another)."""
    read: Reader
    roots: Callable[[Mapping[str, str]], list[Path]] = _none
    """Where it keeps its logs; none: the paths must be given (a downloaded report)."""
    patterns: tuple[str, ...] = ("*.jsonl",)
    """Its files, in a folder searched."""
    whole_file: bool = False
    """Read whole each time it changed (a report, not a log that only grows)."""
    provider_kind: str = ""
    """An export of all of a provider's traffic (the API kind): nearline's own requests to
    it are in the export too, and are taken out of it."""


SOURCES: Mapping[str, Source] = {
    s.name: s
    for s in (
        Source(claude_code.SOURCE, "anthropic", claude_code.read, claude_code.roots),
        Source(codex.SOURCE, "openai", codex.read, codex.roots),
        Source(gemini_cli.SOURCE, "google", gemini_cli.read, gemini_cli.roots, ("*.log",)),
        Source(
            copilot.SOURCE, "github", copilot.read, patterns=("*.json", "*.ndjson"), whole_file=True
        ),
        Source(
            exports.ANTHROPIC,
            "anthropic",
            exports.read_anthropic,
            patterns=("*.json", "*.jsonl"),
            whole_file=True,
            provider_kind="anthropic",
        ),
        Source(
            exports.OPENAI,
            "openai",
            exports.read_openai,
            patterns=("*.json", "*.jsonl"),
            whole_file=True,
            provider_kind="openai",
        ),
    )
}
