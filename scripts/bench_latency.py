#!/usr/bin/env python3
"""Latency benchmark: replay a person typing through ``nearline serve`` over stdio.

Like an editor, it sends didChange and an inline-completion request on every keystroke and
``$/cancelRequest`` for the request still pending; Enter inserts the newline with the next
line's indentation. It pauses at the end of words and lines and measures, at each pause, the
time from the last keystroke to the answer. Then, in the same run:
- baseline: one fresh ``create_completion`` per pause on the same prompt, no reuse;
- floor: the engine alone evaluating the same new tokens and generating the same output.

``--workspace big``: the server's workspace root is a temporary copy of the standard library
and site-packages, ``--workspace-files`` (10,000) real source files (``bench_workspace.py`` says
which), with the typed file (``--file``) copied to its top (its imports, the standard
library's, are the workspace's modules). Each of ``--rounds`` turns runs two arms, the project
index on and ``index.enable = false`` (the order alternating: on/off, off/on, ...), each arm
with a fresh NEARLINE_CACHE_DIR, and prints per arm (no baseline or floor):
- pause latency p50/p95, as above (typing once the model is loaded and the index built);
- first suggestion after a restart: a server opens the typed file, asks at line 61, waits
  ``--settle`` s for the warm-up and shuts down; a new one on the same cache folder opens it
  and asks there: that first answer's latency;
- first suggestion after a 1.5 s rest, in a file never opened before: open it, the cursor at
  the end of a code line; ``nearline/cursorRest`` there 0.2 s later (the editor clients'
  debounce); 1.5 s after the rest began, type a space there and ask: that answer's latency;
- full window after a rest, in another never-opened file: open it, ``nearline/cursorRest``
  0.2 s later, nothing else; ``nearline/stats``' ``last_rest.full_ms`` (the notification's
  arrival to the full window evaluated), polled for up to 10 s, plus the 200 ms debounce
  ("n/a": the server reports no ``last_rest``).

    .venv/bin/python scripts/bench_latency.py [--file F --start-line N --lines K]
    .venv/bin/python scripts/bench_latency.py --workspace big [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pygls.lsp.client import LanguageClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "server"))
sys.path.insert(0, str(ROOT / "tests"))
from bench_workspace import (  # noqa: E402  (the big workspace, shared with bench_quality)
    ARMS,
    Workspace,
    add_arguments,
    arm_order,
    build_workspace,
    index_options,
    merge_options,
)
from support.lsp_client import inline_params, plain  # noqa: E402  (the tests' client helpers)

DEFAULT_FILE = ROOT / "scripts" / "bench_data" / "replay_source.py"
CURSOR_REST = "nearline/cursorRest"


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def keystrokes(region: list[str]) -> list[tuple[str, str]]:
    """(text inserted, pause after it: "" | "word" | "line"). Enter carries the next line's
    indentation, as editors auto-indent; the line pause comes after it, where the next line
    starts (the last line pauses at its end)."""
    keys: list[tuple[str, str]] = []
    for i, line in enumerate(region):
        body = line.rstrip("\n")
        indent = len(body) - len(body.lstrip())
        if i == 0 and indent:
            keys.append((body[:indent], ""))
        for j in range(indent, len(body)):
            ch = body[j]
            nxt = body[j + 1] if j + 1 < len(body) else "\n"
            word_end = (ch.isalnum() or ch == "_") and not (nxt.isalnum() or nxt == "_")
            keys.append((ch, "word" if word_end and nxt != "\n" else ""))
        if i + 1 < len(region):
            following = region[i + 1].rstrip("\n")
            keys.append(("\n" + following[: len(following) - len(following.lstrip())], "line"))
        elif keys:
            keys[-1] = (keys[-1][0], "line")
    return keys


def server_command(args: argparse.Namespace) -> list[str]:
    command = [sys.executable, "-m", "nearline", "serve"]
    if args.model:
        command += ["--model", args.model]
    if args.template:
        command += ["--template", args.template]
    return command


class Replay:
    def __init__(self, client: LanguageClient, uri: str, lines: list[str], line: int) -> None:
        self.client = client
        self.uri = uri
        self.lines = lines  # the document as it is now
        self.line = line
        self.character = 0
        self.version = 1
        self.pending: tuple[str, Any] | None = None
        self.errors: list[str] = []
        self.cancelled = 0

    def _send_change(self, text: str) -> None:
        self.version += 1
        pos = types.Position(line=self.line, character=self.character)
        self.client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(
                    uri=self.uri, version=self.version
                ),
                content_changes=[
                    types.TextDocumentContentChangePartial(
                        range=types.Range(start=pos, end=pos), text=text
                    )
                ],
            )
        )
        cur = self.lines[self.line]
        before, after = cur[: self.character], cur[self.character :]
        if "\n" in text:
            head, tail = text.split("\n", 1)
            self.lines[self.line : self.line + 1] = [before + head + "\n", tail + after]
            self.line += 1
            self.character = len(tail)
        else:
            self.lines[self.line] = before + text + after
            self.character += len(text)

    def key(self, text: str) -> tuple[float, asyncio.Future[Any], str]:
        if self.pending is not None and not self.pending[1].done():
            cancel = types.CancelParams(id=self.pending[0])
            self.client.protocol.notify(types.CANCEL_REQUEST, cancel)
        t_key = time.perf_counter()
        self._send_change(text)
        msg_id = f"r{self.version}"
        params = inline_params(self.uri, self.line, self.character)
        fut = asyncio.wrap_future(
            self.client.protocol.send_request(
                types.TEXT_DOCUMENT_INLINE_COMPLETION, params, msg_id=msg_id
            )
        )
        fut.add_done_callback(self._check)
        self.pending = (msg_id, fut)
        return t_key, fut, msg_id

    def _check(self, fut: asyncio.Future[Any]) -> None:
        if fut.cancelled():
            return
        exc = fut.exception()
        if exc is None:
            return
        if isinstance(exc, JsonRpcException) and exc.code == -32800:  # RequestCancelled
            self.cancelled += 1
        else:
            self.errors.append(repr(exc))


async def run_replay(
    args: argparse.Namespace,
    env: dict[str, str],
    root: Path | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Type the region back in. With ``root`` (the big workspace) the server has that
    workspace and ``extra``'s settings, and typing starts once its model and index are ready."""
    source = Path(args.file).read_text().splitlines(keepends=True)
    start = args.start_line - 1
    region = source[start : start + args.lines]
    doc_lines = source[:start] + ["\n"] + source[start + args.lines :]
    uri = Path(args.file).resolve().as_uri()
    rng = random.Random(args.seed)

    client = LanguageClient("bench", "0")
    for method in ("nearline/status", "nearline/completionReady", types.WINDOW_LOG_MESSAGE):
        client.feature(method)(lambda *_args: None)
    await client.start_io(*server_command(args), env=env)
    budget = {"completion": {"time_budget_ms": args.budget_ms}} if args.budget_ms else None
    await client.initialize_async(
        types.InitializeParams(
            capabilities=types.ClientCapabilities(),
            process_id=os.getpid(),
            initialization_options=merge_options(budget, extra) or None,
            root_uri=root.resolve().as_uri() if root else None,
        )
    )
    t_start = time.perf_counter()
    client.initialized(types.InitializedParams())
    if root is not None:
        await wait_settled(client, index=not args.type_while_indexing)
        t_start = time.perf_counter()
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=uri, language_id="python", version=1, text="".join(doc_lines)
            )
        )
    )
    replay = Replay(client, uri, doc_lines, start)

    # First suggestion after `initialized` on a fresh server (model load + cold prompt), at
    # the start of the region after its indentation: ask until one is shown, every 50 ms, for
    # up to 60 s (a code model's cold window takes seconds on a 2-core CPU).
    keys = keystrokes(region)
    first_key = keys.pop(0)[0] if keys and not keys[0][0].strip() else ""
    first_ms = float("nan")
    attempt = 0
    while time.perf_counter() - t_start < 60:
        _, fut, _ = replay.key(first_key if attempt == 0 else "")
        attempt += 1
        result = await fut
        if getattr(result, "items", None):
            first_ms = (time.perf_counter() - t_start) * 1000
            break
        await asyncio.sleep(0.05)

    pauses: list[dict[str, Any]] = []
    for text, pause in keys:
        t_key, fut, msg_id = replay.key(text)
        if pause:
            try:
                result = await asyncio.wait_for(fut, timeout=10)
                latency = (time.perf_counter() - t_key) * 1000
                items = result.items if hasattr(result, "items") else result or []
                shown = items[0].insert_text if items else ""
            except Exception as exc:  # counted in replay.errors by the callback
                latency, shown = float("nan"), ""
                if isinstance(exc, asyncio.TimeoutError):
                    replay.errors.append(f"timeout at {msg_id}")
            pauses.append(
                {
                    "id": msg_id,
                    "kind": pause,
                    "latency_ms": latency,
                    "shown": shown,
                    "prefix": "".join(replay.lines)[:0],
                    "line": replay.line,
                    "character": replay.character,
                    "document": "".join(replay.lines),
                }
            )
            await asyncio.sleep(
                (args.word_pause if pause == "word" else args.line_pause) * rng.uniform(0.8, 1.2)
            )
        else:
            await asyncio.sleep(args.key_interval * rng.uniform(0.6, 1.4))
    if replay.pending is not None:
        with contextlib.suppress(Exception):
            await replay.pending[1]
    stats = await client.protocol.send_request_async("nearline/stats", None)
    rss = _rss_of(client)
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()
    records = {r["id"]: r for r in plain(stats)["recent"]}
    for p in pauses:
        p["server"] = records.get(p["id"], {})
    return {
        "pauses": pauses,
        "errors": replay.errors,
        "first_ms": first_ms,
        "stats": {k: v for k, v in plain(stats).items() if k != "recent"},
        "rss_mb": rss,
    }


