#!/usr/bin/env python3
"""Quality benchmark: how useful nearline's ghost text is to a person writing real code.

It drives ``nearline serve`` over stdio as an editor does (plain LSP plus the documented
``nearline/completionReady``, ``nearline.accepted`` and ``nearline/stats``; nothing else of the
server's) on real source files, and measures two things per model and template, for each split
of the files in ``scripts/bench_data/quality/manifest.toml`` (``tune``, ``held-out``). Each
measure has its own server, with NEARLINE_CACHE_DIR/DATA_DIR/CONFIG in a temporary folder.
A code line is one that is not blank, not a comment and not in a multi-line string.

1. Tab-accepting replay. A region is ``--lines`` consecutive lines of a file that start and end
   on a code line and hold no line of a multi-line string; ``--regions`` of them per split are
   drawn with ``--seed``, round-robin over the split's files. The file is opened with the
   region's lines replaced by one line holding the first line's indentation, the cursor at its
   end (as if the person had just pressed Enter and the editor auto-indented). One request is
   made there and its answer awaited, however long a newly opened file takes (reported apart;
   not a pause), then ``--settle-ms``. The person then types the region back in, a keystroke
   every ``--key-ms`` (70 ms): each keystroke is one didChange and one
   ``textDocument/inlineCompletion``, with ``$/cancelRequest`` first for the request still
   pending, as editors do. Enter is one keystroke that inserts the newline and the next line's
   indentation (auto-indent).

   Pauses come after Enter, after a Tab, and after a non-identifier character that follows an
   identifier character ("x " "foo(" "a." "b)"); not once the region is done. At a pause the
   person looks at the ghost text for ``--look-ms`` (400 ms) from the keystroke, and longer
   only to finish judging what appeared in that time:
   - an answer that arrives while they look is what the screen shows: a version when its ghost
     text is not empty (an empty one clears the screen). The first is the answer to the
     pause's own request; when ``nearline/completionReady`` names this document and position
     while they look, and the first answer is in, they ask once more there (as the editor
     plugins do), and its answer replaces it;
   - they judge a version ``--react-ms`` (200 ms) after it appears, or the newer one if it was
     replaced meanwhile. Tab when what Tab would write (below) is not blank: one didChange
     inserts it, the item's command runs (``workspace/executeCommand`` ``nearline.accepted``
     with the item's arguments, not awaited), and Tab is a keystroke (its own request) followed
     by a pause. Otherwise typing resumes when the look ends, and the next keystroke cancels an
     answer still pending.
   What Tab writes (``--accept lines``, the default): the whole ghost text when it is a prefix of
   the rest of the real file from the cursor (compared exactly, whitespace included); else its
   longest run of leading whole lines that is one, each line with its line break (a suggestion
   that runs on wrongly past a line end counts up to that line end, as an editor's "accept
   line" would write it). ``--accept prefix``: whole-text prefixes only. Either is cut at the
   region's end: the lines after it are in the document already.

   Measures, per split: suggestions shown (pauses with at least one version), accepted / shown
   (pauses with a Tab), characters written by Tab / characters of the regions (every character
   typed or accepted after the pre-filled first indentation: newlines and auto-indent too),
   pause latency (pause keystroke to the first answer, empty or not; an answer later than the
   look counts as longer than it, so p95 reads "> 400 ms" when more than 5% are late), "whole
   ghost text shown" (pause keystroke to the last version seen at that pause, over pauses with
   one), and errors (error answers, timeouts). Percentiles are nearest-rank.

2. Random line cuts. ``--cuts`` distinct code lines per split, drawn with ``--seed`` from all the
   split's files; each is cut at a random column (``--cut-at any``, the default: anywhere from
   the end of its indentation to before its last character, so mid-word too; ``pause``: only
   at the start of its text or where the replay pauses). The rest of that line is removed and
   the lines after it stay. The server has ``completion.time_budget_ms`` = ``--cut-budget-ms``
   (10 s, the most it allows) in its initializationOptions; the document is opened and asked
   once at the cut (again if completionReady names the cut within 2 s of an answer that took
   90% of the budget). The suggestion's first line is compared with the removed rest, both
   without trailing whitespace: exact match rate, and edit similarity
   1 - Levenshtein(a, b) / max(len(a), len(b)) (``nearline.evaluation.scoring``), averaged; an
   empty suggestion scores 0.

Multi-file projects: ``--project NAME=DIR`` (repeatable) makes a row of DIR's Python files
(tests and files under 30 code lines left out); DIR is the server's workspace, and its project
index is built before measuring. ``--ab-cross-file`` measures each row twice, without
(``completion.cross_file_chars`` = 0) and with cross-file context, on the same regions and cuts,
the order alternating between projects. A cut whose removed rest names a top-level definition
that only another file of the project has is a cross-file cut; their exact matches are printed
apart. ``--git NAME=DIR`` is such a row whose cuts are ``nearline eval``'s completion cases from
the newest ``--git-commits`` commits of DIR (``nearline.evaluation.cases``): the file as the
commit left it, the cursor at a word boundary of a line it added, the rest of that line (and up
to 4 more lines of its block) taken out; its replay regions are DIR's files as for --project.

Big workspace: ``--workspace big`` copies the standard library and site-packages into a
temporary folder, ``--workspace-files`` (10,000) real source files (``bench_workspace.py`` says
which; the output's first line says where from and how many), and the measured files (the
manifest's, or ``--files``) into its ``bench_quality/``; that folder is every server's workspace.
Each split is measured twice, with the project index on and with ``index.enable = false``
(rows "SPLIT index-on", "SPLIT index-off"; the same regions and cuts; the order alternating
between splits), each server with a fresh cache folder; the index is built before measuring.

    .venv/bin/python scripts/bench_quality.py                     # default model, both splits
    .venv/bin/python scripts/bench_quality.py --model F.gguf --template prefix-only --quick
    .venv/bin/python scripts/bench_quality.py --split tune --json tune.json
    .venv/bin/python scripts/bench_quality.py --model F.gguf --ab-cross-file --skip replay \
        --project httpx=.venv/lib/python3.11/site-packages/httpx --project nearline=server
    .venv/bin/python scripts/bench_quality.py --workspace big --skip cuts
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import math
import os
import random
import re
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pygls.lsp.client import LanguageClient

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "scripts" / "bench_data" / "quality"
sys.path.insert(0, str(ROOT / "tests"))
import bench_workspace  # noqa: E402  (the big workspace, shared with bench_latency)
from nearline.evaluation import cases, report  # noqa: E402  (nearline eval's cases and scores)
from nearline.evaluation.scoring import accepted_part, similarity  # noqa: E402
from support.lsp_client import inline_params, plain  # noqa: E402  (the tests' client helpers)

MANIFEST = DATA / "manifest.toml"
SPLITS = ("tune", "held-out")
LANGUAGES = {
    ".py": "python",
    ".lua": "lua",
    ".js": "javascript",
    ".ts": "typescript",
    ".go": "go",
    ".rs": "rust",
    ".c": "c",
    ".h": "c",
    ".cpp": "cpp",
    ".sh": "sh",
}
COMMENTS = {"python": "#", "sh": "#", "lua": "--"}
REQUEST_CANCELLED = -32800
READY_GRACE_S = 2.0
"""Cuts: how long to wait for completionReady after an answer that took the whole budget."""


def is_pause_after(text: str, i: int) -> bool:
    """Whether the person pauses after typing ``text[i]``: a non-identifier character that
    follows an identifier character (Enter is handled apart)."""
    return i > 0 and text[i] != "\n" and not cases.is_ident(text[i]) and cases.is_ident(text[i - 1])


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest rank; ``inf`` stands for "later than the window"."""
    found = report.percentile(values, q)
    return float("nan") if found is None else found


