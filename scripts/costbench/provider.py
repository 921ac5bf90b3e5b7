"""The simulated provider: nearline's one fake server (``tests/support``), answering like a
cloud model: OpenAI's chat completions (``POST /v1/chat/completions``) and Anthropic's Messages
API (``POST /v1/messages``, SSE events as Anthropic streams them). It counts tokens like the
embedded model's tokenizer, caches prompt prefixes as each provider bills them
(``costbench.caching``), and answers with text of a plausible length (a diff that applies for
a change). It runs in its own process; ``llama_server`` is the real alternative."""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import re
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx

from costbench import ROOT
from costbench.anthropic import anthropic_events, anthropic_messages, pieces_of
from costbench.caching import Billed, Block, PromptCache
from costbench.workload import NOUNS
from nearline.catalog import default_model_path
from nearline.tasks import TASKS
from support.fake_provider import FakeProvider, Received, Reply, json_reply, sse
from support.net import free_port

TS_HEADER, SEQ_HEADER = "x-bench-ts", "x-bench-seq"
"""The request's simulated time and its place in the month, for the server's prompt cache."""
PRETOKEN = re.compile(r"'(?:[sdmt]|ll|ve|re)| ?[A-Za-z]+| ?\d| ?[^\sA-Za-z\d]+|\s+(?!\S)|\s+")
"""GPT-2's pre-tokenizer (ASCII): BPE makes one or more tokens of each piece."""
PRETOKEN_FACTOR = 1.07
"""Tokens per piece when the embedded model's tokenizer cannot be loaded to measure it."""


class Tokenizer:
    """Token counts: GPT-2 pre-tokenizer pieces, times the tokens a piece makes as measured
    with the embedded model's (SmolLM2) BPE tokenizer on nearline's own source at start (within
    a few % of the tokenizer itself on code and prose, and 100x faster than calling it)."""

    def __init__(self, model: str | None) -> None:
        self.factor = PRETOKEN_FACTOR
        self.name = f"pre-tokenizer x {self.factor}"
        self.memo: dict[bytes, int] = {}
        if model:
            try:
                import llama_cpp

                vocab = llama_cpp.Llama(model, vocab_only=True, verbose=False)
                text = "".join(
                    f.read_text(encoding="utf-8")
                    for f in sorted((ROOT / "server" / "nearline").rglob("*.py"))
                )
                real = len(vocab.tokenize(text.encode(), add_bos=False, special=False))
                self.factor = real / len(PRETOKEN.findall(text))
                self.name = f"{Path(model).stem}'s tokenizer (measured ratio {self.factor:.3f})"
            except Exception as exc:  # noqa: BLE001 - any failure: the fixed ratio
                print(f"tokenizer unavailable ({exc}); using {self.factor}", file=sys.stderr)

    def count(self, text: str, memo: bool = False) -> int:
        key = hashlib.sha1(text.encode()).digest() if memo else b""
        if memo and key in self.memo:
            return self.memo[key]
        n = round(len(PRETOKEN.findall(text)) * self.factor)
        if memo:
            self.memo[key] = n
        return n


