"""Complete-and-record: a completion from the service, and its row in the ledger."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from typing import Any

from nearline.accounting.entries import (
    Entry,
    Outcome,
    Project,
    completion_entry,
    unanswered_entry,
)
from nearline.accounting.ledger import Ledger
from nearline.accounting.prices import Tokens
from nearline.completion import CompletionResult, CompletionService, Source
from nearline.completion.hedge import Engine
from nearline.config import LOCAL_PROVIDER
from nearline.documents import DocumentView
from nearline.errors import DocumentError, ModelError, UnsupportedDocumentError
from nearline.tasks import AUTOCOMPLETE

OUTCOME_OF = {
    Source.MODEL: Outcome.OK,
    Source.NONE: Outcome.OK,
    Source.CACHE: Outcome.FROM_CACHE,
    Source.TYPING_THROUGH: Outcome.TYPED_THROUGH,
    Source.SUPERSEDED: Outcome.CANCELLED,
}
"""The ledger outcome of each way a completion was served."""

REMOTE_PROVIDER = "completion-server"
"""The ledger's provider of a suggestion the team's completion server wrote."""


def entry_of(
    result: CompletionResult,
    project: Project,
    language: str,
    *,
    client: str = "lsp",
    shown: bool = False,
) -> Entry:
    """The ledger row of a completion the service answered."""
    g, a = result.generation, result.remote
    if a is not None:  # the completion server's tokens: local-network traffic, no cost
        cached = min(a.cached_tokens, a.prompt_tokens)
        tokens = Tokens(
            input=a.prompt_tokens - cached, cache_read=cached, output=a.generated_tokens
        )
    elif g is not None:
        tokens = Tokens(input=g.evaluated_tokens, cache_read=g.reused_tokens, output=len(g.tokens))
    else:
        tokens = Tokens()
    return completion_entry(
        outcome=OUTCOME_OF[result.source],
        model=result.model_id,
        provider=REMOTE_PROVIDER if result.engine is Engine.REMOTE else LOCAL_PROVIDER,
        tokens=tokens,
        latency_ms=result.latency_ms,
        project=project,
        language=language,
        client=client,
        shown=shown and bool(result.text),
        chars=len(result.text),
    )


class Completions:
    """Completions, each recorded in the ledger (a queued row: never waits for the disk)."""

    def __init__(
        self,
        service: CompletionService,
        ledger: Ledger | None,
        project: Callable[[], Project],
        *,
        client: str = "lsp",
    ) -> None:
        self.service = service
        self.ledger = ledger
        self.project = project
        self.client = client
        """"lsp", or the CLI command that asked."""

    async def complete(
        self,
        view: DocumentView,
        line: int,
        character: int,
        encoding: str = "utf-16",
        *,
        language: str = "",
        request_id: Any = None,
        shown: bool = True,
    ) -> CompletionResult:
        """The service's answer, with ``uid`` its ledger row. Cancelled, a bad position or a
        model that cannot load are recorded too, then raised (``CancelledError``,
        ``DocumentError``, ``ModelError``); a document not for completion is not recorded."""
        t0 = time.perf_counter()
        try:
            result = await self.service.complete(
                view, line, character, encoding, request_id=request_id
            )
        except asyncio.CancelledError:
            self.record_unanswered(Outcome.CANCELLED, t0, language)
            raise
        except UnsupportedDocumentError:
            raise
        except (DocumentError, ModelError):
            self.record_unanswered(Outcome.ERROR, t0, language)
            raise
        entry = entry_of(result, self.project(), language, client=self.client, shown=shown)
        return dataclasses.replace(result, uid=self._record(entry))

    def record_unanswered(self, outcome: Outcome, t0: float, language: str = "") -> None:
        """A request that got no completion (since ``t0``, a ``perf_counter`` time)."""
        entry = unanswered_entry(
            task=AUTOCOMPLETE,
            outcome=outcome,
            latency_ms=(time.perf_counter() - t0) * 1000,
            project=self.project(),
            language=language,
            model=self.service.engine.model_id,
        )
        self._record(entry)

    def _record(self, entry: Entry) -> str:
        return self.ledger.record(entry) if self.ledger is not None else entry.uid

    def accepted(self, uid: str | None) -> None:
        """The person took the suggestion whose ledger row is ``uid``."""
        self.service.stats.accepted += 1
        if uid is not None and self.ledger is not None:
            self.ledger.accept(uid)