# -- the files ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    path: Path
    split: str
    language: str
    text: str
    lines: tuple[str, ...]
    """The text's lines, with their line breaks."""

    @property
    def uri(self) -> str:
        return self.path.resolve().as_uri()


def load_manifest(path: Path) -> list[Source]:
    data = tomllib.loads(path.read_text())
    return [
        source_of(path.parent / entry["path"], entry.get("split", "custom"))
        for entry in data["file"]
    ]


def source_of(path: Path, split: str) -> Source:
    language = LANGUAGES.get(path.suffix)
    if language is None:
        raise SystemExit(f"{path}: unknown language (known: {', '.join(sorted(LANGUAGES))})")
    text = path.read_text(encoding="utf-8")
    return Source(path, split, language, text, tuple(text.splitlines(keepends=True)))


def file_sets(args: argparse.Namespace) -> dict[str, list[Source]]:
    """The rows to measure: split name -> its files (copied into the big workspace, if any)."""
    if args.workspace_root is not None:
        found = file_sets(argparse.Namespace(**{**vars(args), "workspace_root": None}))
        return {k: [moved_in(s, args.workspace_root) for s in v] for k, v in found.items()}
    if args.project_roots:
        return {name: project_sources(name, root) for name, root in args.project_roots}
    if args.files:
        return {"files": [source_of(Path(f), "files") for f in args.files]}
    sources = load_manifest(Path(args.manifest))
    splits = SPLITS if args.split == "all" else (args.split,)
    return {s: [src for src in sources if src.split == s] for s in splits}


BIG_FOLDER = "bench_quality"
"""Where the measured files go in the big workspace."""


def moved_in(source: Source, root: Path) -> Source:
    """``source`` copied into the big workspace's ``BIG_FOLDER``."""
    dest = root / BIG_FOLDER / source.path.name
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(source.text, encoding="utf-8")
    return dataclasses.replace(source, path=dest)


def string_lines(source: Source) -> set[int]:
    """0-based lines that are inside or part of a multi-line string (docstrings)."""
    return cases.string_lines(source.text, source.language)


def code_lines(source: Source) -> list[int]:
    """0-based lines that are neither blank, nor a comment, nor in a multi-line string."""
    comment = COMMENTS.get(source.language, "//")
    strings = string_lines(source)
    return [
        i
        for i, line in enumerate(source.lines)
        if line.strip() and not line.lstrip().startswith(comment) and i not in strings
    ]


# -- what is typed and what is cut -------------------------------------------------------------


@dataclass(frozen=True)
class Region:
    source: Source
    start: int
    end: int
    """Lines ``start`` .. ``end - 1`` (0-based) are typed back in."""

    @property
    def target(self) -> str:
        """The region's text without its last line break."""
        return "".join(self.source.lines[self.start : self.end]).removesuffix("\n")

    @property
    def indent(self) -> str:
        first = self.source.lines[self.start]
        return first[: len(first) - len(first.lstrip(" \t"))]

    @property
    def head(self) -> str:
        return "".join(self.source.lines[: self.start])

    @property
    def tail(self) -> str:
        """What follows the region, from the line break that ends it."""
        return "\n" + "".join(self.source.lines[self.end :])


def pick_regions(
    sources: Sequence[Source], k: int, n_lines: int, rng: random.Random
) -> list[Region]:
    """``k`` regions of ``n_lines`` lines, round-robin over the files in a random order; each
    starts and ends on a code line, has no line of a multi-line string, and none overlap."""
    order = list(sources)
    rng.shuffle(order)
    taken: dict[Path, list[range]] = {}
    regions: list[Region] = []
    for r in range(k):
        source = order[r % len(order)]
        code, strings = set(code_lines(source)), string_lines(source)
        starts = [
            i
            for i in sorted(code)
            if i + n_lines - 1 in code and not strings & set(range(i, i + n_lines))
        ]
        rng.shuffle(starts)
        for start in starts:
            span = range(start, start + n_lines)
            if all(not set(span) & set(other) for other in taken.get(source.path, [])):
                taken.setdefault(source.path, []).append(span)
                regions.append(Region(source, start, start + n_lines))
                break
    return regions


@dataclass(frozen=True)
class Cut:
    source: Source
    line: int
    column: int
    """Code points; the line is cut here and its rest removed."""

    @property
    def body(self) -> str:
        return self.source.lines[self.line].rstrip("\r\n")

    @property
    def rest(self) -> str:
        return self.body[self.column :]

    @property
    def document(self) -> str:
        lines = self.source.lines
        return (
            "".join(lines[: self.line])
            + self.body[: self.column]
            + "\n"
            + "".join(lines[self.line + 1 :])
        )


GIT_CASES_PER_COMMIT = 2
"""--git rows: completion cases drawn from each commit (``nearline eval`` draws 1)."""


@dataclass(frozen=True)
class HistoryCut:
    """A cut made by ``nearline eval``'s case builder: the file as a commit left it, the
    cursor on a line the commit added, the rest of the line (and of its block) removed."""

    source: Source
    """The document as the cut leaves it."""
    line: int
    column: int
    rest: str
    """The rest of the author's line."""

    @property
    def document(self) -> str:
        return self.source.text


def git_cuts(args: argparse.Namespace, root: Path, split: str) -> list[HistoryCut]:
    """``--cuts`` completion cases from the newest ``--git-commits`` commits of ``root``."""
    from nearline.evaluation.history import GitRepo

    repo = GitRepo.find(root)
    found: list[HistoryCut] = []
    for commit in repo.commits(args.git_commits):
        for case in cases.cases_of(commit, repo.changes(commit), GIT_CASES_PER_COMMIT).completion:
            lines = tuple(case.document.splitlines(keepends=True))
            source = Source(repo.root / case.path, split, case.language, case.document, lines)
            found.append(HistoryCut(source, case.line, case.column, case.expected.split("\n")[0]))
    return found[: args.cuts]


