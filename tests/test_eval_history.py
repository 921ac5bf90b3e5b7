"""``evaluation.history`` on real repositories made with ``git``: the first-parent history with
merges left out, each commit's files before and after, binary and large files, where HEAD is
(a branch, detached, a shallow clone), and the clear messages for no repository or no commits."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from nearline.errors import EvalError
from nearline.evaluation import history
from nearline.evaluation.cases import cases_of
from nearline.evaluation.history import Commit, FileDiff, GitRepo
from nearline.evaluation.session import EvalOptions, EvalRun, read_history
from nearline.evaluation.store import EvalStore
from support.gitrepo import FIX_MESSAGE, T0, Repo, git, shop


@pytest.fixture(autouse=True)
def _no_repository_above(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """git never looks above the test's folder for a repository."""
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    return shop(tmp_path / "shop")


def by_sha(commits: list[Commit]) -> dict[str, Commit]:
    return {c.sha: c for c in commits}


def test_commits_follow_first_parents_newest_first_without_merges(repo: Repo) -> None:
    commits = GitRepo(repo.root).commits(50)
    names = {sha: name for name, sha in repo.shas.items()}
    assert [names[c.sha] for c in commits] == [
        "readme",
        "six",
        "tax",
        "wip",
        "logo",
        "rename",
        "fix",
        "discount",
        "start",
    ]  # neither the merge nor the side branch's commit
    fix = by_sha(commits)[repo.shas["fix"]]
    assert fix.parent == repo.shas["discount"]
    assert fix.message == FIX_MESSAGE and fix.subject == "fix: off-by-one in total()"
    assert fix.time == T0 + 3 * 3600
    assert by_sha(commits)[repo.shas["start"]].parent is None
    assert [c.sha for c in GitRepo(repo.root).commits(3)] == [
        repo.shas["readme"],
        repo.shas["six"],
        repo.shas["tax"],
    ]


def test_since_takes_what_git_log_takes(repo: Repo) -> None:
    # "tax" is the 7th commit: T0 + 7 h.
    since = dt.datetime.fromtimestamp(T0 + 7 * 3600, dt.timezone.utc).strftime(
        "%Y-%m-%d %H:%M:%S +0000"
    )
    commits = GitRepo(repo.root).commits(50, since=since)
    assert [c.sha for c in commits] == [repo.shas["readme"], repo.shas["six"], repo.shas["tax"]]


def test_a_modified_file_comes_with_its_text_before_and_after(repo: Repo) -> None:
    git_repo = GitRepo(repo.root)
    fix = by_sha(git_repo.commits(50))[repo.shas["fix"]]
    assert git_repo.changes(fix) == [
        FileDiff(
            "cart.py",
            "M",
            repo.show(repo.shas["discount"], "cart.py"),
            repo.show(repo.shas["fix"], "cart.py"),
            True,
        )
    ]


def test_added_binary_and_root_commits(repo: Repo) -> None:
    git_repo = GitRepo(repo.root)
    commits = by_sha(git_repo.commits(50))
    assert git_repo.changes(commits[repo.shas["start"]]) == []  # it began; it changed nothing

    [tax] = git_repo.changes(commits[repo.shas["tax"]])
    assert (tax.path, tax.status, tax.old, tax.text) == ("tax.py", "A", None, True)
    assert tax.new == repo.show(repo.shas["tax"], "tax.py")

    logo = {d.path: d for d in git_repo.changes(commits[repo.shas["logo"]])}
    assert set(logo) == {"logo.png", "util.py"}
    assert (logo["logo.png"].status, logo["logo.png"].new, logo["logo.png"].text) == (
        "A",
        None,
        False,
    )
    assert logo["util.py"].text and "def cents" in (logo["util.py"].new or "")

    assert len(git_repo.changes(commits[repo.shas["six"]])) == 6


def test_deleted_large_and_symlinked_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = Repo.init(tmp_path / "r")
    repo.commit("one", "start", {"a.py": "x = 1\n", "big.py": "y = 2\n", "gone.py": "z = 3\n"})
    os.symlink("a.py", repo.root / "link.py")
    repo.commit(
        "two",
        "delete gone.py and grow big.py",
        {
            "gone.py": None,
            "big.py": "y = 2\n" + "#" * 200 + "\n",
            "latin.py": "é".encode("latin-1"),
        },
    )
    monkeypatch.setattr(history, "MAX_FILE_BYTES", 100)
    git_repo = GitRepo(repo.root)
    two = git_repo.commits(1)[0]
    diffs = {d.path: d for d in git_repo.changes(two)}
    assert set(diffs) == {"gone.py", "big.py", "latin.py"}  # no symbolic link
    assert diffs["gone.py"] == FileDiff("gone.py", "D", "z = 3\n", None, True)
    # Too large, or not UTF-8: like a binary file, no text and no cases.
    assert diffs["big.py"].old == "y = 2\n" and diffs["big.py"].new is None
    assert not diffs["big.py"].text
    assert diffs["latin.py"].new is None and not diffs["latin.py"].text


def test_the_state_of_a_branch_and_of_a_detached_head(repo: Repo) -> None:
    git_repo = GitRepo(repo.root)
    state = git_repo.state()
    assert (state.head, state.branch, state.shallow) == (repo.shas["readme"], "main", False)
    assert state.notes() == []

    repo.git("checkout", "-q", "--detach", repo.shas["fix"])
    state = git_repo.state()
    assert (state.head, state.branch) == (repo.shas["fix"], None)
    [note] = state.notes()
    assert "detached" in note and repo.shas["fix"][:12] in note
    # The history is the one behind the detached commit.
    assert [c.sha for c in git_repo.commits(50)] == [
        repo.shas["fix"],
        repo.shas["discount"],
        repo.shas["start"],
    ]


