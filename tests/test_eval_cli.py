"""``nearline eval`` end to end, in-process, on a real git repository with the real embedded
model (SmolLM2): the table, the JSON, the HTML holding the JSON's numbers, the cache that makes
a rerun load no model, Ctrl-C, and the clear messages where there is no history to learn from.
The tiers' runs (a local OpenAI-compatible server) are in ``test_eval_tiers``."""

from __future__ import annotations

import dataclasses
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from nearline.cli import main
from nearline.evaluation import runner as runner_module
from nearline.evaluation.cases import CompletionCase
from nearline.evaluation.history import Commit, RepoState
from nearline.evaluation.html import to_html
from nearline.evaluation.report import report_dict, to_text
from nearline.evaluation.runner import Candidate, CandidateKind
from nearline.evaluation.scoring import score_completion
from nearline.evaluation.session import EvalOptions, EvalRun
from support.gitrepo import Repo, git, shop

MODEL = "smollm2-135m-instruct"
"""The label of the embedded model, the one that serves in the tests."""
TABLE_HEAD = re.compile(
    r"^model\s+cases\s+exact\s+edit sim\s+Tab chars\s+Tab'd\s+p50 ms\s+p95 ms\s+cost$", re.M
)


@pytest.fixture(autouse=True)
def _no_repository_above(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))


def nearline_eval(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["eval", *args])
    out, err = capsys.readouterr()
    return code, out, err