def cut_columns(body: str, at: str) -> list[int]:
    indent = len(body) - len(body.lstrip(" \t"))
    columns = range(indent, len(body.rstrip()))
    if at == "any":
        return list(columns)
    return [c for c in columns if c == indent or is_pause_after(body, c - 1)]


def pick_cuts(sources: Sequence[Source], n: int, at: str, rng: random.Random) -> list[Cut]:
    """``n`` distinct lines drawn from all the files' code lines, each cut at a random column."""
    pool = [(s, i) for s in sources for i in code_lines(s)]
    cuts: list[Cut] = []
    for source, line in rng.sample(pool, min(n, len(pool))):
        body = source.lines[line].rstrip("\r\n")
        columns = cut_columns(body, at)
        if columns:
            cuts.append(Cut(source, line, rng.choice(columns)))
    return cuts


# -- the document as the editor holds it -------------------------------------------------------


def units(text: str, encoding: str) -> int:
    """Length of ``text`` in the position encoding agreed at initialize."""
    if encoding == "utf-32":
        return len(text)
    if encoding == "utf-8":
        return len(text.encode("utf-8"))
    return len(text.encode("utf-16-le")) // 2


@dataclass
class Document:
    uri: str
    language: str
    text: str
    offset: int
    """The cursor, in code points."""
    encoding: str
    version: int = 1

    def position(self) -> types.Position:
        line = self.text.count("\n", 0, self.offset)
        start = self.text.rfind("\n", 0, self.offset) + 1
        return types.Position(
            line=line, character=units(self.text[start : self.offset], self.encoding)
        )

    def line_before_cursor(self) -> str:
        return self.text[self.text.rfind("\n", 0, self.offset) + 1 : self.offset]

    def insert(self, text: str) -> types.DidChangeTextDocumentParams:
        """Insert ``text`` at the cursor and move after it; the didChange that says so."""
        pos = self.position()
        self.text = self.text[: self.offset] + text + self.text[self.offset :]
        self.offset += len(text)
        self.version += 1
        return types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=self.uri, version=self.version),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(start=pos, end=pos), text=text
                )
            ],
        )

    def ghost(self, item: types.InlineCompletionItem) -> str | None:
        """The text the item shows after the cursor; None when its range does not fit."""
        text = item.insert_text if isinstance(item.insert_text, str) else item.insert_text.value
        here = self.position()
        start = item.range.start if item.range else here
        if start == here:
            return text
        if start.line != here.line or start.character > here.character:
            return None
        before = self.line_before_cursor()
        k = len(before)
        while k > 0 and units(before[k:], self.encoding) < here.character - start.character:
            k -= 1
        typed = before[k:]
        return text[len(typed) :] if text.startswith(typed) else None


# -- the server --------------------------------------------------------------------------------