class CloudModel:
    """The fake provider's responder: a plausible answer, its usage, the prompt cache."""

    def __init__(self, tokenizer: Tokenizer, ttl_s: float) -> None:
        self.tokenizer = tokenizer
        self.cache = PromptCache(ttl_s)
        self.turn = threading.Condition()
        self.next_seq = 0
        self.stats: dict[str, Counter[str]] = defaultdict(Counter)

    @contextlib.contextmanager
    def in_order(self, seq: int | None) -> Iterator[None]:
        """Requests in the order of the month (several are in flight at once), so a prompt
        cache hit never depends on which thread ran first. A request that never came (refused
        before it was sent) holds the next one up for at most 2 s."""
        with self.turn:
            if seq is not None:
                self.turn.wait_for(lambda: self.next_seq >= seq, timeout=2.0)
            yield
            if seq is not None:
                self.next_seq = max(self.next_seq, seq + 1)
            self.turn.notify_all()

    def usage_by_model(self) -> dict[str, dict[str, int]]:
        with self.turn:
            return {k: dict(v) for k, v in self.stats.items()}

    def respond(self, received: Received) -> Reply:
        anthropic = received.path == "/v1/messages"
        if received.path != "/v1/chat/completions" and not anthropic:
            return json_reply({"error": {"message": "not found"}}, 404)
        body = received.json
        model = str(body.get("model") or "")
        messages = anthropic_messages(body) if anthropic else body.get("messages") or []
        now = float(received.headers.get(TS_HEADER) or time.time())
        seq = received.headers.get(SEQ_HEADER)
        text = answer_for(messages)
        completion = self.tokenizer.count(text)
        limit = int(body.get("max_tokens") or 4096)
        finish = "stop"
        if completion > limit:
            text, completion, finish = text[: limit * 3], limit, "length"
        with self.in_order(int(seq) if seq else None):
            billed = prompt_usage(self, model, messages, now, anthropic)
            s = self.stats[model]
            s["requests"] += 1
            s["prompt_tokens"] += billed.prompt
            s["cached_tokens"] += billed.cache_read
            s["cache_write_tokens"] += billed.cache_write
            s["cache_write_1h_tokens"] += billed.cache_write_1h
            s["completion_tokens"] += completion
        if anthropic:
            end = "max_tokens" if finish == "length" else "end_turn"
            events = anthropic_events(model, text, billed, completion, end)
            return Reply(body=b"".join(events), content_type="text/event-stream")
        usage = {
            "prompt_tokens": billed.prompt,
            "completion_tokens": completion,
            "total_tokens": billed.prompt + completion,
            "prompt_tokens_details": {"cached_tokens": billed.cache_read},
        }
        base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "model": model}
        chunks = []
        for piece in pieces_of(text):
            chunks.append({**base, "choices": [{"index": 0, "delta": {"content": piece}}]})
        chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
        if (body.get("stream_options") or {}).get("include_usage"):
            chunks.append({**base, "choices": [], "usage": usage})
        return Reply(body=b"".join(sse(*chunks)), content_type="text/event-stream")


TTL_S = {"1h": 3600.0, "5m": 300.0}
"""Anthropic's ``cache_control`` lifetimes; another (or none) is the cache's default."""
MESSAGE_OVERHEAD = 4
REPLY_OVERHEAD = 3
FILES_HEAD = "Project files for reference:"


def prompt_blocks(tokenizer: Tokenizer, messages: list[dict[str, Any]]) -> list[Block]:
    """The prompt in blocks a cache can hold a prefix of: each message, the project-files
    message split at each file (OpenAI caches at any boundary; Anthropic only where ``cache``
    says)."""
    texts: list[tuple[str, bool, float | None]] = []
    for m in messages:
        content = str(m.get("content") or "")
        head = f"<{m.get('role')}>"
        parts = re.split(r"(?=\n=== )", content) if content.startswith(FILES_HEAD) else [content]
        parts[0] = head + parts[0]
        ttl = TTL_S.get(str(m.get("ttl") or ""))
        texts += [(p, False, None) for p in parts[:-1]]
        texts.append((parts[-1], bool(m.get("cache")), ttl))
    last = len(texts) - 1
    blocks = []
    for i, (text, cache, ttl) in enumerate(texts):
        overhead = MESSAGE_OVERHEAD if text.startswith("<") else 0
        blocks.append(Block(text, tokenizer.count(text, memo=i < last) + overhead, cache, ttl))
    return blocks


def prompt_usage(
    cloud: CloudModel, model: str, messages: list[dict[str, Any]], now: float, anthropic: bool
) -> Billed:
    """The prompt's tokens as the provider bills them. The caller holds ``cloud.turn``."""
    blocks = prompt_blocks(cloud.tokenizer, messages)
    if anthropic:
        return cloud.cache.anthropic(model, blocks, REPLY_OVERHEAD, now)
    return cloud.cache.openai(model, blocks, REPLY_OVERHEAD, now)


