"""Running cases: completion cases through a local model's ``CompletionService`` (the server's
hot path, with the project index for cross-file context), escalation cases through the
escalate-and-record use case (``app.escalations``) with one tier forced, so every request is
routed, checked for privacy and budgets, and recorded in the ledger as the editor's are, with
the client "eval". Each case gives a plain dict of results (kept in the store as it is, and
in the JSON report), its ``outcome`` a ``CaseOutcome`` value."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nearline.accounting.entries import Project
from nearline.accounting.ledger import Ledger
from nearline.accounting.prices import Tokens, provider_price, table_for
from nearline.app.escalations import Escalations
from nearline.completion import CompletionService, build_service
from nearline.config import LOCAL_PROVIDER, Settings
from nearline.documents import OpenDocument
from nearline.errors import DocumentError, EvalError, ModelError
from nearline.escalation import policy, privacy
from nearline.escalation.escalator import (
    MAX_ANSWER_TOKENS,
    Document,
    Escalator,
    Task,
    relative,
)
from nearline.escalation.results import Answered, Changed, Failed, RefusalKind, Refused
from nearline.escalation.router import Decision
from nearline.evaluation.cases import CompletionCase, EscalationCase
from nearline.evaluation.history import GitRepo
from nearline.evaluation.scoring import score_change, score_completion
from nearline.index import FileEntry
from nearline.index.store import ProjectIndex
from nearline.tasks import TaskKind
from nearline.vocab import StrEnum

log = logging.getLogger(__name__)

EVAL_CLIENT = "eval"
"""The ledger's ``client`` for every request an evaluation makes."""
EVAL_BUDGET_MS = 10_000
"""A completion case gets the whole answer (the most ``time_budget_ms`` allows)."""
INPUT_MARGIN = 1.5
"""The worst case of a request's prompt tokens, over the router's estimate (characters / 3.5;
code can run to ~3 characters a token)."""
EVAL_BATCH = 256
"""Prompt tokens per evaluation step. The editor's small steps (``model.n_batch``) let a
keystroke cancel a prompt half evaluated; nothing cancels a case, and a file just opened is
evaluated whole: in large steps that is several times faster on a CPU."""


class CandidateKind(StrEnum):
    MODEL = "model"
    """A local model, over completion cases."""
    TIER = "tier"
    """A routing tier, over escalation cases."""


class CaseOutcome(StrEnum):
    """What became of an escalation case."""

    CHANGED = "changed"
    """The answer's diff applies: scored."""
    UNAPPLIABLE = "unappliable"
    """An answer whose diff does not apply, or with no diff: scored as a miss."""
    FAILED = "failed"
    """Every provider failed: a miss, asked again by the next run."""
    OTHER_TIER = "other-tier"
    """A budget downgraded it to another tier: not this tier's, asked again."""
    REFUSED_PRIVACY = "refused-privacy"
    """Its files or message must stay on this machine: never sent."""
    REFUSED_BUDGET = "refused-budget"
    REFUSED_LOOP = "refused-loop"
    REFUSED_ROUTING = "refused-routing"
    REFUSED_DATA_POLICY = "refused-data-policy"
    """No provider of the tier meets the project's ``privacy.providers``: never sent."""


ANSWERED = (CaseOutcome.CHANGED, CaseOutcome.UNAPPLIABLE)
"""Outcomes of a request the tier answered."""
SCORED = (*ANSWERED, CaseOutcome.FAILED)
"""Outcomes counted in a tier's success rate."""
KEPT = (*ANSWERED, CaseOutcome.REFUSED_PRIVACY)
"""Outcomes a rerun would get again: kept in the store."""


def refused(kind: RefusalKind) -> CaseOutcome:
    return CaseOutcome(f"refused-{kind}")


@dataclass(frozen=True)
class Candidate:
    """A local model (completion cases) or a routing tier (escalation cases)."""

    kind: CandidateKind
    label: str
    key: str
    """Names its results in the store: what changes the answers changes it."""
    path: Path | None = None
    tier: str | None = None