SWITCH_FILES = (
    ROOT / "scripts" / "bench_data" / "replay_source.py",
    Path(json.__file__).with_name("encoder.py"),
)
"""Two files open side by side for the switching scenario (the second from the standard
library)."""


async def wait_settled(
    client: LanguageClient, timeout_s: float = 600, *, index: bool = True
) -> None:
    """Until ``nearline/stats`` says the model is loaded and the project index (when there is
    one) is built."""
    give_up = time.perf_counter() + timeout_s
    while time.perf_counter() < give_up:
        stats = plain(await client.protocol.send_request_async("nearline/stats", None))
        built = (stats.get("index") or {"ready": True}).get("ready")
        if stats.get("loaded") and (built or not index):
            return
        await asyncio.sleep(0.1)
    raise SystemExit(f"the server's model and index were not ready in {timeout_s:.0f} s")


class Session:
    """One server, the files it has open, and a client that asks at a place after typing a
    character there (so the completion cache does not answer: the engine does)."""

    def __init__(
        self,
        args: argparse.Namespace,
        env: dict[str, str],
        root: Path | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.args = args
        self.env = env
        self.root = root
        self.extra = extra
        """The workspace folder and settings over the defaults (the big workspace's arms)."""
        self.client = LanguageClient("bench-files", "0")
        for method in ("nearline/status", "nearline/completionReady", types.WINDOW_LOG_MESSAGE):
            self.client.feature(method)(lambda *_args: None)
        self.versions: dict[str, int] = {}
        self.lines: dict[str, list[str]] = {}

    async def start(self) -> float:
        """Start the server; the seconds until its model is loaded."""
        await self.client.start_io(*server_command(self.args), env=self.env)
        options = {"completion": {"time_budget_ms": self.args.budget_ms or 50}}
        await self.client.initialize_async(
            types.InitializeParams(
                capabilities=types.ClientCapabilities(),
                process_id=os.getpid(),
                initialization_options=merge_options(options, self.extra),
                root_uri=self.root.resolve().as_uri() if self.root else None,
            )
        )
        t0 = time.perf_counter()
        self.client.initialized(types.InitializedParams())
        while not plain(await self.client.protocol.send_request_async("nearline/stats", None)).get(
            "loaded"
        ):
            await asyncio.sleep(0.05)
        return time.perf_counter() - t0

    def open(self, path: Path) -> str:
        uri = path.resolve().as_uri()
        text = path.read_text()
        self.versions[uri] = 1
        self.lines[uri] = text.splitlines(keepends=True)
        self.client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(
                    uri=uri, language_id="python", version=1, text=text
                )
            )
        )
        return uri

    def close(self, uri: str) -> None:
        self.client.text_document_did_close(
            types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
        )

    async def ask(self, uri: str, line: int) -> float:
        """Type a space at the end of ``line`` and ask there; the ms until the answer."""
        character = len(self.lines[uri][line].rstrip("\n"))
        self.lines[uri][line] = self.lines[uri][line].rstrip("\n") + " \n"
        self.versions[uri] += 1
        pos = types.Position(line=line, character=character)
        t0 = time.perf_counter()
        self.client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(
                    uri=uri, version=self.versions[uri]
                ),
                content_changes=[
                    types.TextDocumentContentChangePartial(
                        range=types.Range(start=pos, end=pos), text=" "
                    )
                ],
            )
        )
        await self.client.text_document_inline_completion_async(
            inline_params(uri, line, character + 1)
        )
        return (time.perf_counter() - t0) * 1000

    async def engine_counters(self) -> dict[str, Any]:
        return dict((await self.stats()).get("engine") or {})

    async def stats(self) -> dict[str, Any]:
        return dict(plain(await self.client.protocol.send_request_async("nearline/stats", None)))

    def rest(self, uri: str, line: int) -> None:
        """``nearline/cursorRest`` at the end of ``line``, as the editor clients send it."""
        character = len(self.lines[uri][line].rstrip("\n"))
        params = {"textDocument": {"uri": uri}, "position": {"line": line, "character": character}}
        self.client.protocol.notify(CURSOR_REST, params)

    async def stop(self) -> None:
        await self.client.shutdown_async(None)
        self.client.exit(None)
        await self.client.stop()


