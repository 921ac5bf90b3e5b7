"""Escalated requests (refactor, explain, write tests, fix, ask): route, check privacy and
budgets, ask the chosen tier's providers in order (those the project's data policy allows;
``router`` drops the others), and turn a diff answer into checked edits.

``Escalator.run`` gives an ``EscalationResult`` (see ``results``); nothing here touches the
editor or the ledger (``app.escalations`` records, ``lsp`` shows and applies).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx

from nearline.accounting import alerts, budget
from nearline.accounting.budget import Spending
from nearline.config import LOCAL_PROVIDER, ProviderSettings, Settings
from nearline.documents import language_of, split_lines
from nearline.errors import DiffError, ModelError, ProviderError
from nearline.escalation import edits, privacy
from nearline.escalation.project_map import MapHolder, MapOptions
from nearline.escalation.prompts import (
    Selection,
    SourceFile,
    build_messages,
    project_cache_key,
    shown_in,
)
from nearline.escalation.results import (
    Answered,
    Changed,
    EscalationResult,
    Failed,
    FileChange,
    RefusalKind,
    Refused,
    Unappliable,
)
from nearline.escalation.router import Decision, RouteRequest, estimate_tokens, route_for
from nearline.index import FileEntry
from nearline.providers import (
    ChatEngine,
    ChatRequest,
    CircuitBreaker,
    LocalChatEngine,
    ProviderChain,
    make_engine,
)
from nearline.tasks import TASKS, TaskKind

log = logging.getLogger(__name__)

MAX_ANSWER_TOKENS = 4096
LOCAL_ANSWER_TOKENS = 512
"""The embedded model is small: longer answers only ramble, slowly."""


@dataclass(frozen=True)
class Document:
    uri: str
    path: str
    """File-system path."""
    text: str
    version: int | None = None


@dataclass(frozen=True)
class Task:
    kind: TaskKind
    uri: str
    start_line: int = 0
    end_line: int = 0
    """Inclusive: the selection's (or the cursor's) lines."""
    instruction: str = ""
    files: tuple[str, ...] = ()
    """URIs or paths of other files the request involves."""
    diagnostic: str = ""


def relative(path: str, root: Path | None) -> str:
    if root is not None:
        try:
            return Path(path).resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            pass
    return Path(path).as_posix()


def refusal_kind(decision: Decision) -> RefusalKind:
    if decision.private:
        return RefusalKind.PRIVACY
    if decision.over_budget:
        return RefusalKind.BUDGET
    if decision.excluded:
        return RefusalKind.DATA_POLICY
    return RefusalKind.ROUTING


class Escalator:
    def __init__(
        self,
        settings: Settings,
        root: Path | None,
        local_model: Callable[[], Path],
        spending: Callable[[], Spending | None] | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        project_entries: Callable[[], Sequence[FileEntry]] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.root = root
        self.transport = transport
        """The HTTP transport every provider engine uses (None: httpx's own)."""
        self.map = MapHolder(project_entries) if project_entries is not None else None
        """The project map cloud prompts start with (None: no project index, no map)."""
        self.clock = clock
        """Wall-clock seconds, for the map's refresh periods."""
        self._local_model = local_model
        self._local: LocalChatEngine | None = None
        self._engines: dict[str, tuple[ProviderSettings, ChatEngine]] = {}
        """Provider engines kept between requests: their HTTP connections (and TLS set-up)
        are reused."""
        self.breaker = CircuitBreaker()
        self._closing: set[asyncio.Future[None]] = set()
        self.spending = spending
        """What has been spent so far (from the ledger); None: no budgets apply."""
        self.loops = alerts.LoopGuard()

    def reconfigure(self, settings: Settings, root: Path | None) -> None:
        """New settings (and workspace root): what is derived from them follows. Provider
        engines whose settings changed are replaced on their next request."""
        self.settings = settings
        self.root = root

    # -- deciding ----------------------------------------------------------------------------
    def _sources(self, task: Task, docs: Sequence[Document]) -> tuple[list[SourceFile], Selection]:
        main = docs[0]
        lines = split_lines(main.text)
        end = min(max(task.end_line, task.start_line), max(len(lines) - 1, 0))
        sel = Selection(
            relative(main.path, self.root),
            task.start_line,
            end,
            "".join(lines[task.start_line : end + 1]),
        )
        files = [SourceFile(relative(d.path, self.root), d.text) for d in docs]
        return files, sel

    def privacy_verdict(self, docs: Sequence[Document]) -> str | None:
        """Why these documents must stay on this machine, or None."""
        findings = privacy.check(
            {d.path: d.text for d in docs},
            self.settings.privacy.local_only,
            scan=self.settings.privacy.scan_secrets,
            root=str(self.root) if self.root else None,
        )
        return privacy.refuse_message(findings) if findings else None

    def current_spending(self) -> Spending | None:
        return self.spending() if self.spending is not None else None

    def decide(
        self,
        task: Task,
        docs: Sequence[Document],
        *,
        private: str | None | Literal[True] = True,
        spending: Spending | None | Literal[True] = True,
    ) -> Decision:
        """Routing, privacy and budgets for ``task``; no network. ``private`` is a verdict from
        ``privacy_verdict`` already made for ``docs``, or True to make it here; ``spending``
        likewise (None: no budgets)."""
        files, sel = self._sources(task, docs)
        # The prompt holds the files, then the selection again with the request (unless it is
        # pointed at in its file: then the router counts it only for a provider it is sent to).
        pointed = shown_in(sel, files)
        texts = [f.text for f in files] + [
            "" if pointed else sel.text,
            task.instruction,
            task.diagnostic,
        ]
        request = RouteRequest(
            task=task.kind,
            files=tuple(f.path for f in files),
            selection_lines=sel.end_line - sel.start_line + 1,
            est_tokens=estimate_tokens(texts),
            language=language_of(docs[0].path),
            map_tokens=self.map_tokens(),
            pointed_tokens=estimate_tokens([sel.text]) if pointed else 0,
        )
        verdict = self.privacy_verdict(docs) if private is True else private
        decision = route_for(request, self.settings, private=verdict or None)
        spent = self.current_spending() if spending is True else spending
        if not isinstance(spent, Spending) or decision.refused or not decision.cloud:
            return decision
        return self._within_budget(request, decision, spent, verdict or None)

    def _within_budget(
        self, request: RouteRequest, decision: Decision, spent: Spending, private: str | None
    ) -> Decision:
        """``decision`` if it fits every budget; else refused, or downgraded where the
        project says so (and the cheaper tier fits)."""
        opts = self.settings.budget

        def fits(d: Decision) -> budget.Verdict:
            tokens = d.est_tokens + d.est_output_tokens
            team = self.settings.team
            closed = team is not None and team.when_unreachable == "closed"
            return budget.check(
                opts, spent, est_usd=d.est_cost_usd, est_tokens=tokens, team_closed=closed
            )

        check = fits(decision)
        left = budget.team_left(opts, spent)
        if check.exceeded is None:
            return dataclasses.replace(decision, warnings=check.warnings, team_left=left)
        if opts.on_exceeded == "downgrade" and opts.downgrade_to != decision.tier:
            lower = route_for(
                request,
                self.settings,
                private=private,
                tier=opts.downgrade_to,
                reason=f"budget: {check.message}; downgraded to {opts.downgrade_to}",
            )
            if lower.refused or not lower.cloud:
                return lower
            again = fits(lower)
            if again.exceeded is None:
                return dataclasses.replace(lower, warnings=again.warnings, team_left=left)
        return dataclasses.replace(decision, refused=check.message, over_budget=True)

    # -- running -----------------------------------------------------------------------------
    def _engine(self, name: str) -> ChatEngine:
        if name == LOCAL_PROVIDER:
            if self._local is None:
                self._local = LocalChatEngine(self._local_model(), self.settings.model)
            return self._local
        wanted = self.settings.providers[name]
        kept = self._engines.get(name)
        if kept is not None and kept[0] == wanted:
            return kept[1]
        engine = make_engine(wanted, self.transport)
        self._engines[name] = (wanted, engine)
        if kept is not None:  # the provider's settings changed
            closing = asyncio.ensure_future(kept[1].aclose())
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)
        return engine

    async def aclose(self) -> None:
        engines = [engine for _, engine in self._engines.values()]
        self._engines.clear()
        for engine in engines:
            await engine.aclose()

    async def run(
        self, task: Task, docs: Sequence[Document], on_text: Callable[[str], None] | None = None
    ) -> EscalationResult:
        """Ask the decided providers. Privacy, budgets and a runaway loop are checked before
        anything is sent (``Refused``); when every provider fails the result is ``Failed``;
        an answer whose diff does not apply is ``Unappliable``. Nothing is changed here."""
        decision = self.decide(task, docs)
        if decision.refused:
            return Refused(decision.refused, refusal_kind(decision), decision)
        same = (task.kind, task.uri, task.start_line, task.end_line)
        loop = self.loops.check((*same, task.instruction, task.diagnostic), self.settings.alerts)
        if loop is not None:
            return Refused(loop, RefusalKind.LOOP, decision)
        files, sel = self._sources(task, docs)
        local = decision.providers == (LOCAL_PROVIDER,)
        # The embedded model's context is small: the map is for the cloud tiers that the
        # settings name. A rebuild reads every entry and scans it for secrets: off the loop.
        mapped = not local and decision.tier in self.settings.project_map.tiers
        project_map = await asyncio.to_thread(self.project_map) if mapped else ""
        messages = build_messages(
            task.kind,
            files,
            sel,
            task.instruction,
            task.diagnostic,
            project_map,
            self.settings.project_map.cache_ttl,
            point_at=decision.bills_input,
        )
        request = ChatRequest(
            messages=messages,
            max_tokens=LOCAL_ANSWER_TOKENS if local else MAX_ANSWER_TOKENS,
            cache_key=project_cache_key(self.project_name(docs)),
        )
        engines = [self._engine(name) for name in decision.providers]
        try:
            result = await ProviderChain(engines, self.breaker).chat(request, on_text)
        except (ProviderError, ModelError) as exc:  # ModelError: the local tier's model
            return Failed(exc, decision)
        log.info(
            "%s answered by %s (%s) in %.0f ms",
            task.kind,
            result.provider,
            result.model,
            result.latency_ms,
        )
        wants_change = TASKS[TaskKind(task.kind)].changes_code or (
            task.kind == TaskKind.ASK and ("\n--- " in result.text or "```diff" in result.text)
        )
        if not wants_change:
            return Answered(decision, result, result.text)
        try:
            changes = self.plan_changes(result.text, docs)
        except DiffError as exc:
            return Unappliable(decision, result, result.text, str(exc))
        return Changed(decision, result, result.text, changes)

    def project_name(self, docs: Sequence[Document]) -> str:
        """The project's name, alike in every checkout (not its path)."""
        if self.settings.usage.project_name:
            return self.settings.usage.project_name
        return self.root.name if self.root is not None else str(Path(docs[0].path).parent)

    def map_tokens(self) -> int:
        """The project map's size as last built (its budget before the first build); 0 when
        there is none. Cheap: for estimates on the event loop."""
        opts = self.settings.project_map
        if self.map is None or not opts.enable:
            return 0
        last = self.map.last
        if last is not None:
            return last.tokens
        return opts.max_tokens if self.map.entries() else 0

    def project_map(self) -> str:
        """The project map for a cloud prompt ("" when off or without an index)."""
        opts = self.settings.project_map
        if self.map is None or not opts.enable:
            return ""
        options = MapOptions(
            opts.max_tokens,
            opts.refresh_minutes,
            opts.rebuild_changed_share,
            tuple(self.settings.privacy.local_only),
            self.settings.privacy.scan_secrets,
        )
        return self.map.get(options, self.clock()).text

    def plan_changes(self, answer: str, docs: Sequence[Document]) -> tuple[FileChange, ...]:
        """Every file the answer's diff touches, checked against its current text; all or
        nothing (``DiffError`` names the file, the hunk and why)."""
        patches = edits.parse_diff(edits.extract_diff(answer))
        by_path: Mapping[str, Document] = {d.path: d for d in docs}
        changes: list[FileChange] = []
        for patch in patches:
            target = patch.new_path or patch.old_path or ""
            doc = None
            if patch.old_path is not None:
                found = edits.match_path(patch, by_path)
                doc = by_path[found] if found else self._read(patch.old_path)
                if doc is None:
                    raise DiffError(
                        f"the answer changes {patch.old_path}, which is not part "
                        "of this request and not in the project"
                    )
            if doc is None:  # a new file
                path = str((self.root or Path(docs[0].path).parent) / target)
                new = edits.apply_edits("", edits.plan_file("", patch))
                changes.append(FileChange(Path(path).as_uri(), path, None, new, None))
                continue
            planned = edits.plan_file(doc.text, patch)
            changes.append(
                FileChange(
                    doc.uri, doc.path, doc.text, edits.apply_edits(doc.text, planned), doc.version
                )
            )
        return tuple(changes)

    def _read(self, rel: str) -> Document | None:
        if self.root is None:
            return None
        path = (self.root / rel).resolve()
        if not path.is_file() or self.root.resolve() not in path.parents:
            return None
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None
        return Document(path.as_uri(), str(path), text)