def model_candidate(label: str, path: Path, settings: Settings) -> Candidate:
    try:
        stat = path.stat()
        identity = [path.name, stat.st_size]
    except OSError:
        identity = [str(path), 0]
    used = eval_completion_settings(settings, path)
    knobs = dataclasses.asdict(used.completion) | {"template": used.model.template}
    digest = hashlib.sha1(json.dumps([identity, knobs], sort_keys=True).encode()).hexdigest()
    return Candidate(CandidateKind.MODEL, label, f"model-{digest[:16]}", path=path)


def tier_candidate(tier: str, settings: Settings) -> Candidate:
    """``EvalError`` for a tier that cannot serve a request: unknown, without providers, off
    this machine when the project says ``cloud = false``, or with none that meets its data
    policy (whose providers are the only ones named: they are the ones asked)."""
    if tier not in settings.routing.tiers:
        known = ", ".join(settings.routing.tiers)
        raise EvalError(f"--tiers: no tier named {tier!r} (this project has {known})")
    chain = settings.routing.tiers[tier]
    if not chain:
        raise EvalError(
            f"tier {tier} has no providers; add one under [providers] and list it in "
            f"routing.tiers.{tier} in .nearline.toml"
        )
    if not settings.cloud and any(name != LOCAL_PROVIDER for name in chain):
        raise EvalError(
            f"tier {tier}: cloud = false in this project's settings, so every request would "
            "stay on this machine"
        )
    chain, skipped = policy.split_chain(chain, settings)
    if not chain:
        raise EvalError(policy.refusal(tier, settings, skipped))
    models = [
        f"{name}/{settings.providers[name].model}" if name in settings.providers else name
        for name in chain
    ]
    label = f"{tier} ({', '.join(models)})"
    # A test command changes what a result says (tests_pass): results are kept apart.
    digest = hashlib.sha1(json.dumps([tier, models, settings.eval.test_command]).encode())
    return Candidate(CandidateKind.TIER, label, f"tier-{digest.hexdigest()[:16]}", tier=tier)


def eval_completion_settings(settings: Settings, path: Path) -> Settings:
    """The model at ``path`` answering whole (no time budget cut), without the disk caches:
    a cached answer would say nothing of the model's speed."""
    return dataclasses.replace(
        settings,
        model=dataclasses.replace(
            settings.model, path=str(path), n_batch=max(settings.model.n_batch, EVAL_BATCH)
        ),
        completion=dataclasses.replace(
            settings.completion, time_budget_ms=EVAL_BUDGET_MS, warmup=False
        ),
        cache=dataclasses.replace(settings.cache, enable_disk=False, kv_disk_mb=0),
    )


class CompletionRunner:
    """One local model over completion cases; the model loads once."""

    def __init__(
        self,
        settings: Settings,
        path: Path,
        root: Path,
        index: ProjectIndex | None,
        make_service: Callable[[Settings], CompletionService] = build_service,
    ) -> None:
        self.root = root
        self.settings = eval_completion_settings(settings, path)
        self.service = make_service(self.settings)
        self.service.project = index

    async def load(self) -> None:
        """``ModelError`` when the model cannot be loaded."""
        await self.service.wait_loaded()

    async def run(self, case: CompletionCase) -> dict[str, Any]:
        uri = (self.root / case.path).as_uri()
        opts = self.settings.completion
        out: dict[str, Any] = {"case": case.id, "path": case.path, "expected": case.expected}
        self.service.forget(uri)  # as if the file were just opened
        try:
            view = OpenDocument(uri, case.document, None, opts.max_document_bytes).view()
            result = await self.service.complete(view, case.line, case.column, "utf-32")
        except (DocumentError, ModelError) as exc:
            return out | {"error": str(exc), "suggestion": "", "latency_ms": 0.0}
        score = score_completion(result.text, case.expected)
        g = result.generation
        return (
            out
            | dataclasses.asdict(score)
            | {
                "suggestion": result.text,
                "latency_ms": round(result.latency_ms, 1),
                "prompt_tokens": g.prompt_tokens if g else 0,
                "evaluated_tokens": g.evaluated_tokens if g else 0,
                "generated_tokens": len(g.tokens) if g else 0,
                "eval_ms": round(g.eval_ms, 1) if g else 0.0,
                "generate_ms": round(g.generate_ms, 1) if g else 0.0,
                "error": None,
            }
        )

    def close(self) -> None:
        self.service.close()