async def run_files(args: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    """Two files open: switching between them (each keeps its evaluated window), closing and
    reopening one, and restarting the server (windows kept on disk)."""
    a_path, b_path = SWITCH_FILES
    a_line, b_line = 60, 40
    first = Session(args, env)
    load_s = await first.start()
    a, b = first.open(a_path), first.open(b_path)
    await asyncio.sleep(args.settle)  # the warm-ups on open
    await first.ask(a, a_line)
    await first.ask(b, b_line)  # each document has been worked on once
    switches = []
    for _ in range(4):
        await asyncio.sleep(0.5)
        switches.append(await first.ask(a, a_line))
        await asyncio.sleep(0.5)
        switches.append(await first.ask(b, b_line))
    first.close(a)
    await asyncio.sleep(0.5)
    a = first.open(a_path)
    reopen = await first.ask(a, a_line)
    counters = await first.engine_counters()
    await first.stop()
    second = Session(args, env)
    restart_load_s = await second.start()
    a = second.open(a_path)
    restart = await second.ask(a, a_line)
    restart_counters = await second.engine_counters()
    await second.stop()
    return {
        "model_load_s": load_s,
        "switch_ms": switches,
        "reopen_ms": reopen,
        "restart_ms": restart,
        "restart_model_load_s": restart_load_s,
        "engine": counters,
        "engine_after_restart": restart_counters,
    }


# -- --workspace big: the project index on and off ------------------------------------------

RESTART_LINE = 60
"""The typed file's line (0-based) asked at before and after a restart (as ``--files``)."""
REST_FILES = ("stdlib/json/encoder.py", "stdlib/textwrap.py")
"""Files never opened before, for the rests (the first two of these found, else any two)."""
REST_NEAR_LINE = 60
REST_DEBOUNCE_S = 0.2
"""The editor clients send ``nearline/cursorRest`` this long after the cursor stops."""
REST_S = 1.5
"""How long the cursor rests before the person types."""
FULL_WAIT_S = 10.0


def bench_env(folder: Path) -> dict[str, str]:
    """The server's environment: its cache, data and config in ``folder`` (fresh per arm)."""
    env = dict(
        os.environ,
        NEARLINE_CACHE_DIR=f"{folder}/cache",
        NEARLINE_DATA_DIR=f"{folder}/data",
        NEARLINE_CONFIG=f"{folder}/none.toml",
    )
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "server"), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    return env