class Server:
    """``nearline serve`` over stdio, with what it notifies recorded."""

    def __init__(
        self,
        args: argparse.Namespace,
        workdir: Path,
        options: dict[str, Any],
        root: Path | None = None,
    ) -> None:
        self.args = args
        self.workdir = workdir
        self.options = options
        self.root = root
        """The workspace folder (a project's): the server indexes it."""
        self.client = LanguageClient("bench-quality", "0")
        self.encoding = "utf-16"
        self.model: str | None = None
        self.state = "loading"
        self.load_error = ""
        self.state_changed = asyncio.Event()
        self.ready_log: list[tuple[float, str, int, int]] = []
        self.ready_changed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.messages: list[str] = []
        self.stderr_tail: list[str] = []
        self.errors: list[str] = []
        self.cancelled = 0
        self._ids = 0
        for method, handler in (
            ("nearline/status", self._on_status),
            ("nearline/completionReady", self._on_ready),
            (types.WINDOW_SHOW_MESSAGE, self._on_message),
            (types.WINDOW_LOG_MESSAGE, lambda *_: None),
        ):
            self.client.feature(method)(lambda *a, h=handler: h(*a))  # pygls tags the function

    def _on_status(self, *args: Any) -> None:
        params = plain(args[-1])
        self.model = params.get("model") or self.model
        if params.get("state") in ("ready", "error"):
            self.state = params["state"]
            self.load_error = str(params.get("message") or "")
            self.state_changed.set()

    def _on_ready(self, *args: Any) -> None:
        params = plain(args[-1])
        pos = params["position"]
        self.ready_log.append(
            (time.perf_counter(), params["textDocument"]["uri"], pos["line"], pos["character"])
        )
        done, self.ready_changed = self.ready_changed, asyncio.get_running_loop().create_future()
        done.set_result(None)

    def _on_message(self, *args: Any) -> None:
        self.messages.append(str(getattr(args[-1], "message", args[-1])))

    def ready_since(self, uri: str, pos: types.Position, since: float) -> float | None:
        """When completionReady named this place at or after ``since``."""
        for t, u, line, character in self.ready_log:
            if t >= since and u == uri and line == pos.line and character == pos.character:
                return t
        return None

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "nearline", "--log-level", "WARNING"]
        cmd += ["--log-file", str(self.workdir / "serve.log"), "serve"]
        for flag, value in (
            ("--model", self.args.model),
            ("--model-name", self.args.model_name),
            ("--template", self.args.template),
        ):
            if value:
                cmd += [flag, value]
        return cmd

    def env(self) -> dict[str, str]:
        env = dict(
            os.environ,
            NEARLINE_CACHE_DIR=str(self.workdir / "cache"),
            NEARLINE_DATA_DIR=str(self.workdir / "data"),
            NEARLINE_CONFIG=str(self.workdir / "none.toml"),
        )
        env["PYTHONPATH"] = os.pathsep.join(
            [str(ROOT / "server"), *filter(None, [os.environ.get("PYTHONPATH")])]
        )
        return env

    async def start(self) -> None:
        cmd = self.command()
        await self.client.start_io(cmd[0], *cmd[1:], env=self.env(), cwd=str(self.workdir))
        proc = getattr(self.client, "_server", None)
        if proc is not None and proc.stderr is not None:
            asyncio.get_running_loop().create_task(self._drain(proc.stderr))
        result = await self.client.initialize_async(
            types.InitializeParams(
                capabilities=types.ClientCapabilities(),
                process_id=os.getpid(),
                initialization_options=self.options or None,
                root_uri=self.root.resolve().as_uri() if self.root else None,
            )
        )
        encoding = result.capabilities.position_encoding
        self.encoding = str(getattr(encoding, "value", encoding) or "utf-16")
        self.client.initialized(types.InitializedParams())
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.state_changed.wait(), timeout=600)
        if self.state != "ready":
            raise SystemExit(
                f"nearline serve did not load the model ({self.state}): "
                + (self.load_error or "; ".join(self.messages + self.stderr_tail[-5:]))
            )
        if self.root is not None and self.options.get("index", {}).get("enable", True):
            await self.wait_indexed()

    async def wait_indexed(self, timeout_s: float = 300) -> None:
        """Until ``nearline/stats`` says the project index is built."""
        give_up = time.perf_counter() + timeout_s
        while time.perf_counter() < give_up:
            index = (await self.stats()).get("index") or {}
            if index.get("ready"):
                log(f"  index of {self.root}: {index.get('files')} files")
                return
            await asyncio.sleep(0.2)
        raise SystemExit(f"the project index of {self.root} was not built in {timeout_s} s")

    async def _drain(self, stream: asyncio.StreamReader) -> None:
        """Read the server's stderr (an unread pipe would block it), keep its last lines."""
        async for line in stream:
            self.stderr_tail = [*self.stderr_tail[-19:], line.decode(errors="replace").rstrip()]

    def open(self, doc: Document) -> None:
        self.client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(
                    uri=doc.uri, language_id=doc.language, version=doc.version, text=doc.text
                )
            )
        )

    def close(self, doc: Document) -> None:
        self.client.text_document_did_close(
            types.DidCloseTextDocumentParams(
                text_document=types.TextDocumentIdentifier(uri=doc.uri)
            )
        )

    def ask(self, doc: Document) -> tuple[str, asyncio.Future[Any]]:
        """An inline completion request at the cursor: its id and its answer."""
        self._ids += 1
        msg_id = f"q{self._ids}"
        position = doc.position()
        params = inline_params(doc.uri, position.line, position.character)
        fut = asyncio.wrap_future(
            self.client.protocol.send_request(
                types.TEXT_DOCUMENT_INLINE_COMPLETION, params, msg_id=msg_id
            )
        )
        fut.add_done_callback(self._check)
        return msg_id, fut

    def _check(self, fut: asyncio.Future[Any]) -> None:
        if fut.cancelled():
            return
        exc = fut.exception()
        if isinstance(exc, JsonRpcException) and exc.code == REQUEST_CANCELLED:
            self.cancelled += 1
        elif exc is not None:
            self.errors.append(repr(exc))

    def cancel(self, msg_id: str) -> None:
        self.client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=msg_id))

    def accepted(self, command: types.Command | None) -> None:
        """Run the item's command, as the editor does on Tab (not awaited, like an editor)."""
        if command is None:
            self.errors.append("an inline completion item without the nearline.accepted command")
            return
        fut = asyncio.wrap_future(
            self.client.protocol.send_request(
                types.WORKSPACE_EXECUTE_COMMAND,
                types.ExecuteCommandParams(command=command.command, arguments=command.arguments),
            )
        )
        fut.add_done_callback(self._check)

    async def stats(self) -> dict[str, Any]:
        result = await self.client.protocol.send_request_async("nearline/stats", None)
        return {k: v for k, v in plain(result).items() if k != "recent"}

    async def stop(self) -> None:
        """shutdown and exit, if the server still answers; then end the process."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.client.shutdown_async(None), timeout=30)
            self.client.exit(None)
        await self.client.stop()


def first_item(result: Any) -> types.InlineCompletionItem | None:
    items = result.items if isinstance(result, types.InlineCompletionList) else result or []
    return items[0] if items else None


# -- the person --------------------------------------------------------------------------------


@dataclass
class Pause:
    split: str
    file: str
    region_line: int
    """1-based first line of the region in the file."""
    kind: str
    """"start", "line" (after Enter), "word" (after a non-identifier character), "tab"."""
    line: int
    character: int
    """The cursor (0-based LSP position; the document's lines are the file's)."""
    expected: str
    """The next characters of the real file (up to 80)."""
    latency_ms: float | None = None
    """Keystroke to the first answer; None: none within the window."""
    versions: list[tuple[float, str]] = field(default_factory=list)
    """(ms after the keystroke, ghost text) of each version seen."""
    reasked: bool = False
    accepted: str = ""
    accept_kind: str = ""
    """"whole" (the whole ghost text) or "lines" (its leading whole lines)."""
    error: str = ""


@dataclass
class RegionRun:
    """One region typed back in."""

    split: str
    file: str
    line: int
    """1-based first line of the region in the file."""
    pauses: list[Pause] = field(default_factory=list)
    written: int = 0
    """Characters typed or accepted (after the pre-filled first indentation)."""
    by_tab: int = 0
    """Those written by Tab."""
    open_ms: float | None = None
    """didOpen to the answer at the region's start; None: none within the timeout."""


@dataclass
class Look:
    """One pause as it unfolds: the answer awaited, the ghost text on screen, the judgement."""

    pause: Pause
    t_key: float
    expected: str
    """The rest of the real file from the cursor."""
    room: int
    """Characters left in the region: Tab writes no further."""
    pending: tuple[str, asyncio.Future[Any]]
    answered: bool = False
    """Whether ``pending`` has been looked at."""
    item: types.InlineCompletionItem | None = None
    """The item whose ghost text is on screen."""
    judge_at: float | None = None


