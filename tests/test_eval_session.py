"""``evaluation.session`` and ``evaluation.store``: cases and results kept on disk by commit id,
an interrupted run that leaves whole commits only and a rerun that does only the rest, and the
report's suggested settings, which a project can paste as they are.

The interruption uses a runner whose ``run`` raises ``KeyboardInterrupt`` (a fault, so a fake);
the real model's runs are in ``test_eval_cli``."""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from pathlib import Path
from typing import Any

import pytest

from nearline.config import Settings, parse_settings
from nearline.escalation.results import RefusalKind
from nearline.evaluation import store as store_module
from nearline.evaluation.cases import CompletionCase, cases_of
from nearline.evaluation.history import Commit, GitRepo, RepoState
from nearline.evaluation.report import report_dict, to_text
from nearline.evaluation.runner import (
    Candidate,
    CandidateKind,
    CaseOutcome,
    cacheable,
    model_candidate,
    refused,
)
from nearline.evaluation.scoring import score_completion
from nearline.evaluation.session import EvalOptions, EvalRun, read_history, run_models
from nearline.evaluation.store import EvalStore
from support.gitrepo import Repo, shop

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class Runner:
    """Answers every case with the author's own text; ``stop`` says where Ctrl-C comes."""

    made: list[Runner] = []

    def __init__(self, settings: Settings, path: Path, root: Path, index: Any) -> None:
        self.ran: list[CompletionCase] = []
        self.stop: Any = lambda case, ran: False
        self.closed = False
        Runner.made.append(self)

    async def load(self) -> None:
        pass

    async def run(self, case: CompletionCase) -> dict[str, Any]:
        if self.stop(case, self.ran):
            raise KeyboardInterrupt
        self.ran.append(case)
        score = score_completion(case.expected, case.expected)
        return {"case": case.id, "path": case.path, "expected": case.expected} | (
            dataclasses.asdict(score) | {"suggestion": case.expected, "latency_ms": 1.0}
        )

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    """Six commits with a parent: tax, wip, logo, rename, fix, discount (newest first)."""
    return shop(tmp_path / "shop", upto="tax")


def start(repo: Repo, folder: Path, said: list[str]) -> tuple[EvalRun, EvalStore, Candidate]:
    git_repo = GitRepo(repo.root)
    options = EvalOptions(per_commit=2)
    candidate = model_candidate("fake", folder / "fake.gguf", Settings())
    run = EvalRun("shop", git_repo.state(), options, candidates=[candidate])
    store = EvalStore(folder / "store")
    read_history(git_repo, store, said.append, run)
    return run, store, candidate


def models(run: EvalRun, store: EvalStore, repo: Repo, stop: Any = None) -> Runner:
    Runner.made.clear()

    def make(*args: Any) -> Runner:
        runner = Runner(*args)
        if stop is not None:
            runner.stop = stop
        return runner

    asyncio.run(run_models(run, store, Settings(), repo.root, None, lambda _: None, make))
    [runner] = Runner.made
    return runner


