"""``nearline eval --tiers``: escalation cases sent to a tier whose provider is a real HTTP server
on 127.0.0.1 (a recording OpenAI-compatible server, and llama-cpp-python's with the embedded
model), scored against the commit's real change, priced from the project's prices and recorded
in the usage ledger as the client "eval"; the cost cap, which asks or stops before anything is
sent; and tiers that cannot serve."""

from __future__ import annotations

import io
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nearline.accounting.entries import Outcome, Project, escalation_entry
from nearline.accounting.ledger import Ledger, ledger_path
from nearline.accounting.prices import Tokens
from nearline.cli import main
from nearline.evaluation.history import GitRepo
from support.engines import ok
from support.fake_provider import RecordingProvider, Reply, ScriptedServer
from support.gitrepo import FIX_MESSAGE, OFF_BY_ONE, Repo, shop

LABEL = "value (cheap/eval-model)"
USAGE = {"prompt_tokens": 1000, "completion_tokens": 100}
COST = 1000 * 1e-6 + 100 * 2e-6
"""What ``USAGE`` costs at the prices ``configure`` writes by default."""


@pytest.fixture(autouse=True)
def _no_repository_above(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))


@pytest.fixture
def provider() -> Iterator[RecordingProvider]:
    server = RecordingProvider(usage=dict(USAGE)).start(0.02)
    yield server
    server.stop()


def configure(
    root: Path,
    base_url: str,
    *,
    model: str = "eval-model",
    input_price: float = 1e-6,
    output_price: float = 2e-6,
    extra_body: dict[str, Any] | None = None,
) -> None:
    """A ``value`` tier of one OpenAI-compatible provider, "cheap", with the model's prices."""
    extra = "".join(f"{k} = {json.dumps(v)}\n" for k, v in (extra_body or {}).items())
    (root / ".nearline.toml").write_text(
        f"""\
[providers.cheap]
kind = "openai"
base_url = "{base_url}"
model = "{model}"
max_retries = 0
read_timeout_s = 120

[providers.cheap.extra_body]
{extra}
[routing.tiers]
value = ["cheap"]

[prices."{model}"]
input_cost_per_token = {input_price}
output_cost_per_token = {output_price}
"""
    )


def answer(repo: Repo, name: str) -> str:
    """An answer that makes exactly the commit's change: its real diff in a ``diff`` block."""
    return f"Here is the fix.\n\n```diff\n{repo.diff(repo.shas[name])}```\n"


def nearline_eval(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["eval", "--cases-per-commit", "0", *args])
    out, err = capsys.readouterr()
    return code, out, err


def ledger_rows() -> list[dict[str, Any]]:
    if not ledger_path().exists():
        return []
    ledger = Ledger(ledger_path())
    try:
        return ledger.rows()
    finally:
        ledger.close()


@pytest.fixture
def fixed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, provider: RecordingProvider) -> Repo:
    """The shop up to its fix commit, in the current folder, its value tier on ``provider``,
    which answers with the fix's real diff."""
    repo = shop(tmp_path / "shop", upto="fix")
    configure(repo.root, provider.url)
    provider.answer = answer(repo, "fix")
    monkeypatch.chdir(repo.root)
    return repo


def posts(provider: RecordingProvider) -> list[str]:
    return [r.path for r in provider.received]