def rest_files(workspace: Workspace, typed: Path) -> list[Path]:
    """Two files of the workspace never opened (``REST_FILES``, else the first long ones)."""
    found = [workspace.root / rel for rel in REST_FILES if (workspace.root / rel).is_file()]
    for path in sorted(workspace.root.rglob("*.py")):
        if len(found) >= 2:
            break
        if path not in found and path != typed and rest_line(path) is not None:
            found.append(path)
    return found[:2]


def rest_line(path: Path) -> int | None:
    """The first code line (0-based) from ``REST_NEAR_LINE`` on: not blank, not a comment,
    ASCII (so a column is the same in every encoding)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    for i in range(min(REST_NEAR_LINE, len(lines)), len(lines)):
        body = lines[i].strip()
        if body and not body.startswith("#") and lines[i].isascii():
            return i
    return None


async def first_after_rest(session: Session, path: Path) -> float:
    """Open ``path``; ``nearline/cursorRest`` 0.2 s into the rest; at 1.5 s type a space there
    and ask: the ms until the answer."""
    line = rest_line(path)
    assert line is not None
    uri = session.open(path)
    t_rest = time.perf_counter()
    await asyncio.sleep(REST_DEBOUNCE_S)
    session.rest(uri, line)
    await asyncio.sleep(max(0.0, t_rest + REST_S - time.perf_counter()))
    return await session.ask(uri, line)


def full_ms_of(last: Any, before: Any, uri: str) -> float | None:
    """``last_rest.full_ms`` when ``last`` is this rest's report (not ``before``, and for
    ``uri`` when it names one) and the full window is done; else None."""
    if not isinstance(last, dict) or last == before:
        return None
    named = last.get("uri") or (last.get("textDocument") or {}).get("uri")
    if named and named != uri:
        return None
    full = last.get("full_ms")
    return float(full) if isinstance(full, (int, float)) else None


async def full_window_after_rest(session: Session, path: Path) -> dict[str, Any]:
    """Open ``path``, rest there (the notification 0.2 s in), nothing else; poll
    ``last_rest.full_ms`` for up to 10 s: ``{"ms": full_ms + 200 or None, "reported": whether
    the server has ``last_rest`` at all, "last_rest": its last value}``."""
    line = rest_line(path)
    assert line is not None
    before = (await session.stats()).get("last_rest")
    uri = session.open(path)
    await asyncio.sleep(REST_DEBOUNCE_S)
    session.rest(uri, line)
    give_up = time.perf_counter() + FULL_WAIT_S
    reported, last = False, None
    while time.perf_counter() < give_up:
        stats = await session.stats()
        reported, last = reported or "last_rest" in stats, stats.get("last_rest")
        full = full_ms_of(last, before, uri)
        if full is not None:
            return {"ms": full + REST_DEBOUNCE_S * 1000, "reported": True, "last_rest": last}
        await asyncio.sleep(0.05)
    return {"ms": None, "reported": reported, "last_rest": last}


async def run_rests(
    args: argparse.Namespace, env: dict[str, str], workspace: Workspace, typed: Path, extra: Any
) -> dict[str, Any]:
    """(a) the first suggestion after a restart, (b) after a rest in a new file, (c) the full
    window after a rest in another new file; each server with ``extra``'s settings."""
    first = Session(args, env, workspace.root, extra)
    await first.start()
    await wait_settled(first.client)
    uri = first.open(typed)
    await first.ask(uri, RESTART_LINE)
    await asyncio.sleep(args.settle)  # the warm-up
    await first.stop()
    second = Session(args, env, workspace.root, extra)
    await second.start()
    restart = await second.ask(second.open(typed), RESTART_LINE)
    await wait_settled(second.client)
    b_path, c_path = rest_files(workspace, typed)
    rested = await first_after_rest(second, b_path)
    await asyncio.sleep(args.settle)
    full = await full_window_after_rest(second, c_path)
    index = (await second.stats()).get("index")
    await second.stop()
    return {"restart_ms": restart, "rest_first_ms": rested, "rest_full": full, "index": index}