TASK_OF = {t.instruction: t.kind.value for t in TASKS.values() if t.instruction}
SELECTION = re.compile(r"^Selection: (.+), lines (\d+)-(\d+):\n```\n(.*)\n```", re.M | re.S)
POINTER = re.compile(r"^Selection: (.+), lines (\d+)-(\d+) \(in the file above\b", re.M)


def selection_of(messages: list[dict[str, Any]], last: str) -> tuple[str, int, list[str]]:
    """The selection's file, first line and lines: sent in the request, or pointed at in a
    file the prompt carries."""
    m = SELECTION.search(last)
    if m:
        return m.group(1), int(m.group(2)), m.group(4).split("\n")
    m = POINTER.search(last)
    if not m:
        return "file.py", 1, []
    path, start, end = m.group(1), int(m.group(2)), int(m.group(3))
    for message in messages:
        content = str(message.get("content") or "")
        head = f"\n=== {path} ===\n"
        if content.startswith(FILES_HEAD) and head in content:
            text = content.split(head, 1)[1].split("\n=== ", 1)[0]
            return path, start, text.split("\n")[start - 1 : end]
    return path, start, []


def _words(rng: random.Random, n: int, vocab: Sequence[str]) -> str:
    return " ".join(rng.choice(vocab) for _ in range(n))


def answer_for(messages: list[dict[str, Any]]) -> str:
    """A plausible answer: its length from the request, a diff that applies for changes."""
    last = str(messages[-1].get("content") or "") if messages else ""
    first_line = last.split("\n", 1)[0]
    task = TASK_OF.get(first_line, "ask")
    rng = random.Random(hashlib.sha1(last.encode()).digest())
    path, start, selected = selection_of(messages, last)
    shown = [str(m.get("content") or "") for m in messages]
    n_files = max((c.count("\n=== ") for c in shown if c.startswith(FILES_HEAD)), default=1)
    vocab = re.findall(r"[a-z_]{3,}", last) or NOUNS
    if task == "tests":
        return tests_diff(rng, path, selected)
    if task in ("refactor", "fix"):
        return change_diff(rng, task, path, start, selected)
    if task == "explain":
        return _prose(rng, min(900, 150 + 4 * len(selected)), vocab)
    if "Request: Write" in last:  # boilerplate: code, about the size of what it is for
        code = "\n".join("    " + _words(rng, 6, vocab) for _ in range(max(12, len(selected))))
        return f"Here it is:\n\n```python\n{code}\n```\n"
    return _prose(rng, min(800, 60 + 4 * len(selected) + 80 * (n_files - 1)), vocab)


def _prose(rng: random.Random, words: int, vocab: Sequence[str]) -> str:
    out = []
    while words > 0:
        n = min(words, rng.randint(8, 20))
        out.append(f"- `{rng.choice(vocab)}` {_words(rng, n, vocab)}.")
        words -= n + 2
    return "\n".join(out) + "\n"


def tests_diff(rng: random.Random, path: str, selected: list[str]) -> str:
    names = re.findall(r"(?:def|function) (\w+)", "\n".join(selected)) or ["subject"]
    body = ["import pytest", ""]
    target = max(20, min(250, int(len(selected) * 1.5)))
    while len(body) < target:
        name = rng.choice(names)
        body += [
            "",
            f"def test_{name}_{rng.choice(NOUNS)}_{len(body)}():",
            f"    result = {name}({rng.choice(NOUNS)}, [], None)",
            f"    assert result == {rng.choice(('[]', 'None', '0'))}",
        ]
    stem = Path(path).stem
    lines = "".join(f"+{line}\n" for line in body)
    return (
        f"Tests for {', '.join(names[:3])}.\n\n```diff\n--- /dev/null\n+++ b/tests/test_{stem}.py\n"
        f"@@ -0,0 +1,{len(body)} @@\n{lines}```\n"
    )


