"""What one editor connection holds: the settings and their layers, the open documents, the
ledger, and the use cases built from the settings. It sends no messages (``notifier`` does)."""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from lsprotocol import types

from nearline.accounting.budget import Spending
from nearline.accounting.entries import Project
from nearline.accounting.ledger import Ledger
from nearline.app.completions import Completions
from nearline.app.escalations import Escalations
from nearline.app.indexing import IndexBuilder, index_text, open_shared_index
from nearline.app.project import project_of
from nearline.app.remote import make_service, service_key
from nearline.app.team import TeamLink, with_team
from nearline.app.usage_import import ImportLink
from nearline.catalog import resolve_model_path
from nearline.completion import CompletionService
from nearline.config import ConfigStack, Settings, merge
from nearline.documents import OpenDocument
from nearline.errors import ConfigError, LedgerError, UnknownDocumentError
from nearline.escalation.escalator import Escalator
from nearline.index import FileEntry
from nearline.index.shared import SharedIndex
from nearline.index.store import RefreshStats
from nearline.lsp.convert import code_points

log = logging.getLogger(__name__)


class ServerState:
    def __init__(
        self,
        flags: Mapping[str, Any] | None = None,
        *,
        service_factory: Callable[[Settings], CompletionService] | None = None,
    ) -> None:
        self.stack = ConfigStack(flags=dict(flags or {}))
        self.service_factory = service_factory or (lambda s: make_service(s, self.stack.root))
        """Makes the completion service for the settings (a fake engine's, in tests)."""
        self.settings: Settings = self.stack.settings
        self.ledger: Ledger | None = None
        self.team: TeamLink | None = None
        self.documents: dict[str, OpenDocument] = {}
        self.on_new_service: Callable[[CompletionService], None] | None = None
        """Called with every completion service built (wires its notifications)."""
        self.on_budget_error: Callable[[LedgerError], None] | None = None
        self._completions: Completions | None = None
        self.index: SharedIndex | None = None
        """The workspace's project index; built in the background after ``initialized``."""
        self.index_builder: IndexBuilder | None = None
        """The child process that builds the index (``index_build``)."""
        self.on_indexed: Callable[[RefreshStats], None] | None = None
        self.importer = ImportLink()  # other tools' usage, [usage.import]
        self.escalations = Escalations(
            Escalator(
                self.settings,
                self.stack.root,
                lambda: resolve_model_path(self.settings.model),
                self._spending,
                project_entries=self._index_entries,
            ),
            None,
            self.project,
        )
        self._closed = False
        self.escalation_usage: collections.deque[dict[str, Any]] = collections.deque(maxlen=256)
        """Usage of each escalated request, cached tokens apart (also in the ledger)."""

    # -- settings ----------------------------------------------------------------------------
    def set_editor_options(self, options: Mapping[str, Any]) -> None:
        """Editor settings; what a client sends goes over what it sent before."""
        if isinstance(options.get("nearline"), Mapping):
            options = options["nearline"]
        self.stack.editor = merge(self.stack.editor, options)

    def reload(self) -> tuple[bool, ConfigError | None]:
        """Read the settings layers again; a broken one leaves the last good settings.
        Returns whether the settings changed, and the error."""
        settings, error = self.stack.try_load()
        old, self.settings = self.settings, settings
        logging.getLogger("nearline").setLevel(settings.log_level.upper())
        changed = settings != old
        if changed:
            self._reconfigure(old)
        return changed, error

    def _reconfigure(self, old: Settings) -> None:
        """Rebuild what is derived from the settings."""
        new = self.settings
        completions = self._completions
        if completions is not None:
            if service_key(old) != service_key(new):
                self._completions = None
                completions.service.close()
                self.completions  # noqa: B018 (a new service: the new model starts loading)
            else:
                completions.service.reconfigure(new)
        self.escalations.escalator.reconfigure(new, self.stack.root)
        if self.team:
            self.team.configure(new, self.stack.root)
        self.importer.configure(new, self.stack.root)
        indexed = (old.index, old.cache, old.privacy.local_only)
        if self.index is not None and indexed != (new.index, new.cache, new.privacy.local_only):
            self.stop_index()  # a new one, built as the settings now say
            self.start_index()
        if old.completion.max_document_bytes != new.completion.max_document_bytes:
            for doc in self.documents.values():
                doc.max_bytes = new.completion.max_document_bytes
                doc.replace(doc.text(), doc.version)

    def project(self) -> Project:
        return project_of(self.stack, self.settings)

    # -- the project index -------------------------------------------------------------------
    def start_index(self) -> None:
        """Open the workspace's index and build it in the background."""
        if self.index is None:
            self.index = open_shared_index(self.stack.root, self.settings)
            if self.index is not None:
                self.index_builder = IndexBuilder(self.index, self.settings, self.on_indexed)
                self.index_builder.start()
        if self.service is not None:
            self.service.project = self.index

    def stop_index(self) -> None:
        """End the index's build, if one runs, and let the index go."""
        if self.index_builder is not None:
            self.index_builder.stop()
            self.index_builder = None
        if self.index is not None:
            self.index.close()
            self.index = None

    def _index_entries(self) -> Sequence[FileEntry]:
        index = self.index
        return index.entries() if index is not None and index.ready.is_set() else ()

    def index_job(self, uri: str) -> Callable[[], None] | None:
        """Putting an open document's text, as it is now, into the index (after its edits
        settle, or a save): for a worker thread. None when there is nothing to do."""
        index, doc = self.index, self.documents.get(uri)
        if index is None or doc is None:
            return None
        text = doc.text()  # here, on the event loop that edits the document
        return lambda: index_text(index, uri, text)

    # -- the use cases -----------------------------------------------------------------------
    def start_ledger(self, on_error: Callable[[str], None], on_team: Callable[[str], None]) -> None:
        self.ledger = Ledger(on_error=on_error)
        self.escalations.ledger = self.ledger
        self.team = TeamLink(self.ledger, on_team)
        self.team.configure(self.settings, self.stack.root)

    @property
    def completions(self) -> Completions:
        """Built on first use and after the model or the cache changed; the model loads on
        the engine's thread."""
        if self._completions is None:
            service = self.service_factory(self.settings)
            service.project = self.index
            self._completions = Completions(service, self.ledger, self.project)
            if self.on_new_service is not None:
                self.on_new_service(service)
        return self._completions

    @property
    def service(self) -> CompletionService | None:
        return self._completions.service if self._completions is not None else None

    def _spending(self) -> Spending | None:
        """Spent so far, the team's too; None: budgets go unchecked (said once)."""
        if self.ledger is None:
            return None
        try:
            spent = self.ledger.spending(self.project().root)
            return with_team(spent, self.team, self.project().name, self.settings)
        except LedgerError as exc:
            if self.on_budget_error is not None:
                self.on_budget_error(exc)
            return None

    def spend_today(self) -> float:
        return round(self.ledger.spend_today(), 6) if self.ledger else 0.0

    def close(self) -> None:
        """Let go of everything, the index's build first (a second call does nothing)."""
        self.stop_index()
        self.importer.close()
        if self._closed:
            return
        self._closed = True
        if self._completions is not None:
            self._completions.service.close()
            self._completions = None
        if self.team:
            self.team.close()
        if self.ledger is not None:
            self.ledger.close(timeout=2.0)  # rows the database takes by then; shutdown waits

    # -- documents ---------------------------------------------------------------------------
    def open(self, item: types.TextDocumentItem) -> OpenDocument:
        self.documents[item.uri] = doc = OpenDocument(
            item.uri,
            item.text,
            item.version,
            self.settings.completion.max_document_bytes,
            item.language_id or "",
        )
        return doc

    def change(
        self,
        uri: str,
        version: int | None,
        changes: Sequence[types.TextDocumentContentChangeEvent],
        encoding: str,
    ) -> OpenDocument | None:
        """Apply an editor's changes to its document; None for a document never opened."""
        doc = self.documents.get(uri)
        if doc is None:
            return None
        for change in changes:
            if isinstance(change, types.TextDocumentContentChangePartial):
                start = code_points(doc, change.range.start, encoding)
                end = code_points(doc, change.range.end, encoding)
                doc.change(start, end, change.text, version)
            else:
                doc.replace(change.text, version)
        return doc

    def document(self, uri: str) -> OpenDocument:
        doc = self.documents.get(uri)
        if doc is None:
            raise UnknownDocumentError(
                f"unknown document {uri}: send textDocument/didOpen before asking for completions"
            )
        return doc

    def close_document(self, uri: str) -> None:
        self.documents.pop(uri, None)
        if self.service is not None:
            self.service.forget(uri)