def test_ctrl_c_leaves_whole_commits_and_a_rerun_does_the_rest(repo: Repo, tmp_path: Path) -> None:
    said: list[str] = []
    run, store, candidate = start(repo, tmp_path, said)
    order = [c.sha for c in run.commits]
    assert order[:2] == [repo.shas["tax"], repo.shas["wip"]]
    assert all(len(run.cases[sha].completion) == 2 for sha in order[:2])

    # Ctrl-C on the second case of the second commit: the first is kept, the second not.
    def second_of_wip(case: CompletionCase, ran: list[CompletionCase]) -> bool:
        return case.commit == repo.shas["wip"] and any(c.commit == case.commit for c in ran)

    with pytest.raises(KeyboardInterrupt):
        models(run, store, repo, second_of_wip)
    assert Runner.made[0].closed  # the model is let go of even so
    assert [c.commit for c in Runner.made[0].ran] == [order[0], order[0], order[1]]
    assert list(run.results[candidate.key]) == [order[0]]  # what the report shows
    store.close()

    # A rerun, from what the disk holds: the whole of wip again, its first case too.
    again = EvalStore(tmp_path / "store")
    said.clear()
    rerun = EvalRun("shop", run.state, run.options, candidates=[candidate])
    read_history(GitRepo(repo.root), again, said.append, rerun)
    assert said[-1].endswith("(cached)")  # the cases too were kept
    runner = models(rerun, again, repo)
    assert [c.commit for c in runner.ran] == [
        sha for sha in order[1:] for _ in rerun.cases[sha].completion
    ]
    assert len(runner.ran) == rerun.completion_cases() - 2
    kept = rerun.results[candidate.key][order[0]]
    assert [r["case"] for r in kept] == [c.id for c in run.cases[order[0]].completion]
    assert set(rerun.results[candidate.key]) == set(order)
    again.close()

    # Nothing left: no model is loaded at all.
    third = EvalRun("shop", run.state, run.options, candidates=[candidate])
    with_store = EvalStore(tmp_path / "store")
    read_history(GitRepo(repo.root), with_store, said.append, third)
    Runner.made.clear()
    asyncio.run(run_models(third, with_store, Settings(), repo.root, None, print, Runner))
    assert Runner.made == [] and third.results == rerun.results
    with_store.close()


def test_another_number_of_cases_per_commit_is_measured_again(repo: Repo, tmp_path: Path) -> None:
    said: list[str] = []
    run, store, candidate = start(repo, tmp_path, said)
    first = models(run, store, repo)
    assert len(first.ran) == run.completion_cases()
    options = dataclasses.replace(run.options, per_commit=1)
    fewer = EvalRun("shop", run.state, options, candidates=[candidate])
    read_history(GitRepo(repo.root), store, said.append, fewer)
    again = models(fewer, store, repo)
    assert len(again.ran) == fewer.completion_cases() == len(run.commits)
    store.close()


