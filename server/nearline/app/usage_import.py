"""``nearline usage import``: other AI tools' usage into this machine's ledger, from the
command line or (``[usage.import]``) in the server's background (``usage_import_job``)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from nearline.accounting.imports.run import ImportResult, run_imports, source_of
from nearline.accounting.ledger import ledger_path
from nearline.accounting.prices import table_for
from nearline.config import Settings
from nearline.errors import ConfigError


def sources_to_import(settings: Settings, names: Sequence[str]) -> list[str]:
    """The sources named, else the ones ``[usage.import]`` lists."""
    chosen = list(names) or list(settings.usage.import_.sources)
    if not chosen:
        raise ConfigError(
            "name a source (claude-code, codex, gemini-cli, copilot, openai-usage, "
            'anthropic-usage), or list some in [usage.import] sources = ["claude-code"]'
        )
    for name in chosen:
        source_of(name)
    return chosen


def import_usage(
    settings: Settings,
    names: Sequence[str],
    paths: Sequence[Path] = (),
    *,
    ledger: Path | None = None,
    env: Mapping[str, str] = os.environ,
) -> list[ImportResult]:
    """Import ``names`` (default: the configured sources) from ``paths`` (default: where
    each tool keeps its logs) into the ledger."""
    chosen = sources_to_import(settings, names)
    if paths and len(chosen) != 1:
        raise ConfigError("files to import belong to one source: name it first")
    return run_imports(chosen, paths, ledger or ledger_path(), table_for(settings), env=env)
