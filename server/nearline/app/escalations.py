"""Escalate-and-record: an escalation through the ``Escalator``, its row in the ledger (with
its exact cost), and the alerts it raises (budgets past their soft threshold, spending
spikes), each shown once. The server, ``nearline route`` and the cost benchmark use it alike."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from nearline.accounting.alerts import spike
from nearline.accounting.entries import (
    Entry,
    Outcome,
    Project,
    day_of,
    escalation_entry,
    unanswered_entry,
)
from nearline.accounting.ledger import Ledger
from nearline.accounting.prices import Tokens, provider_cost
from nearline.documents import language_of
from nearline.errors import LedgerError
from nearline.escalation.escalator import Document, Escalator, Task
from nearline.escalation.results import (
    Answered,
    Changed,
    EscalationResult,
    Failed,
    Refused,
    Unappliable,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recorded:
    result: EscalationResult
    entry: Entry
    """Its ledger row (cost, tokens, outcome)."""


class Escalations:
    """Escalations for one project, each recorded in ``ledger`` (None: not recorded)."""

    def __init__(
        self,
        escalator: Escalator,
        ledger: Ledger | None,
        project: Callable[[], Project],
        *,
        client: str = "lsp",
    ) -> None:
        self.escalator = escalator
        self.ledger = ledger
        self.project = project
        self.client = client
        """The ledger's ``client``: "lsp", or the CLI command that asked ("eval")."""

    async def run(
        self,
        task: Task,
        docs: Sequence[Document],
        on_text: Callable[[str], None] | None = None,
        *,
        ts: float | None = None,
    ) -> Recorded:
        """Run ``task`` and record it (``ts``: the row's time, default now). Cancelling it
        records a cancelled row, then raises ``CancelledError``."""
        t0 = time.perf_counter()
        language = language_of(docs[0].path)
        try:
            result = await self.escalator.run(task, docs, on_text)
        except asyncio.CancelledError:
            self._record(self._unanswered(task, Outcome.CANCELLED, t0, language, ts))
            raise
        if isinstance(result, (Refused, Failed)):
            entry = self._unanswered(task, Outcome.ERROR, t0, language, ts)
        else:
            entry = self._paid(task, result, language, ts)
        self._record(entry)
        return Recorded(result, entry)

    def _paid(
        self,
        task: Task,
        result: Answered | Changed | Unappliable,
        language: str,
        ts: float | None,
    ) -> Entry:
        """The row of an answer a provider billed; an unappliable one is an error."""
        r = result.result
        tokens = Tokens(
            input=r.usage.input_tokens,
            cache_read=r.usage.cache_read_tokens,
            cache_write=r.usage.cache_write_tokens,
            cache_write_1h=r.usage.cache_write_1h_tokens,
            output=r.usage.output_tokens,
        )
        return escalation_entry(
            task=task.kind,
            outcome=Outcome.ERROR if isinstance(result, Unappliable) else Outcome.OK,
            tier=result.decision.tier,
            provider=r.provider,
            model=r.model,
            tokens=tokens,
            latency_ms=r.latency_ms,
            cost_usd=provider_cost(self.escalator.settings, r.provider, tokens),
            project=self.project(),
            language=language,
            client=self.client,
            ts=ts,
        )

    def _unanswered(
        self, task: Task, outcome: Outcome, t0: float, language: str, ts: float | None
    ) -> Entry:
        return unanswered_entry(
            task=task.kind,
            outcome=outcome,
            latency_ms=(time.perf_counter() - t0) * 1000,
            project=self.project(),
            language=language,
            client=self.client,
            ts=ts,
        )

    def _record(self, entry: Entry) -> None:
        if self.ledger is not None:
            self.ledger.record(entry)

    async def alerts(self, recorded: Recorded) -> list[str]:
        """Budget warnings past the soft threshold, and a spending spike of this project or
        of the user today: each once (the ledger remembers what was shown)."""
        ledger = self.ledger
        result = recorded.result
        if ledger is None or not isinstance(result, (Answered, Changed)):
            return []
        settings = self.escalator.settings.alerts
        root = self.project().root

        def check() -> list[str]:
            shown = [m for key, m in result.decision.warnings if ledger.notice_once(key)]
            today = day_of(time.time())
            since = (dt.date.fromisoformat(today) - dt.timedelta(days=7)).isoformat()
            try:
                for scope, of in (("project", root), ("user", None)):
                    daily = ledger.daily(since, today, of)
                    found = spike(today, daily, settings, ledger.first_day(of))
                    if found is not None and ledger.notice_once(f"spike:{scope}:{today}"):
                        whose = "this project's" if scope == "project" else "your"
                        shown.append(f"nearline: unusual spending: {whose} {found.describe()}")
            except LedgerError as exc:
                log.warning("cannot check for a spending spike: %s", exc)
            return shown

        return await asyncio.to_thread(check)