def test_a_tier_that_makes_the_real_change_succeeds_and_is_recorded_as_eval(
    capsys: pytest.CaptureFixture[str],
    fixed: Repo,
    provider: RecordingProvider,
) -> None:
    code, out, err = nearline_eval(capsys, "--commits", "1", "--tiers", "value", "--json")
    assert code == 0, err
    data = json.loads(out)
    [row] = data["tiers"]
    assert (row["label"], row["tier"], row["cases"], row["error"]) == (LABEL, "value", 1, None)
    assert (row["applies"], row["line_similarity"], row["files"], row["success"]) == (
        1.0,
        1.0,
        1.0,
        1.0,
    )
    assert row["tests_pass"] is None  # no eval.test_command
    assert row["cost_usd"] == pytest.approx(COST) and row["usd_per_success"] == pytest.approx(COST)
    assert 0 < row["estimated_usd"] <= 0.25
    assert row["by_kind"] == {"fix": {"cases": 1, "success": 1.0, "cost_usd": pytest.approx(COST)}}
    [result] = data["results"][LABEL]
    assert (result["outcome"], result["kind"], result["files"]) == ("changed", "fix", ["cart.py"])
    assert (result["input_tokens"], result["output_tokens"]) == (1000, 100)
    assert data["spent_usd"] == pytest.approx(COST) and data["max_usd"] == 0.25
    [rule] = data["suggestion"]["rules"]
    assert (rule["task"], rule["tier"], rule["few_cases"]) == ("fix", "value", True)
    assert 'task = ["fix"]\ntier = "value"' in data["suggestion"]["toml"]

    # One request, with the commit's message as the instruction and the file as it was before.
    assert posts(provider) == ["/v1/chat/completions"]
    prompt = "\n".join(m["content"] for m in provider.bodies[0]["messages"])
    assert FIX_MESSAGE.splitlines()[0] in prompt and OFF_BY_ONE.strip() in prompt
    assert provider.bodies[0]["model"] == "eval-model"

    [entry] = ledger_rows()
    assert (entry["client"], entry["task"], entry["tier"], entry["provider"]) == (
        "eval",
        "fix",
        "value",
        "cheap",
    )
    assert (entry["model"], entry["input_tokens"], entry["output_tokens"]) == (
        "eval-model",
        1000,
        100,
    )
    assert entry["cost_usd"] == pytest.approx(COST) and entry["cloud"] == 1
    assert entry["project"] == "shop"

    # A rerun sends nothing: the result is kept by commit; the table has the tier's row.
    code, text, err = nearline_eval(capsys, "--commits", "1", "--tiers", "value")
    assert code == 0, err
    assert len(provider.received) == 1 and len(ledger_rows()) == 1
    assert "(cached)" in err
    assert LABEL in text and "Escalation: 1 cases" in text
    assert 'spent $0.0000 of --max-usd $0.25 (recorded in the usage ledger as client "eval")' in (
        text
    )


def test_the_estimate_is_shown_before_anything_is_sent(
    capsys: pytest.CaptureFixture[str],
    fixed: Repo,
    provider: RecordingProvider,
) -> None:
    code, text, err = nearline_eval(capsys, "--commits", "1", "--tiers", "value")
    assert code == 0, err
    lines = err.splitlines()
    estimate = next(i for i, s in enumerate(lines) if "1 escalation cases, estimated $0.00" in s)
    spent = next(i for i, s in enumerate(lines) if f"{LABEL}: 1/1 ($0.0012 spent)" in s)
    assert estimate < spent
    assert re.search(
        r"^tier\s+cases\s+applies\s+line sim\s+files\s+tests\s+success\s+p50 ms\s+cost"
        r"\s+\$/success$",
        text,
        re.M,
    )
    assert re.search(rf"^{re.escape(LABEL)}\s+1\s+100%\s+1\.00\s+1\.00\s+-\s+100%", text, re.M)
    assert (
        'spent $0.0012 of --max-usd $0.25 (recorded in the usage ledger as client "eval")' in text
    )
    assert '[[routing.rules]]\nname = "eval: fix"\ntask = ["fix"]\ntier = "value"' in text


def test_the_local_openai_server_as_the_value_tier(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    llama_server: str,
) -> None:
    """llama-cpp-python's server with the embedded model, held to the real diff by a grammar."""
    repo = shop(tmp_path / "shop", upto="fix")
    text = answer(repo, "fix")
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    configure(
        repo.root,
        llama_server,
        model="smollm2",
        extra_body={"grammar": f'root ::= "{escaped}"', "max_tokens": 400},
    )
    monkeypatch.chdir(repo.root)
    code, out, err = nearline_eval(capsys, "--commits", "1", "--tiers", "value", "--json")
    assert code == 0, err
    data = json.loads(out)
    [row] = data["tiers"]
    [result] = data["results"][row["label"]]
    assert result["outcome"] == "changed", result
    assert row["line_similarity"] == 1.0 and row["success"] == 1.0
    assert result["input_tokens"] > 0 and result["output_tokens"] > 0
    [entry] = ledger_rows()
    assert (entry["client"], entry["tier"], entry["model"]) == ("eval", "value", "smollm2")
    assert entry["cost_usd"] == pytest.approx(data["spent_usd"]) and entry["cost_usd"] > 0


