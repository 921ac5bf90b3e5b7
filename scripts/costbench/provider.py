"""The simulated provider: nearline's one fake OpenAI-compatible server (``tests/support``),
answering like a cloud model. It counts tokens like the embedded model's tokenizer, caches
prompt prefixes as OpenAI bills them, and answers with text of a plausible length (a diff that
applies for a change). It runs in its own process; ``llama_server`` is the real alternative."""

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
        self.ttl_s = ttl_s
        self.cache: dict[bytes, float] = {}
        """Prompt prefix → the simulated time it was last used."""
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
        if received.path != "/v1/chat/completions":
            return json_reply({"error": {"message": "not found"}}, 404)
        body = received.json
        model = str(body.get("model") or "")
        messages = body.get("messages") or []
        now = float(received.headers.get(TS_HEADER) or time.time())
        seq = received.headers.get(SEQ_HEADER)
        text = answer_for(body)
        completion = self.tokenizer.count(text)
        limit = int(body.get("max_tokens") or 4096)
        finish = "stop"
        if completion > limit:
            text, completion, finish = text[: limit * 3], limit, "length"
        with self.in_order(int(seq) if seq else None):
            prompt, cached = prompt_usage(self, model, messages, now)
            s = self.stats[model]
            s["requests"] += 1
            s["prompt_tokens"] += prompt
            s["cached_tokens"] += cached
            s["completion_tokens"] += completion
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached},
        }
        base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "model": model}
        events = []
        step = max(1, len(text) // 8)
        for i in range(0, len(text), step):
            delta = {"content": text[i : i + step]}
            events.append({**base, "choices": [{"index": 0, "delta": delta}]})
        events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append({**base, "choices": [], "usage": usage})
        return Reply(body=b"".join(sse(*events)), content_type="text/event-stream")


MESSAGE_OVERHEAD = 4
REPLY_OVERHEAD = 3
CACHE_MIN, CACHE_STEP = 1024, 128


def prefix_pieces(messages: list[dict[str, Any]]) -> list[str]:
    """The prompt in pieces a cache can hold a prefix of: each message, the project-files
    message split at each file."""
    pieces: list[str] = []
    for m in messages:
        content = str(m.get("content") or "")
        head = f"<{m.get('role')}>"
        if content.startswith("Project files for reference:"):
            parts = re.split(r"(?=\n=== )", content)
            pieces.append(head + parts[0])
            pieces.extend(parts[1:])
        else:
            pieces.append(head + content)
    return pieces


def prompt_usage(
    cloud: CloudModel, model: str, messages: list[dict[str, Any]], now: float
) -> tuple[int, int]:
    """(prompt tokens, of them read from the cache), like OpenAI's automatic prompt caching:
    the longest prefix, at a piece boundary, used within the TTL, if 1024 tokens or more
    (counted in steps of 128). The caller holds ``server.turn``."""
    pieces = prefix_pieces(messages)
    counts = [cloud.tokenizer.count(p, memo=i < len(pieces) - 1) for i, p in enumerate(pieces)]
    total = sum(counts) + MESSAGE_OVERHEAD * len(messages) + REPLY_OVERHEAD
    digest = hashlib.sha1(model.encode())
    prefixes: list[tuple[bytes, int]] = []
    upto = 0
    for piece, n in zip(pieces[:-1], counts[:-1], strict=True):  # never the whole prompt
        digest.update(piece.encode())
        upto += n
        if upto >= CACHE_MIN:
            prefixes.append((digest.copy().digest(), upto))
    cached = 0
    for key, n in prefixes:
        seen = cloud.cache.get(key)
        if seen is not None and 0 <= now - seen <= cloud.ttl_s:
            cached = max(cached, n)
        cloud.cache[key] = max(now, seen or now)
    if cached:
        cached = CACHE_MIN + (cached - CACHE_MIN) // CACHE_STEP * CACHE_STEP
    return total, cached


TASK_OF = {t.instruction: t.kind.value for t in TASKS.values() if t.instruction}
SELECTION = re.compile(r"^Selection: (.+), lines (\d+)-(\d+):\n```\n(.*)\n```", re.M | re.S)


def _words(rng: random.Random, n: int, vocab: Sequence[str]) -> str:
    return " ".join(rng.choice(vocab) for _ in range(n))


def answer_for(body: dict[str, Any]) -> str:
    """A plausible answer: its length from the request, a diff that applies for changes."""
    messages = body.get("messages") or []
    last = str(messages[-1].get("content") or "") if messages else ""
    first_line = last.split("\n", 1)[0]
    task = TASK_OF.get(first_line, "ask")
    rng = random.Random(hashlib.sha1(last.encode()).digest())
    m = SELECTION.search(last)
    path, start = (m.group(1), int(m.group(2))) if m else ("file.py", 1)
    selected = m.group(4).split("\n") if m else []
    n_files = str(messages[1].get("content") or "").count("\n=== ") if len(messages) > 1 else 1
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
