"""Every request of the month through what the server runs: escalations through
``app.escalations.Escalations`` (route, privacy, prompt, nearline's HTTP engine, the ledger row
with its cost), each developer with their own, all sending through one transport that stamps
each request with its simulated time; autocomplete rows as the LSP server records them."""

from __future__ import annotations

import asyncio
import contextvars
import random
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from costbench.provider import SEQ_HEADER, TS_HEADER
from costbench.workload import LABELS, PROJECT, Request, SourceFile, autocomplete_entry
from nearline.accounting.entries import Entry, Project
from nearline.accounting.ledger import Ledger
from nearline.app.escalations import Escalations
from nearline.catalog import default_model_path
from nearline.config import Settings
from nearline.documents import language_of
from nearline.escalation.escalator import Document, Escalator, Task
from nearline.escalation.prompts import POINT_AT_LINES
from nearline.escalation.results import (
    Changed,
    EscalationResult,
    Failed,
    Refused,
    Unappliable,
)
from nearline.escalation.router import Decision
from nearline.index import FileEntry, scan_text

SENDING: contextvars.ContextVar[tuple[float, int] | None] = contextvars.ContextVar(
    "sending", default=None
)
"""The simulated time and sequence number of the request the current task is sending."""


def simulated_time() -> float:
    """The simulated time of the request being sent (the project map's clock)."""
    sending = SENDING.get()
    return sending[0] if sending is not None else time.time()