async def run_arm(
    args: argparse.Namespace, folder: Path, workspace: Workspace, typed: Path, enable: bool
) -> dict[str, Any]:
    """One arm: the replay, then the restart and the rests, on one fresh cache folder."""
    env, extra = bench_env(folder), index_options(enable)
    replay_args = argparse.Namespace(**{**vars(args), "file": str(typed)})
    replay = await run_replay(replay_args, env, workspace.root, extra)
    return {"replay": replay, **await run_rests(args, env, workspace, typed, extra)}


def run_big(args: argparse.Namespace) -> dict[str, Any]:
    """Copy the workspace once; each turn runs both arms, the order alternating."""
    with tempfile.TemporaryDirectory(prefix="nearline-bench-big-") as tmp:
        workspace = build_workspace(Path(tmp) / "workspace", args.workspace_files)
        typed = workspace.add(Path(args.file), Path(args.file).name)
        print(f"workspace: {workspace.describe()}; typed: {typed.name}", flush=True)
        arms: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in ARMS}
        for turn in range(args.rounds):
            for name, enable in arm_order(turn):
                print(f"round {turn + 1}: {name}", file=sys.stderr, flush=True)
                folder = Path(tmp) / f"arm{turn}-{int(enable)}"
                arms[name].append(asyncio.run(run_arm(args, folder, workspace, typed, enable)))
        return {"workspace": workspace.describe(), "arms": arms}


