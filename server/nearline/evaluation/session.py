"""One ``nearline eval`` run: read the history, make (or find) each commit's cases, run every
candidate on the commits it has no results for, and gather everything for the report.

Results are stored per candidate and commit once all of that commit's cases are done, so
Ctrl-C loses at most the commit in progress, and a rerun evaluates only what is new. Cloud
tiers run only after their estimated cost is shown and within ``max_usd``: a run whose
estimate is over it asks (``confirm``) or stops before spending anything, and a run stops
before a request whose worst case (``Planned.worst_usd``) would take the spending past it."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nearline.accounting.entries import Project
from nearline.accounting.ledger import Ledger
from nearline.catalog import DEFAULT_MODEL, choose_model, installed_path, load_catalog
from nearline.catalog.entries import default_model_path
from nearline.config import Settings
from nearline.errors import CatalogError, EvalError, ModelError
from nearline.evaluation.cases import CASES_VERSION, CommitCases, EscalationCase, cases_of
from nearline.evaluation.history import Commit, GitRepo, RepoState
from nearline.evaluation.runner import (
    Candidate,
    CandidateKind,
    Cap,
    CaseOutcome,
    CompletionRunner,
    EscalationRunner,
    Planned,
    cacheable,
    model_candidate,
    tier_candidate,
)
from nearline.evaluation.store import EvalStore
from nearline.index.store import ProjectIndex
from nearline.paths import models_download_dir

log = logging.getLogger(__name__)

Say = Callable[[str], None]


@dataclass(frozen=True)
class EvalOptions:
    commits: int = 200
    since: str | None = None
    per_commit: int = 1
    """Completion cases per commit. One: a case costs a file's prompt evaluated from
    nothing, ~2-3 s with the 0.5B model on a 2-core CPU, so 20 commits take about a minute."""
    models: tuple[str, ...] = ()
    """Catalog names, "embedded", or GGUF paths; empty: the serving model and every pulled
    catalog model."""
    tiers: tuple[str, ...] = ()
    max_usd: float = 0.25


@dataclass
class EvalRun:
    """What a run found and measured (the report reads it)."""

    project: str
    state: RepoState
    options: EvalOptions
    commits: list[Commit] = field(default_factory=list)
    cases: dict[str, CommitCases] = field(default_factory=dict)
    candidates: list[Candidate] = field(default_factory=list)
    results: dict[str, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)
    """Candidate key → commit → the results of its cases."""
    errors: dict[str, str] = field(default_factory=dict)
    """Candidate key → why it could not be evaluated."""
    estimates: dict[str, float] = field(default_factory=dict)
    """Tier candidate key → estimated cost of the cases it had yet to run."""
    spent_usd: float = 0.0
    notes: list[str] = field(default_factory=list)
    interrupted: bool = False
    started: float = field(default_factory=time.time)
    serving: str = ""
    """The label of the model that serves completions now."""

    def completion_cases(self) -> int:
        return sum(len(c.completion) for c in self.cases.values())

    def escalation_cases(self) -> list[EscalationCase]:
        return [c.escalation for c in self.cases.values() if c.escalation is not None]


def serving_label(settings: Settings) -> str:
    chosen = choose_model(settings.model)
    return chosen.name or chosen.path.name


def model_candidates(settings: Settings, names: Sequence[str]) -> list[Candidate]:
    """The models to evaluate: ``names``, else the one that serves and every pulled one."""
    found: list[tuple[str, Path]] = []
    if names:
        for name in names:
            if name in ("embedded", DEFAULT_MODEL):
                found.append((DEFAULT_MODEL, default_model_path()))
            elif name.endswith(".gguf") or "/" in name:
                path = Path(name).expanduser()
                if not path.is_file():
                    raise EvalError(f"--models: no model file at {path}")
                found.append((path.name, path))
            else:
                try:
                    found.append((name, installed_path(name)))
                except (CatalogError, ModelError) as exc:
                    raise EvalError(f"--models: {exc}") from None
    else:
        serving = choose_model(settings.model)
        found.append((serving_label(settings), serving.path))
        try:
            entries = list(load_catalog().values())
        except CatalogError:
            entries = []
        folder = models_download_dir()
        for entry in entries:
            if not entry.bundled and (folder / entry.file).is_file():
                found.append((entry.name, folder / entry.file))
    seen: set[Path] = set()
    out = []
    for label, path in found:
        if path.resolve() not in seen:
            seen.add(path.resolve())
            out.append(model_candidate(label, path, settings))
    return out


def results_key(cand: Candidate, options: EvalOptions) -> str:
    """Where a candidate's results on a commit are kept: a model's depend on how many cases a
    commit has too; a tier's (paid for) only on how its one case is made."""
    if cand.kind == CandidateKind.MODEL:
        return f"{cand.key}/{CASES_VERSION}.{options.per_commit}"
    return f"{cand.key}/{CASES_VERSION}"


