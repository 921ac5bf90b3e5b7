"""``nearline usage import``: other AI tools' usage into this machine's ledger, from the
command line or (``[usage.import]``) in the server's background (``usage_import_job``)."""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from nearline.accounting.imports.run import Guard, ImportResult, run_imports, source_of
from nearline.accounting.ledger import ledger_path
from nearline.accounting.prices import table_for
from nearline.app.child import Child
from nearline.config import PROVIDER_KINDS, ProviderKind, Settings
from nearline.errors import ConfigError

log = logging.getLogger(__name__)


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
    guard: Guard | None = None,
) -> list[ImportResult]:
    """Import ``names`` (default: the configured sources) from ``paths`` (default: where
    each tool keeps its logs) into the ledger."""
    chosen = sources_to_import(settings, names)
    if paths and len(chosen) != 1:
        raise ConfigError("files to import belong to one source: name it first")
    return run_imports(
        chosen,
        paths,
        ledger or ledger_path(),
        table_for(settings),
        env=env,
        own=own_providers(settings),
        guard=guard,
    )


def own_providers(settings: Settings) -> dict[str, list[str]]:
    """Provider kind → nearline's providers that send to that provider's own API, its kind's
    default host (whose traffic its organisation's export holds too)."""
    found: dict[str, list[str]] = {}
    for name, provider in settings.providers.items():
        if provider.kind not in PROVIDER_KINDS:
            continue
        own = urlsplit(ProviderKind(provider.kind).default_base_url).hostname
        if urlsplit(provider.base_url).hostname == own:
            found.setdefault(provider.kind, []).append(name)
    return found


class BackgroundImport:
    """``[usage.import]`` while the server runs: the sources imported every ``interval_s`` in
    a child process (``import_run``) at the lowest priority, paused while the engine works
    (``hold``), killed by ``stop`` and with the server."""

    def __init__(
        self,
        sources: Sequence[str],
        interval_s: float,
        root: Path | None,
        on_result: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.job = {"sources": list(sources), "root": str(root) if root else None}
        self.interval_s = interval_s
        self.on_result = on_result
        self.child = Child("nearline.app.import_run", pause=signal.SIGTSTP)
        self.rounds = 0
        self.thread = threading.Thread(target=self._loop, name="nearline-import", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _loop(self) -> None:
        """On its own thread, which lives as long as each child (see ``Child.run``)."""
        while not self.child.stopped.is_set():
            try:
                for found in self.child.run(self.job):
                    if "error" in found:
                        log.warning("usage import of %s: %s", found["source"], found["error"])
                    else:
                        log.info("usage import: %s", found.get("summary"))
                    if self.on_result is not None:
                        self.on_result(found)
            except Exception:  # an aid: never the server's end
                log.exception("usage import failed")
            self.rounds += 1
            self.child.stopped.wait(self.interval_s)

    def stop(self) -> None:
        self.child.stop()

    def hold(self, busy: bool) -> None:
        self.child.hold(busy)


class ImportLink:
    """A server's background import as its settings say: none until ``start``, then one
    ``BackgroundImport`` while ``[usage.import]`` lists sources (a new one when it changes)."""

    def __init__(self) -> None:
        self.running: BackgroundImport | None = None
        self._wanted: tuple[tuple[str, ...], float, Path | None] | None = None
        self._started = self._closed = False

    def start(self, settings: Settings, root: Path | None) -> None:
        self._started = True
        self.configure(settings, root)

    def configure(self, settings: Settings, root: Path | None) -> None:
        wanted = settings.usage.import_
        key = (wanted.sources, wanted.interval_minutes, root)
        if not self._started or self._closed or key == self._wanted:
            return
        self._wanted = key
        if self.running is not None:
            self.running.stop()
            self.running = None
        if wanted.sources:
            self.running = BackgroundImport(wanted.sources, wanted.interval_minutes * 60, root)
            self.running.start()

    def hold(self, busy: bool) -> None:
        if self.running is not None:
            self.running.hold(busy)

    def close(self) -> None:
        self._closed = True
        if self.running is not None:
            self.running.stop()
            self.running = None