def summarize_arm(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """An arm's turns: pauses pooled; the other measures' medians."""
    lat = [
        p["latency_ms"]
        for run in runs
        for p in run["replay"]["pauses"]
        if p["latency_ms"] == p["latency_ms"]
    ]
    full = [r["rest_full"]["ms"] for r in runs if r["rest_full"]["ms"] is not None]
    return {
        "pauses": len(lat),
        "p50_ms": percentile(lat, 0.5),
        "p95_ms": percentile(lat, 0.95),
        "first_open_ms": percentile([r["replay"]["first_ms"] for r in runs], 0.5),
        "restart_ms": percentile([r["restart_ms"] for r in runs], 0.5),
        "rest_first_ms": percentile([r["rest_first_ms"] for r in runs], 0.5),
        "rest_full_ms": percentile(full, 0.5) if full else None,
        "rest_reported": any(r["rest_full"]["reported"] for r in runs),
        "rss_mb": percentile([r["replay"]["rss_mb"] for r in runs], 0.5),
        "indexed_files": (runs[-1].get("index") or {}).get("files"),
        "errors": sum(len(r["replay"]["errors"]) for r in runs),
    }


def big_rows(arms: dict[str, dict[str, Any]]) -> list[str]:
    """The A/B table: a row per measure, a column per arm."""

    def cell(value: Any, unit: str = " ms", fmt: str = ".0f") -> str:
        if value is None or value != value:
            return "-"
        return f"{value:{fmt}}{unit}"

    def full(s: dict[str, Any]) -> str:
        if s["rest_full_ms"] is not None:
            return cell(s["rest_full_ms"])
        return "not done in 10 s" if s["rest_reported"] else "n/a"

    def first(s: dict[str, Any]) -> str:
        return (
            "none in 60 s" if s["first_open_ms"] != s["first_open_ms"] else cell(s["first_open_ms"])
        )

    measures = [
        ("pause latency p50", lambda s: cell(s["p50_ms"], fmt=".1f")),
        ("pause latency p95", lambda s: cell(s["p95_ms"], fmt=".1f")),
        ("first suggestion after a restart", lambda s: cell(s["restart_ms"])),
        ("first suggestion after a 1.5 s rest, new file", lambda s: cell(s["rest_first_ms"])),
        ("full window after a rest (+200 ms debounce)", full),
        ("first suggestion after opening the typed file", first),
        ("server RSS after the replay", lambda s: cell(s["rss_mb"], " MB")),
        ("files in the index", lambda s: cell(s["indexed_files"], "", "")),
        ("pauses / errors", lambda s: f"{s['pauses']} / {s['errors']}"),
    ]
    names = list(arms)
    rows = [f"{'':48}" + "".join(f"{n:>18}" for n in names)]
    for label, show in measures:
        rows.append(f"{label:48}" + "".join(f"{show(arms[n]):>18}" for n in names))
    return rows


def main_big(args: argparse.Namespace) -> int:
    big = run_big(args)
    arms = {name: summarize_arm(runs) for name, runs in big["arms"].items()}
    if args.json:
        data = {"workspace": big["workspace"], "summary": arms, "arms": big["arms"]}
        Path(args.json).write_text(json.dumps(data, indent=1, default=str))
    print(
        f"replayed {args.lines} lines of {Path(args.file).name} from line {args.start_line} "
        f"in the big workspace, {args.rounds} round(s) of both arms, the order alternating"
    )
    for row in big_rows(arms):
        print(row)
    for name, runs in big["arms"].items():
        for err in [e for r in runs for e in r["replay"]["errors"]][:5]:
            print(f"{name} error: {err}")
    return 0


def _rss_of(client: LanguageClient) -> float:
    proc = getattr(client, "_server", None)
    if proc is None:
        return float("nan")
    try:
        for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def engine_measures(pauses: list[dict[str, Any]], args: argparse.Namespace) -> None:
    """Baseline and floor, measured in this process after the server has stopped."""
    import ctypes

    import numpy as np
    from llama_cpp import Llama

    from nearline.catalog import resolve_model_path
    from nearline.completion.context import build_context
    from nearline.completion.engine.templates import detect_template, get_template
    from nearline.completion.service import build_prompt
    from nearline.config import ModelSettings, Settings

    settings = Settings()
    threads = ModelSettings().threads
    path = Path(args.model) if args.model else resolve_model_path(settings.model)
    llm = Llama(
        model_path=str(path),
        n_ctx=settings.model.n_ctx,
        n_batch=settings.model.n_batch,
        n_threads=threads,
        n_threads_batch=threads,
        flash_attn=settings.model.flash_attn,
        verbose=False,
    )
    n_vocab = llm.n_vocab()
    if args.template and args.template != "auto":
        template = get_template(args.template)
    else:
        names = [llm.metadata.get("general.name", ""), path.name]
        template = detect_template(
            names, lambda m: len(llm.tokenize(m.encode(), special=True, add_bos=False)) == 1
        )
    anchor = None
    for p in pauses:
        lines = p["document"].splitlines(keepends=True)
        ctx = build_context(
            lines,
            p["line"],
            p["character"],
            previous_anchor=anchor,
            max_prefix_chars=settings.completion.max_prefix_chars,
            max_suffix_chars=settings.completion.max_suffix_chars,
        )
        anchor = ctx.anchor
        prompt = build_prompt(template, ctx, Path(args.file).name)
        tokens = llm.tokenize(prompt.encode(), add_bos=True, special=True)
        # Baseline: no reuse, a fresh completion on the same prompt.
        llm.reset()
        t0 = time.perf_counter()
        llm.create_completion(
            tokens, max_tokens=settings.completion.max_line_tokens, temperature=0.0, stop=["\n"]
        )
        p["baseline_ms"] = (time.perf_counter() - t0) * 1000
        # Floor: the same new tokens and output, with the rest already in the KV cache.
        server = p["server"]
        if server.get("source") != "model":
            continue
        new = max(1, server.get("evaluated_tokens", 1))
        keep = max(0, len(tokens) - new)
        llm.reset()
        llm.eval(tokens[:keep]) if keep else None
        t0 = time.perf_counter()
        for i in range(keep, len(tokens), settings.model.n_batch):
            llm.eval(tokens[i : i + settings.model.n_batch])
        # N output tokens need N argmaxes but only N - 1 decodes: the last token is not
        # evaluated until something follows it.
        generated = server.get("generated_tokens", 0)
        for i in range(generated):
            logits = np.ctypeslib.as_array(
                ctypes.cast(llm._ctx.get_logits_ith(-1), ctypes.POINTER(ctypes.c_float)),
                shape=(n_vocab,),
            )
            token = int(np.argmax(logits))
            if i < generated - 1:
                llm.eval([token])
        p["floor_ms"] = (time.perf_counter() - t0) * 1000


def summarize(run: dict[str, Any]) -> dict[str, Any]:
    pauses = run["pauses"]
    lat = [p["latency_ms"] for p in pauses if p["latency_ms"] == p["latency_ms"]]
    sources: dict[str, int] = {}
    for p in pauses:
        src = p["server"].get("source", "?")
        sources[src] = sources.get(src, 0) + 1
    model = [p for p in pauses if p["server"].get("source") == "model" and "floor_ms" in p]
    overhead = [p["latency_ms"] - p["floor_ms"] for p in model]
    base = [p["baseline_ms"] for p in pauses if "baseline_ms" in p]
    floor = [p["floor_ms"] for p in model]
    return {
        "pauses": len(pauses),
        "p50_ms": percentile(lat, 0.5),
        "p95_ms": percentile(lat, 0.95),
        "p99_ms": percentile(lat, 0.99),
        "max_ms": max(lat) if lat else float("nan"),
        "over_1s": sum(1 for x in lat if x > 1000),
        "sources": sources,
        "errors": len(run["errors"]),
        "baseline_p50_ms": percentile(base, 0.5),
        "baseline_p95_ms": percentile(base, 0.95),
        "floor_p50_ms": percentile(floor, 0.5),
        "floor_p95_ms": percentile(floor, 0.95),
        "overhead_p50_ms": percentile(overhead, 0.5),
        "first_suggestion_ms": run["first_ms"],
        "server_rss_mb": run["rss_mb"],
        "budget_hits": run["stats"].get("budget_hits"),
        "model_calls": run["stats"].get("model_calls"),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--file", default=str(DEFAULT_FILE))
    parser.add_argument("--start-line", type=int, default=54)
    parser.add_argument("--lines", type=int, default=10)
    parser.add_argument("--key-interval", type=float, default=0.08, help="seconds per key")
    parser.add_argument("--word-pause", type=float, default=0.5)
    parser.add_argument("--line-pause", type=float, default=1.2)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--budget-ms", type=int, help="completion.time_budget_ms for the server")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--json", metavar="FILE", help="write every pause here")
    parser.add_argument("--model", help="a GGUF for the server (default: what it resolves)")
    parser.add_argument("--template", help="model.template for the server")
    parser.add_argument(
        "--files",
        action="store_true",
        help="also: switching between two open files, reopening one, restarting the server",
    )
    parser.add_argument(
        "--settle", type=float, default=8.0, help="--files, --workspace big: wait after opening"
    )
    add_arguments(parser)
    parser.add_argument(
        "--rounds", type=int, default=1, help="--workspace big: turns of both arms (default 1)"
    )
    parser.add_argument(
        "--type-while-indexing",
        action="store_true",
        help="--workspace big: start typing once the model is loaded, while the first build of "
        "the index runs (default: once the index is built too)",
    )
    parser.add_argument(
        "--team-ab",
        action="store_true",
        help="pause latency with the team ledger's sync on and off (a real PostgreSQL; "
        "scripts/latency_team.py), --rounds turns",
    )
    parser.add_argument(
        "--team-backlog", type=int, default=20_000, help="--team-ab: rows waiting at start"
    )
    args = parser.parse_args(argv)
    if args.workspace == "big" and args.files:
        parser.error("--files measures the small workspace; leave it out with --workspace big")
    if args.rounds < 1 or args.workspace_files < 1:
        parser.error("--rounds and --workspace-files must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.workspace == "big":
        return main_big(args)
    if args.team_ab:
        from latency_team import main_team

        return main_team(args)

    with tempfile.TemporaryDirectory() as tmp:
        env = bench_env(Path(tmp))
        run = asyncio.run(run_replay(args, env))
        files = asyncio.run(run_files(args, env)) if args.files else None
    if not args.no_baseline:
        engine_measures(run["pauses"], args)
    summary = summarize(run)
    if files is not None:
        summary["files"] = files
    if args.json:
        Path(args.json).write_text(
            json.dumps({"summary": summary, "run": run}, indent=1, default=str)
        )
    s = summary
    print(
        f"replayed {args.lines} lines of {Path(args.file).name} from line {args.start_line}: "
        f"{s['pauses']} pauses"
    )
    print(
        f"nearline  pause latency  p50 {s['p50_ms']:7.1f} ms  p95 {s['p95_ms']:7.1f} ms  "
        f"p99 {s['p99_ms']:7.1f} ms  max {s['max_ms']:7.1f} ms  over 1 s: {s['over_1s']}"
    )
    print(
        f"          served by: {s['sources']}  errors: {s['errors']}  "
        f"budget hits: {s['budget_hits']}"
    )
    if not args.no_baseline:
        print(
            f"baseline  fresh create_completion per pause  p50 {s['baseline_p50_ms']:7.1f} ms"
            f"  p95 {s['baseline_p95_ms']:7.1f} ms"
        )
        print(
            f"floor     engine alone, same new tokens + output  p50 {s['floor_p50_ms']:7.1f} ms"
            f"  p95 {s['floor_p95_ms']:7.1f} ms"
        )
        print(
            f"overhead  above the floor (model-served pauses)  p50 {s['overhead_p50_ms']:7.1f} ms"
        )
    print(
        f"first suggestion after initialized: {s['first_suggestion_ms']:.0f} ms; "
        f"server RSS {s['server_rss_mb']:.0f} MB"
    )
    if files is not None:
        sw = files["switch_ms"]
        print(
            f"files     switching between two open files  p50 {percentile(sw, 0.5):.0f} ms  "
            f"max {max(sw):.0f} ms; reopening one {files['reopen_ms']:.0f} ms; "
            f"after a restart {files['restart_ms']:.0f} ms (model loaded in "
            f"{files['restart_model_load_s']:.1f} s first)"
        )
        after = files["engine_after_restart"]
        print(f"          engine: {files['engine']}; after the restart: {after}")
    for err in run["errors"][:5]:
        print("error:", err)
    return 0


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    raise SystemExit(main())
