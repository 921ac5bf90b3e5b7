"""``[usage.import]``: other AI tools whose usage ``nearline serve`` imports in the background."""

from __future__ import annotations

from dataclasses import dataclass

from nearline.config.checks import check

IMPORT_SOURCES = (
    "claude-code",
    "codex",
    "gemini-cli",
    "copilot",
    "openai-usage",
    "anthropic-usage",
)
"""What ``nearline usage import`` reads; each name is its rows' client in the ledger."""
LOG_SOURCES = ("claude-code", "codex", "gemini-cli")
"""The sources with logs in a known folder (the others are files a person downloads)."""


@dataclass(frozen=True)
class ImportSettings:
    sources: tuple[str, ...] = ()
    """Imported every ``interval_minutes`` while ``nearline serve`` runs (off the event loop,
    at the lowest CPU priority, paused while the model works)."""
    interval_minutes: float = 5.0

    def __post_init__(self) -> None:
        for name in self.sources:
            check(
                name in LOG_SOURCES,
                "usage.import.sources",
                name,
                " | ".join(LOG_SOURCES)
                + " (a downloaded report is imported with `nearline usage import`)",
            )
        check(
            0.1 <= self.interval_minutes <= 1440,
            "usage.import.interval_minutes",
            self.interval_minutes,
            "minutes in [0.1, 1440]",
        )
