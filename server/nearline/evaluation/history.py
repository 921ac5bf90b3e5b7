"""A project's recent history, read with the ``git`` command: the commits of the current
branch (first parents, no merges) and, for each, the files it changed with their text before
and after. The ``git`` command rather than a binding: every checkout that has history has it,
and it reads shallow clones, worktrees and packed repositories as the user's git does."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from nearline.errors import EvalError

GIT_TIMEOUT_S = 60
MAX_FILE_BYTES = 512 * 1024
"""Larger files are treated like binary ones: no cases come from them."""
MAX_COMMIT_FILES = 100


@dataclass(frozen=True)
class Commit:
    sha: str
    parent: str | None
    """None for a root commit, or the oldest commit of a shallow clone."""
    time: int
    """Author time, Unix seconds."""
    message: str

    @property
    def subject(self) -> str:
        return self.message.strip().split("\n", 1)[0].strip()


@dataclass(frozen=True)
class FileDiff:
    path: str
    """Relative, with forward slashes (a rename is a deletion and an addition)."""
    status: str
    """"A" added, "M" modified, "D" deleted, "T" type changed, "R" renamed (``old`` is the
    text under its old path)."""
    old: str | None
    """Text before the commit; None when added, binary or too large."""
    new: str | None
    """Text after it; None when deleted, binary or too large."""
    text: bool
    """Both sides that exist are UTF-8 text within ``MAX_FILE_BYTES``."""


@dataclass(frozen=True)
class RepoState:
    head: str
    branch: str | None
    """None when HEAD is detached."""
    shallow: bool

    def notes(self) -> list[str]:
        """What the user should know about where the history comes from."""
        out = []
        if self.branch is None:
            out.append(
                f"HEAD is detached at {self.head[:12]}: the cases come from the history "
                "behind that commit (check out a branch to evaluate it instead)"
            )
        if self.shallow:
            out.append(
                "this is a shallow clone: only the commits fetched are evaluated, and the "
                "oldest of them is left out (its parent is missing); `git fetch --unshallow` "
                "brings the rest"
            )
        return out


class GitRepo:
    """One repository, read through ``git`` with no pager, no colour and no user diff tools."""

    def __init__(self, root: Path, git: str = "git") -> None:
        self.root = root
        self.git = git

    @classmethod
    def find(cls, start: Path) -> GitRepo:
        """The repository holding ``start`` (a folder, or a file's folder); ``EvalError`` when
        there is none, or no git."""
        folder = start if start.is_dir() else start.parent
        top = cls(folder).run("rev-parse", "--show-toplevel", check=False).decode().strip()
        if not top:
            raise EvalError(
                f"{start} is not in a git repository: nearline eval learns from the project's "
                "history, so run it inside a git checkout"
            )
        return cls(Path(top))

    def run(self, *args: str, stdin: bytes | None = None, check: bool = True) -> bytes:
        env = dict(os.environ, GIT_PAGER="cat", GIT_TERMINAL_PROMPT="0", LC_ALL="C")
        try:
            proc = subprocess.run(
                [self.git, "-c", "core.quotepath=off", *args],
                cwd=self.root,
                input=stdin,
                capture_output=True,
                timeout=GIT_TIMEOUT_S,
                env=env,
                check=False,
            )
        except (FileNotFoundError, NotADirectoryError):  # no git, or no folder to run it in
            if not self.root.is_dir():
                raise EvalError(f"{self.root} is not a folder") from None
            raise EvalError("git is not installed (or not on PATH)") from None
        except subprocess.TimeoutExpired:
            raise EvalError(f"git {args[0]} took over {GIT_TIMEOUT_S} s") from None
        if check and proc.returncode != 0:
            why = proc.stderr.decode("utf-8", "replace").strip().splitlines()
            raise EvalError(f"git {args[0]} failed: {why[-1] if why else proc.returncode}")
        return proc.stdout

    def state(self) -> RepoState:
        """HEAD, its branch and whether the clone is shallow; ``EvalError`` with no commits."""
        head = self.run("rev-parse", "-q", "--verify", "HEAD^{commit}", check=False).strip()
        if not head:
            raise EvalError(
                "this repository has no commits yet: nearline eval builds its cases from "
                "commits, so commit some work first"
            )
        branch = self.run("symbolic-ref", "-q", "--short", "HEAD", check=False).strip()
        shallow = self.run("rev-parse", "--is-shallow-repository", check=False).strip()
        return RepoState(head.decode(), branch.decode() or None, shallow == b"true")

    def commits(self, limit: int, since: str | None = None) -> list[Commit]:
        """The newest ``limit`` commits behind HEAD along first parents, merges left out,
        newest first; ``since`` is anything ``git log --since`` takes."""
        args = ["log", "--first-parent", "--no-merges", f"-n{limit}"]
        if since:
            args.append(f"--since={since}")
        out = self.run(*args, "--format=%H%x1f%P%x1f%at%x1f%B%x1e", "HEAD")
        commits = []
        for record in out.decode("utf-8", "replace").split("\x1e"):
            fields = record.lstrip("\n").split("\x1f")
            if len(fields) != 4:
                continue
            sha, parents, at, message = fields
            parent = parents.split()[0] if parents.split() else None
            commits.append(Commit(sha, parent, int(at or 0), message.strip()))
        return commits

    def changes(self, commit: Commit) -> list[FileDiff]:
        """The files ``commit`` changed against its parent, with their text (submodules and
        symbolic links left out; a rename with its old text). A root commit has none: it
        changed nothing, it began. A commit of over ``MAX_COMMIT_FILES`` files (a vendored
        tree, a mass reformat) is listed without its text."""
        if commit.parent is None:
            return []
        raw = self.run("diff-tree", "-r", "-z", "-M", "--no-commit-id", commit.parent, commit.sha)
        parts = raw.split(b"\0")
        entries: list[tuple[str, str, str, str, bool]] = []
        i = 0
        while i < len(parts) - 1:
            meta = parts[i].decode().lstrip(":").split()
            named = 2 if meta and meta[-1][:1] in ("R", "C") else 1
            raw_path = parts[i + named]
            i += 1 + named
            if len(meta) != 5:
                continue
            old_mode, new_mode, old_sha, new_sha, status = meta
            if {old_mode, new_mode} & {"160000", "120000"}:  # submodule, symlink
                continue
            try:
                path, readable = raw_path.decode("utf-8"), True
            except UnicodeDecodeError:  # kept as listed, never as text
                path, readable = raw_path.decode("utf-8", "replace"), False
            entries.append((path, status[0], old_sha, new_sha, readable))
        wanted = [
            sha
            for _, _, old, new, readable in entries
            for sha in (old, new)
            if readable and set(sha) != {"0"}
        ]
        blobs = self.blobs(wanted) if len(entries) <= MAX_COMMIT_FILES else {}
        diffs = []
        for path, status, old_sha, new_sha, _ in entries:
            old, new = blobs.get(old_sha), blobs.get(new_sha)
            old_ok = set(old_sha) == {"0"} or old is not None
            new_ok = set(new_sha) == {"0"} or new is not None
            diffs.append(FileDiff(path, status, old, new, old_ok and new_ok))
        return diffs

    def blobs(self, shas: list[str]) -> dict[str, str]:
        """The text of each blob that is UTF-8 text (no NUL) within ``MAX_FILE_BYTES``."""
        if not shas:
            return {}
        wanted = list(dict.fromkeys(shas))
        sizes: dict[str, int] = {}
        check = self.run("cat-file", "--batch-check", stdin="\n".join(wanted).encode() + b"\n")
        for line in check.decode().splitlines():
            fields = line.split()
            if len(fields) == 3 and fields[1] == "blob":
                sizes[fields[0]] = int(fields[2])
        small = [s for s in wanted if 0 <= sizes.get(s, -1) <= MAX_FILE_BYTES]
        if not small:
            return {}
        out = self.run("cat-file", "--batch", stdin="\n".join(small).encode() + b"\n")
        texts: dict[str, str] = {}
        pos = 0
        while pos < len(out):
            end = out.index(b"\n", pos)
            head = out[pos:end].split()
            pos = end + 1
            if len(head) != 3:
                continue
            size = int(head[2])
            body = out[pos : pos + size]
            pos += size + 1
            if b"\0" in body:
                continue
            try:
                texts[head[0].decode()] = body.decode("utf-8")
            except UnicodeDecodeError:
                continue
        return texts

    @contextlib.contextmanager
    def worktree(self, sha: str) -> Iterator[Path]:
        """A temporary checkout of ``sha`` (a detached worktree), removed afterwards."""
        folder = Path(tempfile.mkdtemp(prefix="nearline-eval-"))
        tree = folder / "tree"
        try:
            self.run("worktree", "add", "--detach", "--quiet", str(tree), sha)
            yield tree
        finally:
            self.run("worktree", "remove", "--force", str(tree), check=False)
            shutil.rmtree(folder, ignore_errors=True)
            self.run("worktree", "prune", check=False)