def change_diff(rng: random.Random, task: str, path: str, start: int, selected: list[str]) -> str:
    """A refactor renames an identifier through the selection; a fix changes one line."""
    if not selected:
        return "Nothing to change.\n"
    if task == "fix":
        at = rng.randrange(len(selected))
        changed = {at: selected[at] + "  # fixed"}
    else:
        words = Counter(re.findall(r"\b[a-z]+_[a-z_]+\b", "\n".join(selected)))
        ident = words.most_common(1)[0][0] if words else ""
        changed = {
            i: re.sub(rf"\b{ident}\b", f"{ident}_v2", line)
            for i, line in enumerate(selected)
            if ident and re.search(rf"\b{ident}\b", line)
        }
        if not changed:
            changed = {0: selected[0] + "  # refactored"}
    lo = max(0, min(changed) - 3)
    hi = min(len(selected), max(changed) + 4)
    hunk = []
    for i in range(lo, hi):
        if i in changed:
            hunk += [f"-{selected[i]}", f"+{changed[i]}"]
        else:
            hunk.append(f" {selected[i]}")
    old = hi - lo
    header = f"@@ -{start + lo},{old} +{start + lo},{old} @@"
    text = "\n".join(hunk)
    what = "Fixed the failing line" if task == "fix" else "Renamed and simplified"
    return f"{what}.\n\n```diff\n--- a/{path}\n+++ b/{path}\n{header}\n{text}\n```\n"


def serve(tokenizer_model: str | None, ttl_s: float) -> None:
    """The server process: prints its port, serves until stdin closes (the parent exited)."""
    tokenizer = Tokenizer(tokenizer_model)
    model = CloudModel(tokenizer, ttl_s)
    server = FakeProvider(model.respond, keep=False)
    server.pages["/bench/stats"] = model.usage_by_model
    server.start()
    print(server.server_address[1], tokenizer.name, flush=True)
    sys.stdin.read()
    server.stop()


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout_s: float, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise SystemExit(f"the server exited with {proc.returncode}: {tail}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{url}/models", timeout=1.0).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise SystemExit(f"the server at {url} did not answer within {timeout_s:.0f} s")
        time.sleep(0.2)


@contextlib.contextmanager
def fake_cloud(tmp: Path, ttl_min: float, tokenizer: str | None) -> Iterator[tuple[str, str]]:
    """The benchmark's OpenAI-compatible server, in its own process (the other CPU core)."""
    command = [sys.executable, str(ROOT / "scripts" / "bench_costs.py"), "--serve"]
    command += ["--cache-ttl-min", str(ttl_min)]
    if tokenizer:
        command += ["--tokenizer", tokenizer]
    log = tmp / "server.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, cwd=ROOT
        )
    try:
        assert proc.stdout is not None
        port, _, counting = proc.stdout.readline().decode().strip().partition(" ")
        if not port.isdigit():
            raise SystemExit(f"the benchmark server did not start: {log.read_text()[-2000:]}")
        url = f"http://127.0.0.1:{port}/v1"
        wait_ready(url, proc, 30, log)
        yield url, counting
    finally:
        with contextlib.suppress(OSError):
            assert proc.stdin is not None
            proc.stdin.close()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@contextlib.contextmanager
def llama_server(tmp: Path, n_ctx: int) -> Iterator[tuple[str, str]]:
    """llama-cpp-python's OpenAI-compatible server with the embedded model (as the tests)."""
    port = free_port()
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(default_model_path())]
    command += ["--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(n_ctx)]
    command += ["--n_threads", str(os.cpu_count() or 1)]
    log = tmp / "llama_server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        wait_ready(url, proc, 120, log)
        yield url, "the server's own tokenizer"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def server_stats(url: str) -> dict[str, dict[str, int]]:
    try:
        return dict(httpx.get(url.removesuffix("/v1") + "/bench/stats", timeout=5).json())
    except (httpx.HTTPError, ValueError):
        return {}