def read_history(repo: GitRepo, store: EvalStore, say: Say, run: EvalRun) -> None:
    """The commits, and each one's cases (from the store, else made and kept), as
    ``run.options`` asks."""
    options = run.options
    commits = repo.commits(options.commits, options.since)
    usable = [c for c in commits if c.parent is not None]
    if not usable:
        raise EvalError(
            "no commit here has a parent to compare with"
            + (" (a shallow clone: `git fetch --unshallow`)" if run.state.shallow else "")
            + (f" since {options.since}" if options.since else "")
            + ": nearline eval needs at least two commits of history"
        )
    run.commits = usable
    made = 0
    for commit in usable:
        cases = store.cases(commit.sha, options.per_commit)
        if cases is None:
            try:
                changes = repo.changes(commit)
            except EvalError as exc:  # one unreadable commit: the others still count
                run.notes.append(f"commit {commit.sha[:12]} left out: {exc}")
                continue
            cases = cases_of(commit, changes, options.per_commit)
            store.put_cases(cases, options.per_commit)
            made += 1
        run.cases[commit.sha] = cases
    say(
        f"{len(usable)} commits: {run.completion_cases()} completion cases, "
        f"{len(run.escalation_cases())} escalation cases"
        + (f" ({made} commits read, {len(usable) - made} from the cache)" if made else " (cached)")
    )


def unfinished(run: EvalRun, store: EvalStore, cand: Candidate) -> list[str]:
    """The commits with cases for ``cand`` and no results of it yet; the results kept of the
    others go into ``run.results``."""
    done = run.results.setdefault(cand.key, {})
    todo = []
    for sha, cases in run.cases.items():
        kept = store.results(results_key(cand, run.options), sha)
        if kept is not None:
            done[sha] = kept
        elif cases.completion if cand.kind == CandidateKind.MODEL else cases.escalation:
            todo.append(sha)
    return todo


async def run_models(
    run: EvalRun,
    store: EvalStore,
    settings: Settings,
    root: Path,
    index: ProjectIndex | None,
    say: Say,
    make_runner: Callable[..., CompletionRunner] = CompletionRunner,
) -> None:
    for cand in [c for c in run.candidates if c.kind == CandidateKind.MODEL]:
        todo = unfinished(run, store, cand)
        if not todo or cand.path is None:
            continue
        total = sum(len(run.cases[sha].completion) for sha in todo)
        say(f"{cand.label}: {total} completion cases")
        runner = make_runner(settings, cand.path, root, index)
        try:
            try:
                await runner.load()
            except ModelError as exc:
                run.errors[cand.key] = str(exc)
                say(f"{cand.label}: {exc}")
                continue
            n, t0 = 0, time.perf_counter()
            for sha in todo:
                results = []
                for case in run.cases[sha].completion:
                    results.append(await runner.run(case))
                    n += 1
                store.put_results(results_key(cand, run.options), sha, results)
                run.results[cand.key][sha] = results
                left = (time.perf_counter() - t0) / n * (total - n)
                say(f"{cand.label}: {n}/{total}" + (f", ~{left:.0f} s left" if n < total else ""))
        finally:
            runner.close()