class EmbeddedJson(HTMLParser):
    """The page's ``<script type="application/json" id="nearline-eval">``, and its tags."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.payload: str | None = None
        self._inside = False
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        found = dict(attrs)
        self._inside = tag == "script" and found.get("id") == "nearline-eval"
        if self._inside:
            assert found.get("type") == "application/json"
            self.payload = ""

    def handle_endtag(self, tag: str) -> None:
        self._inside = False

    def handle_data(self, data: str) -> None:
        if self._inside and self.payload is not None:
            self.payload += data
        else:
            self.text.append(data)


def in_unit_range(value: float | None) -> bool:
    return value is not None and 0.0 <= value <= 1.0


def test_eval_measures_the_embedded_model_on_the_project_history(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = shop(tmp_path / "shop")
    monkeypatch.chdir(repo.root)
    page = tmp_path / "report.html"
    code, out, err = nearline_eval(
        capsys, "--commits", "5", "--cases-per-commit", "1", "--json", "--html", str(page)
    )
    assert code == 0, err
    data = json.loads(out)
    # The newest 5 commits on the first-parent line, the merge aside: 4 add code, and one
    # (readme) is one logical step of text files.
    assert (data["project"], data["head"], data["branch"]) == ("shop", repo.shas["readme"], "main")
    assert (data["commits"], data["completion_cases"], data["escalation_cases"]) == (5, 4, 1)
    [row] = data["models"]
    assert row["label"] == MODEL and row["error"] is None
    assert row["cases"] == 4 and row["errors"] == 0
    for key in ("shown", "exact", "edit_similarity", "tab_chars", "accepted"):
        assert in_unit_range(row[key]), (key, row[key])
    assert 0 < row["latency_p50_ms"] <= row["latency_p95_ms"]
    assert row["cost_usd"] == 0.0 and data["tiers"] == [] and data["spent_usd"] == 0.0
    results = data["results"][MODEL]
    assert len(results) == 4 and all(r["error"] is None for r in results)
    # Each case is scored from the model's own text, and the row is made of the cases.
    for r in results:
        score = score_completion(r["suggestion"], r["expected"])
        assert {k: r[k] for k in dataclasses.asdict(score)} == dataclasses.asdict(score)
    assert row["exact"] == sum(r["exact"] for r in results) / 4
    assert row["edit_similarity"] == sum(r["edit_similarity"] for r in results) / 4
    assert {r["case"].split(":")[0] for r in results} == {
        repo.shas[n][:12] for n in ("six", "tax", "wip", "logo")
    }
    assert data["suggestion"]["model"] == MODEL
    assert f"# autocomplete: keep {MODEL}" in data["suggestion"]["toml"]
    assert not data["interrupted"] and data["notes"] == []
    # Nothing is written into the checkout (the store is in the cache folder).
    assert repo.git("status", "--porcelain", "--ignored") == ""
    assert repo.git("worktree", "list").count("\n") == 1

    # The page parses, and the JSON it carries is the --json output.
    parser = EmbeddedJson()
    parser.feed(page.read_text(encoding="utf-8"))
    parser.close()
    assert parser.payload is not None
    assert json.loads(parser.payload) == data
    assert {"html", "table", "svg", "script"} <= set(parser.tags)
    assert MODEL in "".join(parser.text)

    # Again: everything comes from the cache, so no model is even loaded.
    def no_model(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a model was loaded for cached results")

    monkeypatch.setattr(runner_module.CompletionRunner, "__init__", no_model)
    code, text, err = nearline_eval(capsys, "--commits", "5", "--cases-per-commit", "1")
    assert code == 0, err
    assert "5 commits: 4 completion cases, 1 escalation cases (cached)" in err
    assert TABLE_HEAD.search(text), text
    assert re.search(rf"^{MODEL}\s+4\s", text, re.M)
    assert "1 escalation cases are ready: `--tiers" in text
    assert "Suggested settings (paste into .nearline.toml):" in text

    code, out, err = nearline_eval(capsys, "--commits", "5", "--cases-per-commit", "1", "--json")
    assert code == 0, err
    assert json.loads(out)["models"] == data["models"]


def test_ctrl_c_keeps_the_commits_done_and_a_rerun_does_only_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = shop(tmp_path / "shop", upto="six")
    monkeypatch.chdir(repo.root)
    real_run = runner_module.CompletionRunner.run
    ran: list[CompletionCase] = []
    stop_at: list[str] = [repo.shas["tax"]]

    async def run(self: runner_module.CompletionRunner, case: CompletionCase) -> dict[str, Any]:
        if case.commit in stop_at and any(c.commit == case.commit for c in ran):
            raise KeyboardInterrupt
        ran.append(case)
        return await real_run(self, case)

    monkeypatch.setattr(runner_module.CompletionRunner, "run", run)
    # The newest 2 commits, "six" and "tax", 2 cases each; Ctrl-C in tax's second case.
    code, text, err = nearline_eval(capsys, "--commits", "2", "--cases-per-commit", "2")
    assert code == 130, err
    assert "interrupted: the commits done are kept; run again to go on" in text
    assert [c.commit for c in ran] == [repo.shas["six"], repo.shas["six"], repo.shas["tax"]]

    # Six's results were kept, tax's first one not: a rerun does the whole of tax, only.
    ran.clear()
    stop_at.clear()
    code, out, err = nearline_eval(capsys, "--commits", "2", "--cases-per-commit", "2", "--json")
    assert code == 0, err
    assert [c.commit for c in ran] == [repo.shas["tax"], repo.shas["tax"]]
    data = json.loads(out)
    assert data["models"][0]["cases"] == 4 and not data["interrupted"]


def test_a_detached_head_is_evaluated_with_a_note(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = shop(tmp_path / "shop", upto="rename")
    repo.git("checkout", "-q", "--detach", repo.shas["fix"])
    monkeypatch.chdir(repo.root)
    code, out, err = nearline_eval(capsys, "--cases-per-commit", "0", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["branch"] is None and data["head"] == repo.shas["fix"]
    assert data["commits"] == 2  # fix and discount, not rename
    assert any("detached" in n for n in data["notes"])
    assert "HEAD is detached" in err  # said even with --json
    code, text, _ = nearline_eval(capsys, "--cases-per-commit", "0")
    assert "commits to detached HEAD" in text


def test_a_shallow_clone_is_evaluated_with_a_note(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = shop(tmp_path / "shop", upto="six")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", "--depth", "3", repo.root.as_uri(), str(clone))
    monkeypatch.chdir(clone)
    code, out, err = nearline_eval(capsys, "--cases-per-commit", "0", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["shallow"] is True and data["commits"] == 2  # six, tax; not wip (no parent)
    assert any("shallow clone" in n for n in data["notes"])


def test_where_there_is_no_history_to_learn_from(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    monkeypatch.chdir(plain)
    code, out, err = nearline_eval(capsys)
    assert code == 1 and out == ""
    assert "is not in a git repository" in err and "git checkout" in err

    empty = tmp_path / "empty"
    Repo.init(empty)
    code, out, err = nearline_eval(capsys, str(empty))
    assert code == 1 and "no commits yet" in err and out == ""

    one = Repo.init(tmp_path / "one")
    one.commit("one", "start", {"a.py": "x = 1\n"})
    code, out, err = nearline_eval(capsys, str(one.root))
    assert code == 1 and "at least two commits" in err and out == ""

    two = shop(tmp_path / "two", upto="discount")
    code, out, err = nearline_eval(capsys, str(two.root), "--since", "2100-01-01")
    assert code == 1 and "since 2100-01-01" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--commits", "0"], "--commits must be 1 or more"),
        (["--max-usd", "-1"], "--max-usd 0 or more"),
        (["--models", "missing/model.gguf"], "--models: no model file at"),
        (["--models", "no-such-catalog-model"], "--models:"),
    ],
)
def test_bad_options_say_what_is_wrong(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    message: str,
) -> None:
    repo = shop(tmp_path / "shop", upto="discount")
    monkeypatch.chdir(repo.root)
    code, out, err = nearline_eval(capsys, *args)
    assert code == 1 and out == ""
    assert message in err


def model_result(
    exact: bool, similarity: float, tab: int, expected: int, ms: float, error: str | None = None
) -> dict[str, Any]:
    """One completion case's result, made by hand (the suggestion's text does not count)."""
    return {
        "case": "c",
        "shown": similarity > 0,
        "exact": exact,
        "edit_similarity": similarity,
        "tab_chars": tab,
        "expected_chars": expected,
        "latency_ms": ms,
        "error": error,
    }


def test_the_model_rows_arithmetic_and_the_model_suggested_among_several() -> None:
    commits = [Commit(f"{i:040x}", f"{i + 100:040x}", 0, f"commit {i}") for i in range(4)]
    serving = Candidate(CandidateKind.MODEL, MODEL, "model-s", path=Path("s.gguf"))
    mine = Candidate(CandidateKind.MODEL, "mine.gguf", "model-m", path=Path("mine.gguf"))
    coder = Candidate(CandidateKind.MODEL, "qwen2.5-coder-0.5b", "model-q", path=Path("q.gguf"))
    run = EvalRun(
        "shop",
        RepoState("f" * 40, "main", False),
        EvalOptions(),
        commits=commits,
        candidates=[serving, mine, coder],
        serving=MODEL,
    )
    by_model = {
        # The serving model is always exact, but its first line alone is no Tab's worth.
        serving: [
            model_result(True, 1.0, 10, 10, 100.0),
            model_result(True, 1.0, 0, 10, 200.0),
            model_result(True, 1.0, 0, 20, 300.0),
            model_result(False, 0.0, 0, 0, 0.0, error="the model failed"),
        ],
        # mine.gguf and the coder write the most by Tab, as much; the coder is exact more.
        mine: [
            model_result(True, 1.0, 10, 10, 40.0),
            model_result(False, 0.5, 5, 10, 50.0),
            model_result(False, 0.25, 9, 20, 60.0),
        ],
        coder: [
            model_result(True, 1.0, 10, 10, 50.0),
            model_result(True, 1.0, 5, 10, 60.0),
            model_result(False, 0.75, 9, 20, 70.0),
        ],
    }
    for cand, results in by_model.items():
        run.results[cand.key] = {c.sha: [r] for c, r in zip(commits, results, strict=False)}
    data = report_dict(run)
    figures = [
        (
            m["label"],
            m["cases"],
            m["errors"],
            m["shown"],
            m["exact"],
            m["edit_similarity"],
            m["tab_chars"],
            m["accepted"],
            m["latency_p50_ms"],
            m["latency_p95_ms"],
        )
        for m in data["models"]
    ]
    assert figures == [
        (MODEL, 3, 1, 1.0, 1.0, 1.0, 10 / 40, 1 / 3, 200.0, 300.0),
        ("mine.gguf", 3, 0, 1.0, 1 / 3, 1.75 / 3, 24 / 40, 1.0, 50.0, 60.0),
        ("qwen2.5-coder-0.5b", 3, 0, 1.0, 2 / 3, 2.75 / 3, 24 / 40, 1.0, 60.0, 70.0),
    ]
    assert data["suggestion"]["model"] == "qwen2.5-coder-0.5b"
    snippet = data["suggestion"]["toml"]
    assert "# autocomplete: qwen2.5-coder-0.5b completed this project's code best" in snippet
    assert '[model]\nname = "qwen2.5-coder-0.5b"\n' in snippet
    assert re.search(
        r"^qwen2\.5-coder-0\.5b\s+3\s+67%\s+0\.92\s+60%\s+100%\s+60\s+70\s+\$0\.0000$",
        to_text(data),
        re.M,
    )


def test_the_page_carries_any_text_safely() -> None:
    """Labels, names and the author's code may hold ``</script>``, ``<!--`` and ``&``."""
    odd = "</script><!-- & <b>bold</b>"
    commit = Commit("a" * 40, "b" * 40, 0, "a commit")
    model = Candidate(CandidateKind.MODEL, f"model {odd}", "model-k", path=Path("m.gguf"))
    run = EvalRun(
        f"shop {odd}",
        RepoState("a" * 40, None, True),
        EvalOptions(),
        commits=[commit],
        candidates=[model],
    )
    result = {
        "case": "c",
        "expected": odd,
        "suggestion": odd,
        "shown": True,
        "exact": True,
        "edit_similarity": 1.0,
        "tab_chars": len(odd),
        "expected_chars": len(odd),
        "latency_ms": 12.0,
        "error": None,
    }
    run.results = {model.key: {commit.sha: [result]}}
    data = report_dict(run)
    parser = EmbeddedJson()
    parser.feed(to_html(data))
    parser.close()
    assert parser.payload is not None and json.loads(parser.payload) == data
    assert "b" not in parser.tags  # the name is text, not markup
    assert f"shop {odd}" in "".join(parser.text)