def test_an_estimate_over_the_cap_stops_before_anything_is_sent(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    provider: RecordingProvider,
) -> None:
    repo = shop(tmp_path / "shop", upto="rename")
    configure(repo.root, provider.url, input_price=1e-3, output_price=1e-3)
    provider.answer = answer(repo, "fix")
    monkeypatch.chdir(repo.root)
    code, out, err = nearline_eval(
        capsys, "--commits", "2", "--tiers", "value", "--max-usd", "0.01", "--json"
    )
    assert code == 1
    assert "is over --max-usd $0.01" in err and "nothing was sent" in err
    assert provider.received == [] and ledger_rows() == []
    data = json.loads(out)  # the report still says what was found and estimated
    [row] = data["tiers"]
    assert row["estimated_usd"] > 0.01 and row["cases"] == 0
    assert data["spent_usd"] == 0.0 and data["escalation_cases"] == 2


class Terminal(io.StringIO):
    """Standard input that is a terminal where the user types ``answer``."""

    def isatty(self) -> bool:
        return True


def test_over_the_cap_the_user_is_asked_and_only_what_fits_runs(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    provider: RecordingProvider,
) -> None:
    repo = shop(tmp_path / "shop", upto="rename")
    configure(repo.root, provider.url, input_price=1e-6, output_price=0.0)
    monkeypatch.chdir(repo.root)
    # Answers are free and prompts as estimated: a request's worst case is its estimate.
    monkeypatch.setattr("nearline.evaluation.runner.INPUT_MARGIN", 1.0)

    def estimate(commits: str) -> float:
        code, out, _ = nearline_eval(
            capsys, "--commits", commits, "--tiers", "value", "--max-usd", "0", "--json"
        )
        assert code == 1
        return float(json.loads(out)["tiers"][0]["estimated_usd"])

    first = estimate("1")  # rename, the newest: run first
    second = estimate("2") - first  # fix
    assert first > 0 and second > 0 and provider.received == []
    cap = first + second / 2  # the first fits; the two do not
    # What the first costs leaves less than the second's estimate under the cap.
    provider.usage = {"prompt_tokens": round((cap - second / 4) / 1e-6), "completion_tokens": 0}

    monkeypatch.setattr("sys.stdin", Terminal("y\n"))
    code, out, err = nearline_eval(
        capsys, "--commits", "2", "--tiers", "value", "--max-usd", f"{cap:.6f}", "--json"
    )
    assert code == 0, err
    assert "is over --max-usd" in err and "run the cases that fit under it? [y/N]" in err
    data = json.loads(out)
    assert len(provider.received) == 1 and len(ledger_rows()) == 1
    assert 0 < data["spent_usd"] <= data["max_usd"]
    assert any("stopped after 1 of 2 cases" in n for n in data["notes"])
    [result] = data["results"][LABEL]
    assert result["case"].startswith(repo.shas["rename"][:12])

    monkeypatch.setattr("sys.stdin", Terminal("n\n"))
    code, out, err = nearline_eval(
        capsys, "--commits", "2", "--tiers", "value", "--max-usd", "0.000001", "--json"
    )
    assert code == 1 and "nothing was sent" in err
    assert len(provider.received) == 1


def test_a_tier_with_no_providers_is_named_and_nothing_is_sent(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    provider: RecordingProvider,
) -> None:
    repo = shop(tmp_path / "shop", upto="fix")
    configure(repo.root, provider.url)
    monkeypatch.chdir(repo.root)
    code, out, err = nearline_eval(capsys, "--tiers", "value,flagship")
    assert code == 1
    assert "tier flagship has no providers" in err
    assert provider.received == [] and ledger_rows() == []


def test_a_tier_the_data_policy_excludes_is_named_and_nothing_is_sent(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    provider: RecordingProvider,
) -> None:
    repo = shop(tmp_path / "shop", upto="fix")
    configure(repo.root, provider.url)  # "cheap" states no retention: unknown
    with (repo.root / ".nearline.toml").open("a") as f:
        f.write('\n[privacy.providers]\nretention = "zero"\n')
    monkeypatch.chdir(repo.root)
    code, out, err = nearline_eval(capsys, "--tiers", "value")
    assert code == 1
    assert (
        "no provider of tier 'value' meets privacy.providers (retention \"zero\"): cheap: its "
        'retention is unknown, the policy needs "zero"'
    ) in err
    assert provider.received == [] and ledger_rows() == []


def test_an_unknown_tier_lists_the_tiers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = shop(tmp_path / "shop", upto="fix")
    monkeypatch.chdir(repo.root)
    code, out, err = nearline_eval(capsys, "--tiers", "platinum")
    assert code == 1 and out == ""
    assert "--tiers: no tier named 'platinum' (this project has local, value, flagship)" in err


SECRET = 'AWS = "AKIA' + 'IOSFODNN7EXAMPLE"\n'