def plan_tiers(
    run: EvalRun, store: EvalStore, runners: dict[str, EscalationRunner]
) -> dict[str, list[Planned]]:
    """Per tier candidate: the cases it has yet to run, with their estimates."""
    plans: dict[str, list[Planned]] = {}
    for cand in [c for c in run.candidates if c.kind == CandidateKind.TIER]:
        todo = unfinished(run, store, cand)
        plan = [runners[cand.key].plan(c) for sha in todo if (c := run.cases[sha].escalation)]
        plans[cand.key] = plan
        run.estimates[cand.key] = sum(p.est_usd for p in plan)
        if any(p.refused is None for p in plan) and not any(p.worst_usd for p in plan):
            run.notes.append(
                f"{cand.label}: no price is known for its model, so its requests count $0 "
                "against --max-usd; set its prices under [providers] or [prices]"
            )
    return plans


async def run_tiers(
    run: EvalRun,
    store: EvalStore,
    runners: dict[str, EscalationRunner],
    say: Say,
    confirm: Callable[[str], bool] | None,
) -> None:
    """Every tier's cases, within the cap (see the module)."""
    plans = plan_tiers(run, store, runners)
    cap = Cap(run.options.max_usd)
    total = sum(run.estimates.values())
    tiers = [c for c in run.candidates if c.kind == CandidateKind.TIER]
    for cand in tiers:
        n = len(plans[cand.key])
        say(f"{cand.label}: {n} escalation cases, estimated ${run.estimates[cand.key]:.4f}")
    if total > cap.max_usd:
        question = (
            f"the estimated cost, ${total:.4f}, is over --max-usd ${cap.max_usd:.2f}: "
            "run the cases that fit under it?"
        )
        if confirm is None or not confirm(question):
            raise EvalError(
                f"the estimated cost, ${total:.4f}, is over --max-usd ${cap.max_usd:.2f}; "
                "nothing was sent. Raise --max-usd, or evaluate fewer commits (--commits)"
            )
    for cand in tiers:
        runner, done = runners[cand.key], run.results[cand.key]
        for i, planned in enumerate(plans[cand.key]):
            sha = planned.case.commit
            result: dict[str, Any]
            if planned.refused is not None:
                result = {
                    "case": planned.case.id,
                    "kind": planned.case.kind,
                    "outcome": CaseOutcome.REFUSED_PRIVACY.value,
                    "reason": planned.refused,
                    "cost_usd": 0.0,
                }
            elif not cap.fits(planned.worst_usd):
                run.notes.append(
                    f"{cand.label}: stopped after {i} of {len(plans[cand.key])} cases: the "
                    f"next could cost up to ${planned.worst_usd:.4f} (its longest answer), "
                    f"past --max-usd ${cap.max_usd:.2f} with ${cap.spent:.4f} spent"
                )
                break
            else:
                result = await runner.run(planned.case)
                cap.spent += result["cost_usd"]
                run.spent_usd = cap.spent
            done[sha] = [result]
            if cacheable(result):
                store.put_results(results_key(cand, run.options), sha, [result])
            say(f"{cand.label}: {i + 1}/{len(plans[cand.key])} (${cap.spent:.4f} spent)")


async def evaluate(
    settings: Settings,
    *,
    store: EvalStore,
    run: EvalRun,
    repo: GitRepo,
    index: ProjectIndex | None,
    ledger: Ledger | None,
    project: Project,
    say: Say,
    confirm: Callable[[str], bool] | None = None,
    escalator_args: dict[str, Any] | None = None,
) -> EvalRun:
    """Fill ``run`` (read it after an interruption too: it holds what was done)."""
    read_history(repo, store, say, run)
    await run_models(run, store, settings, repo.root, index, say)
    tiers = [c for c in run.candidates if c.kind == CandidateKind.TIER]
    if not tiers:
        return run
    local = choose_model(settings.model).path
    entries = index.entries if index is not None else None
    runners = {
        c.key: EscalationRunner(
            settings,
            c.tier or "",
            repo,
            ledger,
            project,
            lambda: local,
            entries,
            **(escalator_args or {}),
        )
        for c in tiers
    }
    try:
        await run_tiers(run, store, runners, say, confirm)
    finally:
        await asyncio.gather(*(r.aclose() for r in runners.values()))
    return run


def candidates_for(settings: Settings, options: EvalOptions) -> list[Candidate]:
    """The models, then the tiers (each once)."""
    return model_candidates(settings, options.models) + [
        tier_candidate(t, settings) for t in dict.fromkeys(options.tiers)
    ]