class Typist:
    """A person typing regions back in, looking at pauses and pressing Tab."""

    def __init__(self, server: Server, args: argparse.Namespace) -> None:
        self.server = server
        self.args = args
        self.pending: tuple[str, asyncio.Future[Any]] | None = None
        self.doc: Document | None = None
        self.t_key = 0.0

    def _cancel_pending(self) -> None:
        if self.pending is not None and not self.pending[1].done():
            self.server.cancel(self.pending[0])
        self.pending = None

    def key(self, text: str) -> None:
        """One keystroke (Tab included): cancel the pending request, didChange, ask."""
        assert self.doc is not None
        self._cancel_pending()
        self.t_key = time.perf_counter()
        if text:
            self.server.client.text_document_did_change(self.doc.insert(text))
        self.pending = self.server.ask(self.doc)

    async def type_region(self, region: Region, split: str) -> RegionRun:
        """Open the file without the region, wait for the server, type the region back in."""
        server, target = self.server, region.target
        head = region.head + region.indent
        self.doc = Document(
            region.source.uri,
            region.source.language,
            head + region.tail,
            len(head),
            server.encoding,
        )
        run = RegionRun(split, region.source.path.name, region.start + 1)
        server.open(self.doc)
        run.open_ms = await self.first_answer()
        await asyncio.sleep(self.args.settle_ms / 1000)
        i = start = len(region.indent)
        kind: str | None = None
        while i < len(target):
            text, kind = self.next_key(target, i)
            self.key(text)
            i += len(text)
            if not kind:
                await asyncio.sleep(self.args.key_ms / 1000)
            while kind and i < len(target):
                pause = self.new_pause(region, split, kind, target[i:] + region.tail)
                run.pauses.append(pause)
                take = await self.look(pause, target[i:] + region.tail, len(target) - i)
                i, run.by_tab, kind = i + len(take), run.by_tab + len(take), "tab" if take else None
        self._cancel_pending()
        server.close(self.doc)
        run.written = len(target) - start
        return run

    async def first_answer(self) -> float | None:
        """Ask where the person starts and wait for the answer (a newly opened file can take
        the server seconds); its time in ms, None after ``--open-timeout-s``."""
        self.key("")
        assert self.pending is not None
        with contextlib.suppress(asyncio.TimeoutError, JsonRpcException):
            await asyncio.wait_for(asyncio.shield(self.pending[1]), self.args.open_timeout_s)
            return (time.perf_counter() - self.t_key) * 1000
        return None

    @staticmethod
    def next_key(target: str, i: int) -> tuple[str, str | None]:
        """The keystroke at ``target[i]`` and the pause after it, if any."""
        if target[i] == "\n":
            j = i + 1
            while j < len(target) and target[j] in " \t":
                j += 1
            return target[i:j], "line"
        return target[i], "word" if is_pause_after(target, i) else None

    def new_pause(self, region: Region, split: str, kind: str, expected: str) -> Pause:
        assert self.doc is not None
        pos = self.doc.position()
        return Pause(
            split=split,
            file=region.source.path.name,
            region_line=region.start + 1,
            kind=kind,
            line=pos.line,
            character=pos.character,
            expected=expected[:80],
        )

    async def look(self, pause: Pause, expected: str, room: int) -> str:
        """Watch the ghost text for the look window; press Tab when a version is worth it.
        Returns what Tab wrote ("" for none)."""
        assert self.pending is not None
        deadline = self.t_key + self.args.look_ms / 1000
        look = Look(pause, self.t_key, expected, room, self.pending)
        while True:
            now = time.perf_counter()
            if look.judge_at is not None and now >= look.judge_at:
                look.judge_at = None
                take = self.judge(look)
                if take:
                    return take
            if look.judge_at is None and now >= deadline:
                return ""
            until = look.judge_at if look.judge_at is not None else deadline
            waits: list[asyncio.Future[Any]] = [self.server.ready_changed]
            if not look.answered:
                waits.append(look.pending[1])
            await asyncio.wait(waits, timeout=max(0.0, until - now), return_when="FIRST_COMPLETED")
            self.on_answer(look)
            self.maybe_reask(look)

    def on_answer(self, look: Look) -> None:
        """The awaited answer arrived: the first sets the latency; its ghost text, if any, is
        what the screen shows now (a new version, judged after the reaction time)."""
        fut = look.pending[1]
        if look.answered or not fut.done():
            return
        look.answered = True
        now = time.perf_counter()
        pause = look.pause
        if not pause.reasked:
            pause.latency_ms = (now - look.t_key) * 1000
        if fut.cancelled() or fut.exception() is not None:
            pause.error = repr(fut.exception()) if not fut.cancelled() else "cancelled"
            return
        assert self.doc is not None
        item = first_item(fut.result())
        ghost = self.doc.ghost(item) if item is not None else ""
        if ghost is None:
            pause.error = "an inline completion item whose range does not fit the document"
            ghost = ""
        look.item, look.judge_at = (
            (item, now + self.args.react_ms / 1000) if ghost else (None, None)
        )
        if ghost:
            pause.versions.append(((now - look.t_key) * 1000, ghost))

    def maybe_reask(self, look: Look) -> None:
        """completionReady named this place since the keystroke, and the first answer is in:
        ask again (once), as the editor plugins do."""
        assert self.doc is not None
        pause = look.pause
        if pause.reasked or not look.answered:
            return
        if self.server.ready_since(self.doc.uri, self.doc.position(), look.t_key) is None:
            return
        pause.reasked = True
        look.pending = self.pending = self.server.ask(self.doc)
        look.answered = False

    def judge(self, look: Look) -> str:
        """Judge the ghost text on screen; on Tab, write it and return what was written."""
        if look.item is None:
            return ""
        pause = look.pause
        ghost = pause.versions[-1][1]
        take = accepted_part(ghost, look.expected, look.room, self.args.accept == "lines")
        if not take:
            return ""
        pause.accepted = take
        pause.accept_kind = "whole" if take == ghost else "lines"
        self.key(take)
        self.server.accepted(look.item.command)
        return take


# -- the two measures --------------------------------------------------------------------------


def with_options(options: dict[str, Any], extra: dict[str, Any] | None) -> dict[str, Any]:
    """``options`` with ``extra``'s completion settings over them."""
    if not extra:
        return options
    completion = {**options.get("completion", {}), **extra.get("completion", {})}
    return {**options, **extra, "completion": completion}


def replay_options(args: argparse.Namespace) -> dict[str, Any]:
    completion: dict[str, Any] = {}
    if args.time_budget_ms is not None:
        completion["time_budget_ms"] = args.time_budget_ms
    if args.min_confidence is not None:
        completion["min_confidence"] = args.min_confidence
    return {"completion": completion} if completion else {}


async def run_replay(
    args: argparse.Namespace,
    sets: dict[str, list[Source]],
    workdir: Path,
    root: Path | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    server = Server(args, workdir, with_options(replay_options(args), extra), root)
    typist = Typist(server, args)
    regions: list[RegionRun] = []
    try:
        await server.start()
        for split, sources in sets.items():
            rng = random.Random(f"{args.seed}:{base_name(split)}:regions")
            for region in pick_regions(sources, args.regions, args.lines, rng):
                run = await typist.type_region(region, split)
                regions.append(run)
                tabs = sum(1 for p in run.pauses if p.accepted)
                log(f"  {split} {run.file}:{run.line}: {tabs} Tab / {len(run.pauses)} pauses")
        await asyncio.sleep(0.5)
        stats = await server.stats()
    finally:
        await server.stop()
    return {
        "regions": regions,
        "errors": server.errors,
        "messages": server.messages,
        "stats": stats,
        "model": server.model,
        "cancelled": server.cancelled,
    }


@dataclass
class CutResult:
    split: str
    file: str
    line: int
    """1-based."""
    column: int
    """1-based, in code points: the cursor."""
    rest: str
    suggestion: str = ""
    first_line: str = ""
    exact: bool = False
    similarity: float = 0.0
    latency_ms: float | None = None
    reasked: bool = False
    error: str = ""
    cross_file: bool = False
    """The removed rest names something defined only in another file of the project."""


async def ask_cut(server: Server, doc: Document, budget_ms: int) -> tuple[str, float, bool]:
    """One request at the cut (again after completionReady when the budget cut it): the ghost
    text, the first answer's latency, whether it was asked again."""
    t0 = time.perf_counter()
    _, fut = server.ask(doc)
    item = first_item(await asyncio.wait_for(fut, timeout=120))
    latency = (time.perf_counter() - t0) * 1000
    reasked = False
    if latency >= 0.9 * budget_ms:
        give_up = time.perf_counter() + READY_GRACE_S
        while server.ready_since(doc.uri, doc.position(), t0) is None:
            left = give_up - time.perf_counter()
            if left <= 0:
                break
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(server.ready_changed), timeout=left)
        if server.ready_since(doc.uri, doc.position(), t0) is not None:
            _, fut = server.ask(doc)
            item, reasked = first_item(await asyncio.wait_for(fut, timeout=120)), True
    ghost = (doc.ghost(item) if item is not None else "") or ""
    return ghost, latency, reasked