def secret_repo(root: Path) -> Repo:
    repo = Repo.init(root)
    repo.commit("start", "start", {"keys.py": SECRET + "REGION = 'eu'\n"})
    repo.commit("fix", "fix the region name", {"keys.py": SECRET + "REGION = 'eu-west-1'\n"})
    return repo


def test_a_change_to_a_file_with_a_secret_is_never_sent(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    provider: RecordingProvider,
) -> None:
    repo = secret_repo(tmp_path / "keys")
    configure(repo.root, provider.url)
    monkeypatch.chdir(repo.root)
    code, out, err = nearline_eval(capsys, "--tiers", "value", "--json")
    assert code == 0, err
    data = json.loads(out)
    [result] = data["results"][LABEL]
    assert result["outcome"] == "refused-privacy" and "AWS access key" in result["reason"]
    assert "IOSFODNN7EXAMPLE" not in out
    assert data["tiers"][0]["not_run"] == 1 and data["spent_usd"] == 0.0
    assert provider.received == [] and ledger_rows() == []


BREAKS_IT = """\
Here it is.

```diff
--- a/cart.py
+++ b/cart.py
@@ -6,3 +6,3 @@
 def total(prices):
-    amount = 0
+    amount = 1
     for i in range(len(prices) - 1):
```
"""


@pytest.mark.parametrize(("right", "passes"), [(True, True), (False, False)])
def test_with_a_test_command_success_is_the_tests_passing(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    provider: RecordingProvider,
    right: bool,
    passes: bool,
) -> None:
    """The project's tests run in a checkout of the commit's parent with the answer applied."""
    repo = shop(tmp_path / "shop", upto="fix")
    configure(repo.root, provider.url)
    check = "import cart; assert cart.total([1, 2, 3]) == 6"
    with (repo.root / ".nearline.toml").open("a") as f:
        f.write(f"\n[eval]\ntest_command = {json.dumps(f'{sys.executable} -c {check!r}')}\n")
    provider.answer = answer(repo, "fix") if right else BREAKS_IT
    monkeypatch.chdir(repo.root)
    code, out, err = nearline_eval(capsys, "--commits", "1", "--tiers", "value", "--json")
    assert code == 0, err
    data = json.loads(out)
    [row] = data["tiers"]
    [result] = data["results"][LABEL]
    assert result["outcome"] == "changed" and result["tests_pass"] is passes
    assert row["tests_pass"] == (1.0 if passes else 0.0)
    assert row["success"] == (1.0 if passes else 0.0)
    assert result["applies"] and result["line_similarity"] == (1.0 if right else 0.0)
    # The checkout is gone, and the project's own files are untouched.
    assert repo.git("worktree", "list").count("\n") == 1
    assert (repo.root / "cart.py").read_text() == repo.show(repo.shas["fix"], "cart.py")


def test_a_provider_failure_is_reported_and_asked_again_next_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = ScriptedServer().start(0.02)
    try:
        repo = shop(tmp_path / "shop", upto="fix")
        configure(repo.root, server.url + "/v1")
        server.script(Reply(500, b'{"error": {"message": "overloaded"}}'))
        monkeypatch.chdir(repo.root)
        code, out, err = nearline_eval(capsys, "--commits", "1", "--tiers", "value", "--json")
        assert code == 0, err
        data = json.loads(out)
        [row] = data["tiers"]
        # A failure is a miss: in the success rate, not only apart.
        assert (row["failed"], row["cases"], row["not_run"], row["success"]) == (1, 1, 0, 0.0)
        [result] = data["results"][LABEL]
        assert result["outcome"] == "failed" and result["cost_usd"] == 0.0
        assert [(r["client"], r["cost_usd"]) for r in ledger_rows()] == [("eval", 0.0)]

        server.script(ok(answer(repo, "fix")))
        code, out, err = nearline_eval(capsys, "--commits", "1", "--tiers", "value", "--json")
        assert code == 0, err
        [result] = json.loads(out)["results"][LABEL]
        assert result["outcome"] == "changed" and len(server.received) == 2
    finally:
        server.stop()


