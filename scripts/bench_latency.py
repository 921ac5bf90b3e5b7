#!/usr/bin/env python3
"""Latency benchmark: replay a person typing through ``nearline serve`` over stdio.

Like an editor, it sends didChange and an inline-completion request on every keystroke and
``$/cancelRequest`` for the request still pending; Enter inserts the newline with the next
line's indentation. It pauses at the end of words and lines and measures, at each pause, the
time from the last keystroke to the answer. Then, in the same run:
- baseline: one fresh ``create_completion`` per pause on the same prompt, no reuse;
- floor: the engine alone evaluating the same new tokens and generating the same output.

    .venv/bin/python scripts/bench_latency.py [--file F --start-line N --lines K]
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
from support.lsp_client import inline_params, plain  # noqa: E402  (the tests' client helpers)

DEFAULT_FILE = ROOT / "scripts" / "bench_data" / "replay_source.py"


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


async def run_replay(args: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
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
    options = {"completion": {"time_budget_ms": args.budget_ms}} if args.budget_ms else None
    await client.initialize_async(
        types.InitializeParams(
            capabilities=types.ClientCapabilities(),
            process_id=os.getpid(),
            initialization_options=options,
        )
    )
    t_start = time.perf_counter()
    client.initialized(types.InitializedParams())
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


class Session:
    """One server, the files it has open, and a client that asks at a place after typing a
    character there (so the completion cache does not answer: the engine does)."""

    def __init__(self, args: argparse.Namespace, env: dict[str, str]) -> None:
        self.args = args
        self.env = env
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
                initialization_options=options,
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
        stats = plain(await self.client.protocol.send_request_async("nearline/stats", None))
        return dict(stats.get("engine") or {})

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


def main() -> int:
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
    parser.add_argument("--settle", type=float, default=8.0, help="--files: wait after opening")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        env = dict(
            os.environ,
            NEARLINE_CACHE_DIR=f"{tmp}/cache",
            NEARLINE_DATA_DIR=f"{tmp}/data",
            NEARLINE_CONFIG=f"{tmp}/none.toml",
        )
        env["PYTHONPATH"] = os.pathsep.join(
            [str(ROOT / "server"), *filter(None, [os.environ.get("PYTHONPATH")])]
        )
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