def test_find_from_a_subfolder_gives_the_top(repo: Repo) -> None:
    (repo.root / "docs" / "deep").mkdir(parents=True)
    assert GitRepo.find(repo.root / "docs" / "deep").root == repo.root.resolve()


def test_a_shallow_clone_leaves_out_its_oldest_commit(tmp_path: Path, repo: Repo) -> None:
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", "--depth", "2", "--branch", "main", repo.root.as_uri(), str(clone))
    git_repo = GitRepo(clone)
    state = git_repo.state()
    assert state.shallow and state.branch == "main"
    assert any("shallow clone" in n and "--unshallow" in n for n in state.notes())
    commits = git_repo.commits(50)
    assert [c.sha for c in commits] == [repo.shas["readme"], repo.shas["merge"]]
    assert commits[-1].parent is None  # its parent was not fetched

    run = EvalRun("clone", state, EvalOptions(commits=50))
    read_history(git_repo, EvalStore(None), lambda _: None, run)
    assert [c.sha for c in run.commits] == [repo.shas["readme"]]


def test_a_shallow_clone_of_one_commit_says_so(tmp_path: Path, repo: Repo) -> None:
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", "--depth", "1", repo.root.as_uri(), str(clone))
    git_repo = GitRepo(clone)
    run = EvalRun("clone", git_repo.state(), EvalOptions())
    with pytest.raises(EvalError, match=r"shallow clone.*--unshallow.*at least two commits"):
        read_history(git_repo, EvalStore(None), lambda _: None, run)


def test_one_commit_is_not_enough_history(tmp_path: Path) -> None:
    repo = Repo.init(tmp_path / "r")
    repo.commit("one", "start", {"a.py": "x = 1\n"})
    git_repo = GitRepo(repo.root)
    run = EvalRun("r", git_repo.state(), EvalOptions())
    with pytest.raises(EvalError, match="at least two commits") as caught:
        read_history(git_repo, EvalStore(None), lambda _: None, run)
    assert "shallow" not in str(caught.value)


def test_no_commits_yet(tmp_path: Path) -> None:
    root = tmp_path / "empty"
    Repo.init(root)
    git_repo = GitRepo.find(root)
    with pytest.raises(EvalError, match="no commits yet"):
        git_repo.state()


def test_find_from_a_file_gives_its_repository(repo: Repo) -> None:
    assert GitRepo.find(repo.root / "cart.py").root == repo.root.resolve()


def test_find_without_git_says_git_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))
    with pytest.raises(EvalError, match="git is not installed"):
        GitRepo.find(tmp_path)


def test_not_a_repository(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(EvalError, match="not in a git repository"):
        GitRepo.find(plain)


def test_no_git_command(tmp_path: Path) -> None:
    with pytest.raises(EvalError, match="git is not installed"):
        GitRepo(tmp_path, git="no-such-git-command").state()


def test_a_worktree_holds_the_commit_and_goes_away(repo: Repo) -> None:
    git_repo = GitRepo(repo.root)
    with git_repo.worktree(repo.shas["discount"]) as tree:
        assert (tree / "cart.py").read_text() == repo.show(repo.shas["discount"], "cart.py")
        assert not (tree / "tax.py").exists()
        (tree / "scratch.py").write_text("left behind\n")
    assert not tree.exists()
    assert repo.git("worktree", "list").count("\n") == 1
    assert repo.git("status", "--porcelain") == ""


def test_binary_blobs_have_no_text(repo: Repo) -> None:
    sha = repo.git("rev-parse", f"{repo.shas['logo']}:logo.png").strip()
    text_sha = repo.git("rev-parse", f"{repo.shas['logo']}:util.py").strip()
    blobs = GitRepo(repo.root).blobs([sha, text_sha, sha])
    assert blobs == {text_sha: repo.show(repo.shas["logo"], "util.py")}


def test_a_rename_is_compared_with_its_old_text(tmp_path: Path) -> None:
    repo = Repo.init(tmp_path / "r")
    body = "".join(f"def f{i}(x):\n    return x + {i}\n\n" for i in range(8))
    repo.commit("one", "start", {"a.py": body})
    moved = body.replace("x + 3", "x * 3")
    repo.commit("two", "move a.py to b.py and triple in f3", {"a.py": None, "b.py": moved})
    git_repo = GitRepo(repo.root)
    two = git_repo.commits(1)[0]
    [diff] = git_repo.changes(two)
    assert (diff.path, diff.status, diff.old, diff.new, diff.text) == (
        "b.py",
        "R",
        body,
        moved,
        True,
    )
    made = cases_of(two, [diff], 5)
    # Only the line the commit changed is new code; a rename is no request to make.
    assert [c.line for c in made.completion] == [moved.splitlines().index("    return x * 3")]
    assert made.escalation is None


def test_a_commit_of_too_many_files_comes_without_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = Repo.init(tmp_path / "r")
    repo.commit("one", "start", {"a.py": "x = 1\n"})
    modules = {f"m{i}.py": f"def f():\n    return {i} + {i}\n" for i in range(3)}
    repo.commit("two", "vendor three modules", dict(modules))
    monkeypatch.setattr(history, "MAX_COMMIT_FILES", 2)
    git_repo = GitRepo(repo.root)
    two = git_repo.commits(1)[0]
    diffs = git_repo.changes(two)
    assert sorted(d.path for d in diffs) == sorted(modules)
    assert not any(d.text or d.new for d in diffs)
    made = cases_of(two, diffs, 5)
    assert made.completion == () and made.escalation is None