def test_the_local_tier_runs_on_this_machine_for_free(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = shop(tmp_path / "shop", upto="fix")
    monkeypatch.chdir(repo.root)
    code, out, err = nearline_eval(
        capsys, "--commits", "1", "--tiers", "local", "--max-usd", "0", "--json"
    )
    assert code == 0, err
    data = json.loads(out)
    [row] = data["tiers"]
    assert row["tier"] == "local" and row["estimated_usd"] == 0.0 and row["cost_usd"] == 0.0
    [result] = data["results"][row["label"]]
    assert result["outcome"] in ("changed", "unappliable"), result  # the model answered
    assert result["input_tokens"] > 0 and result["output_tokens"] > 0
    [entry] = ledger_rows()
    assert (entry["client"], entry["tier"], entry["cloud"], entry["cost_usd"]) == (
        "eval",
        "local",
        0,
        0.0,
    )


def test_a_tier_named_twice_runs_once(
    capsys: pytest.CaptureFixture[str],
    fixed: Repo,
    provider: RecordingProvider,
) -> None:
    code, out, err = nearline_eval(capsys, "--commits", "1", "--tiers", "value,value", "--json")
    assert code == 0, err
    assert len(provider.received) == 1
    assert len(json.loads(out)["tiers"]) == 1


def test_a_request_whose_longest_answer_could_pass_the_cap_is_not_sent(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    provider: RecordingProvider,
) -> None:
    """The estimate ($0.02: ~200 output tokens) fits under $0.25; the worst case (4096 output
    tokens at $0.0001 each, $0.41) does not: nothing is sent, and the report says why."""
    repo = shop(tmp_path / "shop", upto="fix")
    configure(repo.root, provider.url, output_price=1e-4)
    monkeypatch.chdir(repo.root)
    code, out, err = nearline_eval(capsys, "--commits", "1", "--tiers", "value", "--json")
    assert code == 0, err
    assert provider.received == [] and ledger_rows() == []
    data = json.loads(out)
    assert 0 < data["tiers"][0]["estimated_usd"] < 0.25
    assert any("stopped after 0 of 1 cases" in n and "could cost up to" in n for n in data["notes"])


def test_a_commit_message_with_a_secret_is_never_sent(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    provider: RecordingProvider,
) -> None:
    repo = shop(tmp_path / "shop", upto="fix")
    cart = (repo.root / "cart.py").read_text()
    key = "sk-" + "Ab3" * 14
    repo.commit("leak", f"fix: total() with the key {key}", {"cart.py": cart + "\nLIMIT = 3\n"})
    configure(repo.root, provider.url)
    monkeypatch.chdir(repo.root)
    code, out, err = nearline_eval(capsys, "--commits", "1", "--tiers", "value", "--json")
    assert code == 0, err
    assert provider.received == []
    [result] = json.loads(out)["results"][LABEL]
    assert result["outcome"] == "refused-privacy"
    assert key not in out and key not in err


def test_a_case_a_budget_sends_to_another_tier_is_not_this_tiers(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    provider: RecordingProvider,
) -> None:
    """Today's spending is past the project's budget, which downgrades to the local tier: the
    answer (here a failure: the local model is missing) is not the value tier's, so it is
    neither scored nor kept for it, and the next run (the budget lifted) asks the value tier."""
    repo = shop(tmp_path / "shop", upto="fix")
    configure(repo.root, provider.url)
    with (repo.root / ".nearline.toml").open("a") as f:
        f.write('\n[budget.project]\ndaily_usd = 0.01\n\n[budget]\non_exceeded = "downgrade"\n')
        f.write('\n[model]\npath = "absent.gguf"\n')  # the local tier fails at once
    provider.answer = answer(repo, "fix")
    root = str(GitRepo.find(repo.root).root)
    ledger = Ledger(ledger_path())
    spent = escalation_entry(
        task="fix",
        outcome=Outcome.OK,
        tier="value",
        provider="cheap",
        model="eval-model",
        tokens=Tokens(input=10),
        latency_ms=1.0,
        cost_usd=1.0,
        project=Project(root, "shop"),
        language="python",
    )
    ledger.record(spent)
    assert ledger.close(timeout=5)
    monkeypatch.chdir(repo.root)
    code, out, err = nearline_eval(capsys, "--commits", "1", "--tiers", "value", "--json")
    assert code == 0, err
    data = json.loads(out)
    [result] = data["results"][LABEL]
    assert result["outcome"] == "other-tier" and "the local tier" in result["reason"]
    [row] = data["tiers"]
    assert (row["cases"], row["not_run"], row["success"]) == (0, 1, None)
    assert provider.received == []

    configure(repo.root, provider.url)  # no budget: the value tier serves
    code, out, err = nearline_eval(capsys, "--commits", "1", "--tiers", "value", "--json")
    assert code == 0, err
    assert posts(provider) == ["/v1/chat/completions"]
    [result] = json.loads(out)["results"][LABEL]
    assert result["outcome"] == "changed"