def test_cases_come_from_the_store_without_reading_git(
    repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    said: list[str] = []
    run, store, _ = start(repo, tmp_path, said)
    assert "(6 commits read, 0 from the cache)" in said[-1]
    store.close()

    def no_git(*args: Any) -> None:
        raise AssertionError("the cases were made again")

    monkeypatch.setattr(GitRepo, "changes", no_git)
    again, store, _ = start(repo, tmp_path, said)
    assert said[-1].endswith("(cached)")
    assert again.cases == run.cases
    store.close()


def test_cases_round_trip_and_their_keys(repo: Repo, tmp_path: Path) -> None:
    git_repo = GitRepo(repo.root)
    commit = next(c for c in git_repo.commits(10) if c.sha == repo.shas["rename"])
    cases = cases_of(commit, git_repo.changes(commit), 2)
    assert cases.escalation is not None and len(cases.completion) == 2
    store = EvalStore(tmp_path / "store")
    store.put_cases(cases, 2)
    store.put_results("model-x", commit.sha, [{"case": "a"}])
    store.close()

    again = EvalStore(tmp_path / "store")
    assert again.cases(commit.sha, 2) == cases
    assert again.cases(commit.sha, 3) is None  # another number of cases per commit
    assert again.results("model-x", commit.sha) == [{"case": "a"}]
    assert again.results("model-y", commit.sha) is None
    again.close()


def test_a_new_cases_version_makes_the_cases_again(
    repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    git_repo = GitRepo(repo.root)
    commit = git_repo.commits(1)[0]
    store = EvalStore(tmp_path / "store")
    store.put_cases(cases_of(commit, git_repo.changes(commit), 2), 2)
    monkeypatch.setattr(store_module, "CASES_VERSION", store_module.CASES_VERSION + 1)
    assert store.cases(commit.sha, 2) is None
    store.close()


def test_an_unreadable_store_is_made_anew(tmp_path: Path) -> None:
    folder = tmp_path / "store"
    folder.mkdir()
    (folder / "cache.db").write_bytes(b"this is not a database" * 100)
    store = EvalStore(folder)
    store.put_results("model-x", "abc", [{"case": "a"}])
    store.close()
    assert EvalStore(folder).results("model-x", "abc") == [{"case": "a"}]


def test_without_a_disk_cache_the_store_is_memory_only(tmp_path: Path) -> None:
    store = EvalStore(None)
    store.put_results("model-x", "abc", [{"case": "a"}])
    assert store.results("model-x", "abc") == [{"case": "a"}]
    store.close()


KEPT_OR_ASKED_AGAIN = {
    CaseOutcome.CHANGED: True,
    CaseOutcome.UNAPPLIABLE: True,
    CaseOutcome.REFUSED_PRIVACY: True,  # the files stay private on the next run too
    CaseOutcome.FAILED: False,
    CaseOutcome.OTHER_TIER: False,
    CaseOutcome.REFUSED_BUDGET: False,
    CaseOutcome.REFUSED_LOOP: False,
    CaseOutcome.REFUSED_ROUTING: False,
    CaseOutcome.REFUSED_DATA_POLICY: False,  # a policy or a provider's facts may change
}
"""Every outcome of the vocabulary: kept in the store, or asked again by the next run."""


@pytest.mark.parametrize("outcome", list(CaseOutcome))
def test_which_escalation_results_are_kept(outcome: CaseOutcome) -> None:
    assert cacheable({"outcome": outcome.value}) is KEPT_OR_ASKED_AGAIN[outcome]


def test_every_refusal_has_an_outcome_and_a_word_outside_them_is_not_kept() -> None:
    assert [refused(kind) for kind in RefusalKind] == [
        CaseOutcome.REFUSED_PRIVACY,
        CaseOutcome.REFUSED_BUDGET,
        CaseOutcome.REFUSED_LOOP,
        CaseOutcome.REFUSED_ROUTING,
        CaseOutcome.REFUSED_DATA_POLICY,
    ]
    assert cacheable({"outcome": "refused-policy"}) is False  # not an outcome
    assert cacheable({}) is False


def tier_result(kind: str, success: bool, cost: float) -> dict[str, Any]:
    return {
        "case": "c",
        "kind": kind,
        "outcome": "changed",
        "line_similarity": 1.0 if success else 0.1,
        "files_jaccard": 1.0,
        "tests_pass": None,
        "latency_ms": 100.0,
        "cost_usd": cost,
    }


def test_the_suggestion_is_the_cheapest_tier_near_the_best_and_pastes_as_is() -> None:
    commits = [Commit(f"{i:040x}", f"{i + 100:040x}", 0, f"commit {i}") for i in range(6)]
    value = Candidate(CandidateKind.TIER, "value (cheap/small)", "tier-value", tier="value")
    flagship = Candidate(
        CandidateKind.TIER, "flagship (big/large)", "tier-flagship", tier="flagship"
    )
    run = EvalRun(
        "shop",
        RepoState("f" * 40, "main", False),
        EvalOptions(tiers=("value", "flagship")),
        commits=commits,
        candidates=[value, flagship],
    )
    # fix: value 1 of 3, flagship 3 of 3; refactor: both 3 of 3, value 10 times cheaper.
    for i, c in enumerate(commits):
        kind = "fix" if i < 3 else "refactor"
        run.results.setdefault(value.key, {})[c.sha] = [
            tier_result(kind, kind == "refactor" or i == 0, 0.001)
        ]
        run.results.setdefault(flagship.key, {})[c.sha] = [tier_result(kind, True, 0.01)]
    data = report_dict(run)
    [v, f] = data["tiers"]
    assert (v["cases"], v["success"], f["success"]) == (6, pytest.approx(4 / 6), 1.0)
    assert v["usd_per_success"] == pytest.approx(0.006 / 4)
    rules = {r["task"]: r["tier"] for r in data["suggestion"]["rules"]}
    assert rules == {"fix": "flagship", "refactor": "value"}

    snippet = data["suggestion"]["toml"]
    settings = parse_settings(tomllib.loads(snippet))
    assert [(r.task, r.tier) for r in settings.routing.rules] == [
        (("fix",), "flagship"),
        (("refactor",), "value"),
    ]
    text = to_text(data)
    assert "Escalation:" in text and "value (cheap/small)" in text
    assert snippet.rstrip() in text