async def run_cuts(
    args: argparse.Namespace,
    sets: dict[str, list[Source]],
    workdir: Path,
    root: Path | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    options = with_options({"completion": {"time_budget_ms": args.cut_budget_ms}}, extra)
    server = Server(args, workdir, options, root)
    results: list[CutResult] = []
    try:
        await server.start()
        for split, sources in sets.items():
            rng = random.Random(f"{args.seed}:{base_name(split)}:cuts")
            picked = (
                git_cuts(args, dict(args.project_roots)[base_name(split)], split)
                if base_name(split) in args.git_rows
                else pick_cuts(sources, args.cuts, args.cut_at, rng)
            )
            for cut in picked:
                results.append(await measure_cut(server, cut, split))
            log(
                f"  {split}: {sum(r.exact for r in results if r.split == split)} exact "
                f"of {sum(1 for r in results if r.split == split)} cuts"
            )
    finally:
        await server.stop()
    return {
        "cuts": results,
        "errors": server.errors,
        "messages": server.messages,
        "model": server.model,
    }


async def measure_cut(server: Server, cut: Cut | HistoryCut, split: str) -> CutResult:
    doc = Document(
        cut.source.uri,
        cut.source.language,
        cut.document,
        len("".join(cut.source.lines[: cut.line])) + cut.column,
        server.encoding,
    )
    result = CutResult(split, cut.source.path.name, cut.line + 1, cut.column + 1, cut.rest)
    elsewhere = DEFINED_ELSEWHERE.get(cut.source.path, set())
    result.cross_file = bool(elsewhere & set(IDENTIFIER.findall(cut.rest)))
    server.open(doc)
    try:
        ghost, result.latency_ms, result.reasked = await ask_cut(
            server, doc, server.options["completion"]["time_budget_ms"]
        )
    except Exception as exc:  # a timeout or an error answer: counted, the run goes on
        result.error = repr(exc)
        ghost = ""
    finally:
        server.close(doc)
    result.suggestion = ghost
    result.first_line = ghost.split("\n", 1)[0].rstrip()
    result.exact = result.first_line == cut.rest.rstrip()
    result.similarity = similarity(result.first_line, cut.rest.rstrip())
    return result


# -- the report --------------------------------------------------------------------------------


def summarize_replay(split: str, run: dict[str, Any], look_ms: float) -> dict[str, Any]:
    regions = [r for r in run["regions"] if r.split == split]
    pauses = [p for r in regions for p in r.pauses]
    shown = [p for p in pauses if p.versions]
    latencies = [p.latency_ms if p.latency_ms is not None else math.inf for p in pauses]
    opened = [r.open_ms if r.open_ms is not None else math.inf for r in regions]
    return {
        "regions": len(regions),
        "pauses": len(pauses),
        "shown": len(shown),
        "accepted": sum(1 for p in pauses if p.accepted),
        "accepted_lines": sum(1 for p in pauses if p.accept_kind == "lines"),
        "chars": sum(r.written for r in regions),
        "chars_by_tab": sum(r.by_tab for r in regions),
        "latency_p50_ms": percentile(latencies, 0.5),
        "latency_p95_ms": percentile(latencies, 0.95),
        "late": sum(1 for p in pauses if p.latency_ms is None and not p.error),
        "whole_p95_ms": percentile([p.versions[-1][0] for p in shown], 0.95),
        "reasked": sum(1 for p in pauses if p.reasked),
        "errors": sum(1 for p in pauses if p.error),
        "open_p50_ms": percentile(opened, 0.5),
        "look_ms": look_ms,
    }


def summarize_cuts(split: str, run: dict[str, Any]) -> dict[str, Any]:
    cuts = [c for c in run["cuts"] if c.split == split]
    return {
        "cuts": len(cuts),
        "exact": sum(1 for c in cuts if c.exact),
        "similarity": sum(c.similarity for c in cuts) / len(cuts) if cuts else float("nan"),
        "empty": sum(1 for c in cuts if not c.suggestion),
        "cut_latency_p50_ms": percentile(
            [c.latency_ms if c.latency_ms is not None else math.inf for c in cuts], 0.5
        ),
        "cut_errors": sum(1 for c in cuts if c.error),
        "cross_file_cuts": sum(1 for c in cuts if c.cross_file),
        "cross_file_exact": sum(1 for c in cuts if c.cross_file and c.exact),
    }


def ms(value: float, look_ms: float) -> str:
    if value != value:
        return "-"
    if math.isinf(value):
        return "timeout" if math.isinf(look_ms) else f"> {look_ms:.0f}"
    return f"{value:.0f}"


def ms_cell(values: Sequence[float], look_ms: float) -> str:
    """ "p50 / p95 ms", or "-" with no data."""
    shown = [ms(v, look_ms) for v in values]
    return "-" if all(v == "-" for v in shown) else " / ".join(shown) + " ms"


def ratio(part: int, whole: int) -> str:
    return f"{part}/{whole} ({100 * part / whole:.0f}%)" if whole else "-"


def table(label: str, rows: dict[str, dict[str, Any]]) -> str:
    out = [
        "| model, template | split | accepted / shown | characters written by Tab "
        "| pause latency p50 / p95 | whole ghost text shown p95 | exact match | edit similarity |",
        "|" + " --- |" * 8,
    ]
    for split, r in rows.items():
        cells = [label, split]
        if "pauses" in r:
            look = r["look_ms"]
            cells += [
                ratio(r["accepted"], r["shown"]),
                ratio(r["chars_by_tab"], r["chars"]),
                ms_cell([r["latency_p50_ms"], r["latency_p95_ms"]], look),
                ms_cell([r["whole_p95_ms"]], look),
            ]
        else:
            cells += ["-"] * 4
        if "cuts" in r:
            cells += [ratio(r["exact"], r["cuts"]), f"{r['similarity']:.2f}"]
        else:
            cells += ["-"] * 2
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def details(rows: dict[str, dict[str, Any]]) -> list[str]:
    out = []
    for split, r in rows.items():
        parts = []
        if "pauses" in r:
            parts.append(
                f"replay: {r['regions']} regions, {r['chars']} characters, {r['pauses']} pauses, "
                f"{r['shown']} shown, {r['accepted']} Tab ({r['accepted_lines']} of whole lines), "
                f"{r['reasked']} asked again after completionReady, {r['late']} answers later "
                f"than the look, {r['errors']} errors; first answer after opening a file p50 "
                f"{ms(r['open_p50_ms'], math.inf)} ms"
            )
        if "cuts" in r:
            parts.append(
                f"cuts: {r['cuts']}, {r['empty']} empty, latency p50 "
                f"{ms(r['cut_latency_p50_ms'], math.inf)} ms, {r['cut_errors']} errors"
            )
            if r["cross_file_cuts"]:
                parts.append(
                    f"cuts naming what only another project file defines: "
                    f"{ratio(r['cross_file_exact'], r['cross_file_cuts'])} exact"
                )
        out.append(f"{split}: " + "; ".join(parts))
    return out


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def label_of(args: argparse.Namespace, model: str | None, template: str | None) -> str:
    """The model as the server names it, and the template (with what "auto" chose, when
    nearline/stats says)."""
    name = model or args.model_name or (Path(args.model).name if args.model else "default")
    asked = args.template or "auto"
    chosen = f" ({template})" if asked == "auto" and template else ""
    return f"{name}, {asked}{chosen}"


# -- the command -------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add("--model", metavar="GGUF", help="GGUF file (default: what the server resolves)")
    add("--model-name", metavar="NAME", help="a catalog model pulled before")
    add("--template", metavar="ID", help="auto, prefix-only, qwen2.5-coder, ...")
    add("--manifest", default=str(MANIFEST), help="the files and their splits")
    add("--files", nargs="+", metavar="FILE", help="these files instead of the manifest (one row)")
    add("--split", choices=[*SPLITS, "all"], default="all")
    add("--regions", type=int, default=10, help="regions typed per split (default 10)")
    add("--lines", type=int, default=4, help="lines per region (default 4)")
    add("--cuts", type=int, default=24, help="line cuts per split (default 24)")
    add("--cut-at", choices=["any", "pause"], default="any", help="where a line is cut")
    add("--seed", type=int, default=1)
    add("--time-budget-ms", type=int, help="completion.time_budget_ms for the replay")
    add("--min-confidence", type=float, help="completion.min_confidence for the replay")
    add("--cut-budget-ms", type=int, default=10_000, help="the cuts' time budget (10 s)")
    add("--key-ms", type=float, default=70, help="time between keystrokes")
    add("--look-ms", type=float, default=400, help="how long a pause looks at the ghost text")
    add("--react-ms", type=float, default=200, help="from a version appearing to its judgement")
    add("--settle-ms", type=float, default=300, help="from the first answer to typing")
    add("--open-timeout-s", type=float, default=120, help="wait for the first answer this long")
    add("--accept", choices=["lines", "prefix"], default="lines", help="what Tab may write")
    add("--skip", choices=["replay", "cuts"], help="measure only the other one")
    add(
        "--project",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="a multi-file project: its Python files are a row, DIR the workspace (indexed)",
    )
    add(
        "--git",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="like --project, but its cuts are `nearline eval`'s completion cases from the "
        "git history of DIR (lines the commits added, cut at a word)",
    )
    add("--git-commits", type=int, default=40, help="commits read per --git row (default 40)")
    add("--cross-file-chars", type=int, help="completion.cross_file_chars (0: off)")
    add("--ab-cross-file", action="store_true", help="each row without, then with, cross-file")
    add("--quick", action="store_true", help="2 regions of 3 lines and 5 cuts per split")
    add("--json", metavar="FILE", help="write every pause and cut here")
    bench_workspace.add_arguments(parser)
    args = parser.parse_args(argv)
    if args.workspace == "big" and (args.project or args.git or args.ab_cross_file):
        parser.error("--workspace big measures the manifest's files (or --files) in one workspace")
    if args.workspace_files < 1:
        parser.error("--workspace-files must be at least 1")
    args.workspace_root = None  # the big workspace's folder, once it is made
    args.project_roots = []
    args.git_rows = set()
    for option, specs in (("--project", args.project), ("--git", args.git)):
        for spec in specs:
            name, sep, folder = spec.partition("=")
            if not sep or not name or not Path(folder).is_dir():
                parser.error(f"{option} {spec!r}: expected NAME=DIR with an existing DIR")
            args.project_roots.append((name, Path(folder).resolve()))
            if option == "--git":
                args.git_rows.add(name)
    if args.quick:
        args.regions, args.lines, args.cuts = 2, 3, 5
    return args


VARIANTS = (" no-xfile", " xfile")
"""Row-name suffixes of ``--ab-cross-file``: without and with cross-file context."""
INDEX_VARIANTS = {True: " index-on", False: " index-off"}
"""Row-name suffixes of ``--workspace big``: by ``index.enable``."""


def base_name(split: str) -> str:
    """A row's split without its variant: both variants draw the same regions and cuts."""
    for suffix in (*VARIANTS, *INDEX_VARIANTS.values()):
        if split.endswith(suffix):
            return split[: -len(suffix)]
    return split


def row_names(args: argparse.Namespace, sets: dict[str, list[Source]]) -> list[str]:
    """The rows in the order measured (``--workspace big``: each split's index-on row first)."""
    names = [name for group, _, _ in groups_of(args, sets) for name in group]
    if args.workspace_root is None:
        return names
    return sorted(names, key=lambda n: (list(sets).index(base_name(n)), n.endswith(" index-off")))


Group = tuple[dict[str, list[Source]], Path | None, dict[str, Any] | None]
"""Splits measured by one server: their files, the workspace root, settings over the defaults."""


def groups_of(args: argparse.Namespace, sets: dict[str, list[Source]]) -> list[Group]:
    """One group per project (each its own workspace) or one for the manifest's files; with
    ``--ab-cross-file`` each twice, without and with cross-file context, rows named so."""
    if args.workspace_root is not None:
        return index_groups(args, sets)
    roots = dict(args.project_roots)
    plain_sets = {k: v for k, v in sets.items() if k not in roots}
    base: list[tuple[dict[str, list[Source]], Path | None]] = [
        ({name: sets[name]}, root) for name, root in roots.items()
    ]
    if plain_sets:
        base.insert(0, (plain_sets, None))
    chars = args.cross_file_chars
    if not args.ab_cross_file:
        extra = {"completion": {"cross_file_chars": chars}} if chars is not None else None
        return [(group, root, extra) for group, root in base]
    off = ({"completion": {"cross_file_chars": 0}}, VARIANTS[0])
    on = ({"completion": {"cross_file_chars": chars}} if chars is not None else {}, VARIANTS[1])
    out: list[Group] = []
    for i, (group, root) in enumerate(base):
        for extra, suffix in (off, on) if i % 2 == 0 else (on, off):  # alternate the order
            out.append(({k + suffix: v for k, v in group.items()}, root, extra))
    return out


def index_groups(args: argparse.Namespace, sets: dict[str, list[Source]]) -> list[Group]:
    """``--workspace big``: each split with the index on and off, in the big workspace (the
    order alternating between splits)."""
    chars = args.cross_file_chars
    extra = {"completion": {"cross_file_chars": chars}} if chars is not None else None
    out: list[Group] = []
    for i, (split, sources) in enumerate(sets.items()):
        for _, enable in bench_workspace.arm_order(i):
            options = bench_workspace.merge_options(extra, bench_workspace.index_options(enable))
            out.append(({split + INDEX_VARIANTS[enable]: sources}, args.workspace_root, options))
    return out


async def measure(args: argparse.Namespace, sets: dict[str, list[Source]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-quality-") as tmp:
        for phase, runner in (("replay", run_replay), ("cuts", run_cuts)):
            if args.skip == phase:
                continue
            log(
                "replay: typing regions back in"
                if phase == "replay"
                else "cuts: one generous request per cut line"
            )
            for i, (group, root, extra) in enumerate(groups_of(args, sets)):
                workdir = Path(tmp) / f"{phase}{i}"
                workdir.mkdir()
                got = await runner(args, group, workdir, root, extra)
                out[phase] = merge_runs(out.get(phase), got)
    return out


def merge_runs(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """One phase's results over several servers: lists joined, the last server's stats."""
    if old is None:
        return new
    merged = dict(new)
    for key, value in new.items():
        if isinstance(value, list):
            merged[key] = old.get(key, []) + value
    if "cancelled" in new:
        merged["cancelled"] = old.get("cancelled", 0) + new["cancelled"]
    return merged


IDENTIFIER = re.compile(r"[A-Za-z_]\w*")
DEFINED_ELSEWHERE: dict[Path, set[str]] = {}
"""A project file's path -> the top-level names other files of its project define and it
does not (a cut whose rest names one is one cross-file context can help)."""


def note_definitions(root: Path) -> None:
    """Fill ``DEFINED_ELSEWHERE`` for the project at ``root`` (nearline's own index reader)."""
    sys.path.insert(0, str(ROOT / "server"))
    from nearline.index import scan_text

    defined: dict[Path, set[str]] = {}
    for path in sorted(root.rglob("*.py")):
        entry = scan_text(path.name, path.read_text(encoding="utf-8", errors="replace"), "python")
        defined[path] = {s.name for s in entry.symbols if "." not in s.name}  # top-level
    for path, own in defined.items():
        others = set().union(*(names for p, names in defined.items() if p != path))
        DEFINED_ELSEWHERE[path] = others - own


def project_sources(name: str, root: Path, min_code_lines: int = 30) -> list[Source]:
    """A project's Python files (tests left out), each with at least ``min_code_lines``."""
    note_definitions(root)
    found = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).parts
        if any(p in ("tests", "test", "__pycache__") or p.startswith("test_") for p in rel):
            continue
        source = source_of(path, name)
        if len(code_lines(source)) >= min_code_lines:
            found.append(source)
    if not found:
        raise SystemExit(f"--project {name}={root}: no Python file with {min_code_lines} lines")
    return found


def rows_of(args: argparse.Namespace, sets: Iterable[str], out: dict[str, Any]) -> dict[str, Any]:
    rows: dict[str, dict[str, Any]] = {}
    for split in sets:
        row: dict[str, Any] = {}
        if "replay" in out:
            row.update(summarize_replay(split, out["replay"], args.look_ms))
        if "cuts" in out:
            row.update(summarize_cuts(split, out["cuts"]))
        rows[split] = row
    return rows


def write_json(
    path: str, args: argparse.Namespace, rows: dict[str, Any], out: dict[str, Any]
) -> None:
    data = {"args": vars(args), "rows": rows}
    if "replay" in out:
        run = out["replay"]
        data["regions"] = [asdict(r) for r in run["regions"]]
        data["server"] = {k: run[k] for k in ("stats", "errors", "messages", "model", "cancelled")}
    if "cuts" in out:
        data["cuts"] = [asdict(c) for c in out["cuts"]["cuts"]]
    Path(path).write_text(json.dumps(finite(data), indent=1, default=str))


def finite(value: Any) -> Any:
    """Strict JSON: NaN (no data) becomes null, infinity (later than the look) "inf"."""
    if isinstance(value, float) and not math.isfinite(value):
        return None if value != value else "inf"
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.workspace == "small":
        return run_main(args)
    with tempfile.TemporaryDirectory(prefix="nearline-bench-big-") as tmp:
        workspace = bench_workspace.build_workspace(Path(tmp) / "workspace", args.workspace_files)
        args.workspace_root = workspace.root
        print(f"workspace: {workspace.describe()}; measured files in {BIG_FOLDER}/", flush=True)
        return run_main(args)


def run_main(args: argparse.Namespace) -> int:
    sets = file_sets(args)
    t0 = time.perf_counter()
    out = asyncio.run(measure(args, sets))
    rows = rows_of(args, row_names(args, sets), out)
    model = out.get("replay", out.get("cuts", {})).get("model")
    template = out.get("replay", {}).get("stats", {}).get("template")
    print(table(label_of(args, model, template), rows))
    for line in details(rows):
        print(line)
    for phase in ("replay", "cuts"):
        for err in out.get(phase, {}).get("errors", [])[:5]:
            print(f"{phase} error: {err}")
    if "replay" in out:
        stats = out["replay"]["stats"]
        keys = ("requests", "model_calls", "typed_through", "cache_hits", "cancelled")
        counts = ", ".join(
            f"{k} {stats[k]}" for k in (*keys, "budget_hits", "accepted") if k in stats
        )
        print(f"replay server (nearline/stats): {counts}")
    print(f"took {time.perf_counter() - t0:.0f} s")
    if args.json:
        write_json(args.json, args, rows, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