class KeptTransport(httpx.AsyncBaseTransport):
    """One connection pool for every engine (closing an engine leaves it open); tells the
    benchmark server the simulated time of each request."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        sending = SENDING.get()
        if sending is not None:
            request.headers[TS_HEADER] = repr(sending[0])
            request.headers[SEQ_HEADER] = str(sending[1])
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        pass


@dataclass
class Run:
    settings: Settings
    repo: list[SourceFile]
    roots: list[Path]
    ledger: Ledger
    klass: dict[str, str] = field(default_factory=dict)
    """Ledger uid → request class."""
    weight: dict[str, float] = field(default_factory=dict)
    """Ledger uid → how many requests of the month it stands for."""
    decisions: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    """Class → tier → requests, as the router decided for every request of the month."""
    estimates: dict[str, list[float]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))
    """Class → [router's estimated prompt tokens, estimated USD] over the requests sent."""
    failures: Counter[str] = field(default_factory=Counter)
    per_dev: dict[int, Escalations] = field(default_factory=dict)
    transport: KeptTransport = field(default_factory=KeptTransport)
    price_table: Any = None
    entries: list[FileEntry] = field(default_factory=list)
    """The project index of the repository (every checkout is the same commit)."""
    count: Callable[[str], int] | None = None
    """The simulated provider's token count (for the naive baseline)."""
    naive: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    """Ledger uid → (input, output, map) tokens of the same request sent naively: input
    without the project map, output with a change answered as the whole rewritten files
    instead of a diff; and the map's tokens in the prompt nearline sent."""
    map_tokens: int = 0
    """The project map's tokens, as the provider counts them (the last one sent)."""

    def __post_init__(self) -> None:
        self.entries = [scan_text(f.rel, f.text, language_of(f.rel)) for f in self.repo]

    def project(self, dev: int) -> Project:
        return Project(str(self.roots[dev]), PROJECT)

    def docs(self, req: Request) -> list[Document]:
        root = self.roots[req.dev]
        out = []
        for i in req.files:
            path = root / self.repo[i].rel
            out.append(Document(path.as_uri(), str(path), self.repo[i].text, 1))
        return out

    def task(self, req: Request, docs: list[Document]) -> Task:
        return Task(
            kind=req.kind,
            uri=docs[0].uri,
            start_line=req.start_line,
            end_line=req.end_line,
            instruction=req.instruction,
            files=tuple(d.uri for d in docs[1:]),
            diagnostic=req.diagnostic,
        )

    def escalations(self, dev: int) -> Escalations:
        """One per developer, as each runs their own server (its own loop guard, breaker and
        project); every provider engine sends through the one ``transport``."""
        if dev not in self.per_dev:
            project = self.project(dev)
            escalator = Escalator(
                self.settings,
                self.roots[dev],
                default_model_path,
                transport=self.transport,
                project_entries=lambda: self.entries,
                clock=simulated_time,
            )
            self.per_dev[dev] = Escalations(escalator, self.ledger, lambda: project)
        return self.per_dev[dev]

    def record(self, req: Request, entry: Entry, weight: float = 1.0) -> None:
        uid = self.ledger.record(entry)
        self.klass[uid] = req.klass
        self.weight[uid] = weight

    def decide(self, req: Request) -> Decision:
        docs = self.docs(req)
        decision = self.escalations(req.dev).escalator.decide(self.task(req, docs), docs)
        self.decisions[req.klass][decision.tier] += 1
        return decision

    def note(self, req: Request, decision: Decision, routed: bool) -> None:
        est = self.estimates[req.klass]
        est[0] += decision.est_tokens
        est[1] += decision.est_cost_usd
        if routed:
            self.decisions[req.klass][decision.tier] += 1

    async def escalate(self, req: Request, weight: float = 1.0, routed: bool = True) -> None:
        """What the server does for a task command, without the editor: escalate and record
        (``app.escalations``); the row is tagged with the request's class and weight.
        ``routed``: count its tier among the router's decisions (not yet counted)."""
        docs = self.docs(req)
        recorded = await self.escalations(req.dev).run(self.task(req, docs), docs, ts=req.ts)
        self.klass[recorded.entry.uid] = req.klass
        self.weight[recorded.entry.uid] = weight
        result = recorded.result
        self.naive[recorded.entry.uid] = self.naive_tokens(req, recorded.entry, result)
        why = failure_of(result)
        if why is not None:
            self.failures[f"{req.klass}: {why}"] += 1
        if result.decision is not None:
            self.note(req, result.decision, routed)

    def naive_tokens(
        self, req: Request, entry: Entry, result: EscalationResult
    ) -> tuple[int, int, int]:
        """(input, output, map) tokens: see ``naive``."""
        t = entry.tokens
        prompt, output, in_map = t.input + t.cache_read + t.cache_write, t.output, 0
        if self.count is None or not prompt:
            return prompt, output, 0
        holder = self.escalations(req.dev).escalator.map
        mapped = entry.tier in self.settings.project_map.tiers  # the tiers that get the map
        if mapped and holder is not None and holder.last and holder.last.text:
            self.map_tokens = in_map = self.count("<user>" + holder.last.text, True) + 4
            prompt -= in_map
        prompt += self.pointed_selection(req)
        if isinstance(result, Changed):
            rewritten = [c.new_text for c in result.changes if c.old_text is not None]
            if rewritten:
                output = sum(self.count(t) for t in rewritten) + self.count(result.text[:200])
        return prompt, output, in_map

    def pointed_selection(self, req: Request) -> int:
        """The selection's tokens when nearline pointed at it in its file (``prompts``) and a
        naive tool would have sent it again: its text, fenced."""
        lines = self.repo[req.files[0]].text.splitlines(keepends=True)
        text = "".join(lines[req.start_line : req.end_line + 1])
        if self.count is None or not text.strip():
            return 0
        if req.end_line - req.start_line + 1 < POINT_AT_LINES:
            return 0  # sent again: in the prompt already
        return self.count("\n```\n" + text.rstrip() + "\n```")


def failure_of(result: EscalationResult) -> str | None:
    """Why an escalation was not answered, or its answer not applied; None when it was."""
    if isinstance(result, Refused):
        return f"refused ({result.kind}): {result.reason}"[:160]
    if isinstance(result, Failed):
        return f"{type(result.error).__name__}: {result.error}"[:160]
    if isinstance(result, Unappliable):
        return "the answer's diff did not apply"
    return None


async def run_all(run: Run, requests: list[Request], concurrency: int, progress: bool) -> int:
    """Every request, in simulated-time order, ``concurrency`` escalations in flight."""
    slots = asyncio.Semaphore(concurrency)
    pending: set[asyncio.Task[None]] = set()
    sent = 0
    started = time.perf_counter()
    escalations = sum(1 for r in requests if r.klass != "autocomplete")

    async def one(req: Request, seq: int) -> None:
        SENDING.set((req.ts, seq))  # this task's own context
        try:
            await run.escalate(req)
        finally:
            slots.release()

    for req in requests:
        if req.klass == "autocomplete":
            main = run.roots[req.dev] / run.repo[req.seed % len(run.repo)].rel
            run.record(req, autocomplete_entry(req, run.project(req.dev), str(main)))
            run.decisions[req.klass]["local"] += 1
            continue
        await slots.acquire()
        task = asyncio.create_task(one(req, sent))
        pending.add(task)
        task.add_done_callback(pending.discard)
        sent += 1
        if sent % 5000 == 0:
            run.ledger.flush(60)  # keep the ledger's queue short (it drops rows past 100k)
            if progress:
                rate = sent / (time.perf_counter() - started)
                print(
                    f"  {sent}/{escalations} escalations sent ({rate:.0f}/s)",
                    file=sys.stderr,
                    flush=True,
                )
    if pending:
        await asyncio.gather(*pending)
    return sent


async def run_sample(
    run: Run, requests: list[Request], sample: int, seed: int, max_prompt: int
) -> int:
    """Route every request; send ``sample`` per class through the server, each standing for
    its class's share. Only requests whose estimated prompt fits ``max_prompt`` are drawn."""
    rng = random.Random(seed + 1)
    by_class: dict[str, list[Request]] = defaultdict(list)
    fits: dict[str, list[Request]] = defaultdict(list)
    for req in requests:
        if req.klass == "autocomplete":
            main = run.roots[req.dev] / run.repo[req.seed % len(run.repo)].rel
            run.record(req, autocomplete_entry(req, run.project(req.dev), str(main)))
            run.decisions[req.klass]["local"] += 1
        else:
            decision = run.decide(req)
            by_class[req.klass].append(req)
            if decision.est_tokens * 1.25 <= max_prompt:
                fits[req.klass].append(req)
    sent = 0
    for klass, reqs in by_class.items():
        chosen = rng.sample(fits[klass], min(sample, len(fits[klass])))
        for req in chosen:
            t0 = time.perf_counter()
            await run.escalate(req, weight=len(reqs) / len(chosen), routed=False)
            print(
                f"  {LABELS[klass]}: {req.kind} on {len(req.files)} file(s), "
                f"{time.perf_counter() - t0:.0f} s",
                file=sys.stderr,
                flush=True,
            )
            sent += 1
    return sent