@dataclass
class Cap:
    """What the evaluation may spend on cloud tiers."""

    max_usd: float
    spent: float = 0.0

    def fits(self, usd: float) -> bool:
        return self.spent + usd <= self.max_usd + 1e-12


@dataclass
class Planned:
    case: EscalationCase
    est_usd: float
    """The router's estimate (what the run's estimate adds up)."""
    worst_usd: float = 0.0
    """The most the request can cost: its prompt at ``INPUT_MARGIN`` times the estimate, the
    project map written to the cache, the longest answer, on the dearest provider of the tier."""
    refused: str | None = None
    """Why the case's content must stay on this machine (it is not sent)."""


def forced_tier(settings: Settings, tier: str) -> Settings:
    """Every request to ``tier``: no rules, ``tier`` the default (policy still applies)."""
    routing = dataclasses.replace(settings.routing, rules=(), default_tier=tier)
    return dataclasses.replace(settings, routing=routing)


class EscalationRunner:
    """One tier over escalation cases, each recorded in the ledger as the client "eval"."""

    def __init__(
        self,
        settings: Settings,
        tier: str,
        repo: GitRepo,
        ledger: Ledger | None,
        project: Project,
        local_model: Callable[[], Path],
        entries: Callable[[], Sequence[FileEntry]] | None = None,
        **escalator_args: Any,
    ) -> None:
        self.tier = tier
        self.repo = repo
        self.root = repo.root
        self.settings = forced_tier(settings, tier)
        spending = (lambda: ledger.spending(project.root)) if ledger is not None else None
        self.escalator = Escalator(
            self.settings,
            self.root,
            local_model,
            spending,
            project_entries=entries,
            **escalator_args,
        )
        self.escalations = Escalations(self.escalator, ledger, lambda: project, client=EVAL_CLIENT)

    def _request(self, case: EscalationCase) -> tuple[Task, list[Document]]:
        docs = [
            Document((self.root / f.path).as_uri(), str(self.root / f.path), f.before)
            for f in case.files
            if f.before is not None
        ]
        task = Task(
            kind=TaskKind(case.kind),
            uri=docs[0].uri,
            start_line=case.start_line,
            end_line=case.end_line,
            instruction=case.instruction,
            files=tuple(d.uri for d in docs[1:]),
        )
        return task, docs

    def plan(self, case: EscalationCase) -> Planned:
        """The estimate and the worst case, or why the case must stay on this machine (its
        files, or its commit message, which is the request's instruction)."""
        task, docs = self._request(case)
        decision = self.escalator.decide(task, docs, spending=None)
        opts = self.settings.privacy
        message = privacy.check({"the commit message": case.instruction}, (), opts.scan_secrets)
        if decision.private or decision.tier != self.tier or message:
            why = decision.refused or decision.reason
            return Planned(case, 0.0, refused=why if not message else "a secret in the message")
        if decision.refused:
            raise EvalError(f"tier {self.tier}: {decision.refused}")
        return Planned(case, decision.est_cost_usd, self.worst_case(decision))

    def worst_case(self, decision: Decision) -> float:
        table = table_for(self.settings)
        mapped = self.escalator.map_tokens() if self.tier in self.settings.project_map.tiers else 0
        hour = self.settings.project_map.cache_ttl == "1h"
        tokens = Tokens(
            input=int(decision.est_tokens * INPUT_MARGIN),
            cache_write=mapped,
            cache_write_1h=mapped if hour else 0,
            output=MAX_ANSWER_TOKENS,
        )
        return max(
            (
                provider_price(self.settings.providers[name], table).cost(tokens)
                for name in decision.providers
                if name in self.settings.providers
            ),
            default=0.0,
        )

    async def run(self, case: EscalationCase) -> dict[str, Any]:
        task, docs = self._request(case)
        recorded = await self.escalations.run(task, docs)
        result, entry = recorded.result, recorded.entry
        out: dict[str, Any] = {
            "case": case.id,
            "kind": case.kind,
            "files": [f.path for f in case.files],
            "cost_usd": entry.cost_usd,
            "latency_ms": round(entry.latency_ms, 1),
            "input_tokens": entry.tokens.input + entry.tokens.cache_read + entry.tokens.cache_write,
            "output_tokens": entry.tokens.output,
        }
        if isinstance(result, Refused):
            return out | {"outcome": refused(result.kind).value, "reason": result.reason}
        if result.decision.tier != self.tier:
            why = f"sent to the {result.decision.tier} tier ({result.decision.reason})"
            return out | {"outcome": CaseOutcome.OTHER_TIER.value, "reason": why}
        if isinstance(result, Failed):
            return out | {"outcome": CaseOutcome.FAILED.value, "reason": str(result.error)}
        before = {f.path: f.before for f in case.files}
        real = {f.path: f.after for f in case.files}
        answer: dict[str, str | None] | None = None
        reason = ""
        if isinstance(result, Changed):
            answer = {relative(c.path, self.root): c.new_text for c in result.changes}
        elif isinstance(result, Answered):
            reason = "the answer holds no diff"
        else:
            reason = result.reason
        tests = None
        command = self.settings.eval.test_command
        if answer is not None and command:
            tests, why_not = await self.run_tests(case.commit, answer, command)
            reason = why_not or reason
        score = score_change(before, real, answer, tests)
        outcome = CaseOutcome.CHANGED if answer is not None else CaseOutcome.UNAPPLIABLE
        return out | dataclasses.asdict(score) | {"outcome": outcome.value, "reason": reason}

    async def run_tests(
        self, sha: str, answer: dict[str, str | None], command: str
    ) -> tuple[bool | None, str]:
        """The test command in a worktree of ``sha``'s parent with ``answer`` written in: whether
        it passed, or None and why it could not run. The command runs in a session of its
        own: a timeout or Ctrl-C ends it and everything it started."""
        try:
            with self.repo.worktree(f"{sha}^") as tree:
                for rel, text in answer.items():
                    target = (tree / rel).resolve()
                    if tree.resolve() not in target.parents:
                        return False, f"the answer writes outside the project: {rel}"
                    if text is None:
                        target.unlink(missing_ok=True)
                    else:
                        target.parent.mkdir(parents=True, exist_ok=True)
                        target.write_text(text, encoding="utf-8")
                return await self._command(command, tree)
        except (EvalError, OSError) as exc:
            return None, f"the tests could not run: {exc}"

    async def _command(self, command: str, cwd: Path) -> tuple[bool | None, str]:
        proc = await asyncio.create_subprocess_shell(
            command,
            cwd=cwd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
        timeout = self.settings.eval.test_timeout_s
        try:
            code = await asyncio.wait_for(proc.wait(), timeout)
        except (asyncio.TimeoutError, asyncio.CancelledError) as exc:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
            if isinstance(exc, asyncio.CancelledError):
                raise
            return False, f"the tests took over {timeout} s"
        return code == 0, ""

    async def aclose(self) -> None:
        await self.escalator.aclose()


def cacheable(result: dict[str, Any]) -> bool:
    """A result a later run would get again (see ``KEPT``); a provider failure, a budget or
    loop refusal, another tier's answer are asked again."""
    return result.get("outcome") in KEPT
