#!/usr/bin/env python3
"""Cost benchmark: a simulated month of a 50-person team through the real router and ledger.

Each developer works ``--days`` (21) working days and makes ``--per-dev-day`` (30) requests a
day, at random times between 9:00 and 18:00, of five kinds (the issue's mix; ``--mix`` changes
it):

==================  =====  =========================================================
class               share  shape
==================  =====  =========================================================
autocomplete          45%  local completion: 300-480 prompt tokens, mostly reused from
                           the KV cache, 6-32 output tokens, no cost (15% served from
                           the cache or typed through: no tokens)
names                 28%  "ask" for better names, 5-20 selected lines in one file
boilerplate           12%  "tests", or "ask" to write a dataclass, a CLI, ..., for
                           8-45 selected lines in one file
complex logic         10%  "ask" or "refactor": 2-4 files (20-150 lines selected), or
                           100-300 lines selected in one large file
debugging/refactor     5%  "fix" (with a diagnostic) or "refactor", the same sizes
==================  =====  =========================================================

The code is a synthetic repository (``--files`` Python and TypeScript files of 40-1200 lines,
generated from ``--seed``); each developer has a checkout and works on a few files a day.

What is real: the project policy (printed) goes through ``config.parse_settings``. Every
escalation is an ``Escalator.run`` call, one ``Escalator`` per developer as each runs their own
server: routing (``router.route_for``), the privacy scan, the prompt (``prompts``), nearline's
OpenAI-compatible engine streaming over HTTP, retries, usage parsing, and the answer's diff
checked by ``plan_changes``. The one change: the engines share one httpx transport (see
``BenchEscalator``). Every request is a row in a real SQLite ``Ledger`` (a temporary file, or
``--ledger PATH``), costed as ``Actions._record`` does with the configured price table (the
bundled ``models/prices.json``, prices imported with ``nearline prices import``, the policy's
overrides); a refused or failed escalation is recorded as ``Actions._record_failure`` does.
The report is read back from the ledger, and checked against what the server billed.

What is simulated: the models. By default a local OpenAI-compatible server, started by this
script on 127.0.0.1 in its own process, answers every escalation (``--concurrency`` in flight).
It counts tokens with GPT-2's pre-tokenizer scaled to the embedded model's (SmolLM2) BPE
tokenizer, measured on nearline's own source at start (within ~5% of the tokenizer on code and
prose); caches prompt prefixes as OpenAI does (prefixes of 1024 tokens or more, at message and
file boundaries, in 128-token steps, kept ``--cache-ttl-min`` simulated minutes after their
last use; reported as ``prompt_tokens_details.cached_tokens``; no cache writes); and streams an
answer of a plausible length: a diff that applies for refactor (a rename through the
selection), fix (one line) and tests (a new file), Markdown for ask and explain. Each request
carries its simulated time and its place in the month in two headers; the server handles the
cache in that order, so a run is reproducible. Autocomplete is not run: each request is
recorded as the LSP server records a completion by the embedded model.

``--llama-server`` instead starts the real ``python -m llama_cpp.server`` with the embedded
default model, routes every request of the month (``Escalator.decide``), and sends only
``--sample`` requests per class (drawn from those whose prompt fits ``--llama-n-ctx``) through
``Escalator.run``, each standing for its class's share of the month. It is slow (a prompt of
10k tokens takes minutes on 2 CPU cores); answers are capped at ``--llama-max-tokens``, and the
135M model's change answers rarely hold a diff that applies (recorded as the LSP server does:
outcome "error", with their tokens and cost). Token counts are the server's own.

The comparisons use the ledger's tokens: all-flagship prices every request's tokens (local
completions included, their KV-cache reads as uncached input, since no provider has that
cache) at the flagship's model, as ``nearline usage`` does; all-value at the value tier's
model. "Best possible" is the savings if everything but complex logic and
debugging/refactor had cost nothing; the second bound also takes those requests' input
tokens as free (in the actual cost and in all-flagship): what their answers alone leave. The
target (the issue's): at least 80% cheaper than
all-flagship, with every complex-logic and debugging/refactor request on the flagship tier.
Exit status: 0 when it is met, 1 when not, 2 on a usage error.

    .venv/bin/python scripts/bench_costs.py                  # ~31,500 requests, ~2.5 min
    .venv/bin/python scripts/bench_costs.py --per-dev-day 60 --json   # ~5.5 min
    .venv/bin/python scripts/bench_costs.py --mix names=40,complex=5
    .venv/bin/python scripts/bench_costs.py --llama-server --sample 1  # 15-20 min

Only 127.0.0.1 is contacted. The servers and the temporary files are removed at exit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import dataclasses
import datetime as dt
import hashlib
import http.server
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "server"))

from nearline.accounting.entries import Entry  # noqa: E402
from nearline.accounting.ledger import Ledger  # noqa: E402
from nearline.accounting.prices import (  # noqa: E402
    PRICE_FIELDS,
    Price,
    Tokens,
    as_cloud_request,
    flagship,
    provider_price,
)
from nearline.accounting.prices import table_for as price_table_for  # noqa: E402
from nearline.catalog import DEFAULT_FILE, default_model_path  # noqa: E402
from nearline.config import LOCAL_PROVIDER, Settings, parse_settings  # noqa: E402
from nearline.errors import DiffError, NearlineError  # noqa: E402
from nearline.escalation.escalator import (  # noqa: E402
    Document,
    Escalator,
    Outcome,
    Task,
    cost_of,
    ledger_entry,
)
from nearline.escalation.router import Decision, language_of  # noqa: E402
from nearline.providers import ChatEngine, make_engine  # noqa: E402
from nearline.tasks import AUTOCOMPLETE, TASKS  # noqa: E402

CLASSES = ("autocomplete", "names", "boilerplate", "complex", "debugging")
LABELS = {
    "autocomplete": "autocomplete",
    "names": "names",
    "boilerplate": "boilerplate",
    "complex": "complex logic",
    "debugging": "debugging/refactor",
}
DEFAULT_MIX = {"autocomplete": 45, "names": 28, "boilerplate": 12, "complex": 10, "debugging": 5}
MUST_BE_FLAGSHIP = ("complex", "debugging")
TARGET_SAVINGS = 0.80
TIERS = ("local", "value", "flagship")
PROJECT = "acme-platform"
LOCAL_MODEL = Path(DEFAULT_FILE).stem
"""The model name the LSP server records for a completion by the embedded model."""
WORK_START_H, WORK_END_H = 9, 18


# -- the project's policy --------------------------------------------------------------------


def policy(base_url: str, flagship_model: str, value_model: str) -> dict[str, Any]:
    """What a team would put in ``.nearline.toml``: small, single-file questions, names and
    boilerplate on the cheap model; anything multi-file, large or a debugging session on the
    flagship; autocomplete stays local (it never goes through the router)."""
    provider = {"kind": "openai", "base_url": base_url, "max_retries": 2, "read_timeout_s": 300.0}
    return {
        "providers": {
            "flagship-model": {**provider, "model": flagship_model},
            "value-model": {**provider, "model": value_model},
        },
        "routing": {
            "tiers": {
                "local": ["local"],
                "value": ["value-model"],
                "flagship": ["flagship-model"],
            },
            "rules": [
                {"name": "work across files", "tier": "flagship", "min_files": 2},
                {"name": "large selections", "tier": "flagship", "min_selection_lines": 100},
                {"name": "debugging", "tier": "flagship", "task": ["fix"]},
                {
                    "name": "small single-file requests",
                    "tier": "value",
                    "task": ["ask", "explain", "tests", "refactor"],
                    "max_files": 1,
                    "max_selection_lines": 60,
                },
            ],
            "default_tier": "flagship",
        },
        "usage": {"project_name": PROJECT},
    }


def toml_lines(data: dict[str, Any], prefix: str = "") -> list[str]:
    """Enough TOML to print the policy (tables, arrays of tables, scalars, lists)."""
    plain, tables = [], []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            tables.extend(["", *toml_lines(value, f"{name}.")])
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            for item in value:
                tables.extend(["", f"[[{name}]]"])
                tables.extend(f"{k} = {json.dumps(v)}" for k, v in item.items())
        else:
            plain.append(f"{key} = {json.dumps(value)}")
    head = [f"[{prefix.rstrip('.')}]"] if prefix and plain else []
    return head + plain + tables


# -- the synthetic repository ----------------------------------------------------------------


def words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


NOUNS = words(
    "order invoice customer account payment report schedule session cache queue record batch "
    "event metric profile address shipment quota region tenant widget channel price discount "
    "item cart member group policy rule window buffer stream packet route setting carrier "
    "warehouse supplier contract refund review rating coupon ticket booking slot plan"
)
VERBS = words(
    "load save parse render build compute validate merge split fetch update apply resolve "
    "normalize format collect filter sort group sync count rank merge archive export import "
    "notify retry reserve release cancel"
)
ATTRS = words("id name total amount status created_at updated_at owner count weight priority")
PACKAGES = ("billing", "orders", "catalog", "shipping", "accounts", "reports", "search", "core")


def _ident(rng: random.Random, *parts: Sequence[str]) -> str:
    return "_".join(rng.choice(p) for p in parts)


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(w.title() for w in rest)


def py_function(rng: random.Random, indent: str = "") -> list[str]:
    noun = rng.choice(NOUNS)
    name = f"{rng.choice(VERBS)}_{noun}"
    args = rng.sample(["items", "limit", "strict", "context", "now", "options", "source"], 2)
    lines = [
        f"{indent}def {name}({noun}, {args[0]}, {args[1]}=None):",
        f'{indent}    """{name.replace("_", " ").capitalize()} for the given {noun}."""',
    ]
    acc = f"{rng.choice(NOUNS)}_list"
    lines.append(f"{indent}    {acc} = []")
    for _ in range(rng.randint(3, 9)):
        pick = rng.random()
        var = rng.choice(NOUNS)
        attr = rng.choice(ATTRS)
        b = indent + "    "
        if pick < 0.25:
            lines += [f"{b}if {noun}.{attr} is None:", f"{b}    return {acc}"]
        elif pick < 0.5:
            lines += [
                f"{b}for {var} in {args[0]} or []:",
                f"{b}    if {var}.{attr} > {rng.randint(1, 500)}:",
                f"{b}        {acc}.append({var}.{rng.choice(ATTRS)})",
            ]
        elif pick < 0.7:
            other = _ident(rng, VERBS, NOUNS)
            lines.append(f"{b}{var}_{attr} = {other}({noun}.{attr}, {args[1]})")
        elif pick < 0.85:
            lines += [
                f"{b}try:",
                f"{b}    {acc}.extend({_ident(rng, VERBS, NOUNS)}({var}))",
                f"{b}except ValueError as exc:",
                f'{b}    log.warning("{name}: %s", exc)',
            ]
        else:
            lines += [
                f"{b}if len({acc}) > {rng.randint(10, 99)}:",
                f'{b}    raise ValueError(f"too many {var} entries: {{len({acc})}}")',
            ]
    lines.append(f"{indent}    return sorted({acc}, key=lambda x: x)")
    return lines


def py_file(rng: random.Random, target: int) -> str:
    lines = [
        f'"""{rng.choice(NOUNS).title()} {rng.choice(NOUNS)} handling."""',
        "",
        "from __future__ import annotations",
        "",
        "import logging",
        "",
        f"from acme.{rng.choice(PACKAGES)} import {_ident(rng, VERBS, NOUNS)}",
        "",
        "log = logging.getLogger(__name__)",
    ]
    while len(lines) < target:
        lines += ["", ""]
        if rng.random() < 0.3:
            cls = rng.choice(NOUNS).title() + rng.choice(("Service", "Store", "Index", "Policy"))
            lines += [f"class {cls}:", f'    """The {cls} of the {rng.choice(PACKAGES)} app."""']
            for _ in range(rng.randint(2, 5)):
                lines.append("")
                lines += py_function(rng, "    ")
        else:
            lines += py_function(rng)
    return "\n".join(lines) + "\n"


def ts_function(rng: random.Random) -> list[str]:
    noun = rng.choice(NOUNS)
    name = _camel(f"{rng.choice(VERBS)}_{noun}")
    lines = [f"export function {name}({noun}: {noun.title()}, options?: Options): Result {{"]
    lines.append("  const out: Item[] = [];")
    for _ in range(rng.randint(3, 8)):
        pick = rng.random()
        var = rng.choice(NOUNS)
        attr = _camel(rng.choice(ATTRS))
        if pick < 0.3:
            lines += [f"  if (!{noun}.{attr}) {{", "    return { ok: false, out };", "  }"]
        elif pick < 0.6:
            lines += [
                f"  for (const {var} of {noun}.{rng.choice(NOUNS)}s ?? []) {{",
                f"    if ({var}.{attr} > {rng.randint(1, 500)}) out.push({var});",
                "  }",
            ]
        else:
            other = _camel(_ident(rng, VERBS, NOUNS))
            lines.append(f"  const {var}{attr.title()} = {other}({noun}.{attr}, options);")
    lines += ["  return { ok: true, out };", "}"]
    return lines


def ts_file(rng: random.Random, target: int) -> str:
    lines = [
        f"import {{ Item, Options, Result }} from '../{rng.choice(PACKAGES)}/types';",
        "",
        f"// {rng.choice(NOUNS).title()} helpers.",
    ]
    while len(lines) < target:
        lines.append("")
        lines += ts_function(rng)
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class SourceFile:
    rel: str
    text: str
    lines: int


def make_repo(rng: random.Random, n_files: int) -> list[SourceFile]:
    files, seen = [], set()
    while len(files) < n_files:
        package = rng.choice(PACKAGES)
        target = int(min(1200, max(40, rng.lognormvariate(math.log(220), 0.6))))
        if rng.random() < 0.7:
            rel, text = f"src/acme/{package}/{_ident(rng, NOUNS, NOUNS)}.py", py_file(rng, target)
        else:
            rel = f"web/src/{package}/{_camel(_ident(rng, NOUNS, NOUNS))}.ts"
            text = ts_file(rng, target)
        if rel not in seen:
            seen.add(rel)
            files.append(SourceFile(rel, text, text.count("\n")))
    return files


# -- the simulated month ---------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    seq: int
    dev: int
    ts: float
    klass: str
    kind: str = AUTOCOMPLETE
    """The escalation task (refactor, explain, tests, fix, ask), or "completion"."""
    files: tuple[int, ...] = ()
    """Indexes into the repository; the first holds the selection."""
    start_line: int = 0
    end_line: int = 0
    instruction: str = ""
    diagnostic: str = ""
    seed: int = 0


def working_days(start: dt.date, days: int) -> list[dt.date]:
    out, day = [], start
    while len(out) < days:
        if day.weekday() < 5:
            out.append(day)
        day += dt.timedelta(days=1)
    return out


def default_start(today: dt.date) -> dt.date:
    """The Monday five weeks before this week's: 21 working days end before today."""
    return today - dt.timedelta(days=today.weekday() + 35)


def _selection(rng: random.Random, lines: int, low: int, high: int) -> tuple[int, int]:
    size = min(rng.randint(low, high), lines)
    start = rng.randint(0, max(0, lines - size))
    return start, start + size - 1


def _ident_in(rng: random.Random, text: str) -> str:
    words = re.findall(r"\b[a-z]+_[a-z_]+\b", text)
    return rng.choice(words) if words else rng.choice(NOUNS)


NAMES_ASKS = (
    "Suggest clearer names for the variables in this code.",
    "Suggest a better name for `{ident}` and say why in one line.",
    "What would be a more descriptive name for `{ident}`?",
    "Rename suggestions for `{ident}` and the loop variables, please.",
)
BOILERPLATE_ASKS = (
    "Write a dataclass for the fields `{ident}` uses.",
    "Write a __repr__ and __eq__ for the class around `{ident}`.",
    "Write an argparse command line for calling `{ident}`.",
    "Write docstrings for `{ident}` and its helpers.",
    "Write a JSON serializer for what `{ident}` returns.",
    "Write a pytest fixture that builds the inputs of `{ident}`.",
)
COMPLEX_ASKS = (
    "How should `{ident}` handle concurrent updates across these modules? Propose a design.",
    "Design a caching layer for `{ident}` that stays correct when the data changes.",
    "What is the complexity of `{ident}` and how can the hot path be made linear?",
    "Walk me through how `{ident}` interacts with the other files and where it can fail.",
)
REFACTORS = (
    "Extract the validation in `{ident}` into its own function.",
    "Split `{ident}` into smaller functions with clear responsibilities.",
    "Replace the nested loops around `{ident}` with a single pass.",
    "Rename `{ident}` consistently and simplify the control flow.",
)
DIAGNOSTICS = (
    "TypeError: unsupported operand type(s) for +: 'NoneType' and 'int'",
    "AttributeError: 'NoneType' object has no attribute '{attr}'",
    "KeyError: '{attr}'",
    "AssertionError: expected {n} items, got {m}",
    "ValueError: too many {noun} entries: {m}",
)


class Month:
    """Who asks what, when, on which files."""

    def __init__(self, args: argparse.Namespace, repo: list[SourceFile]) -> None:
        self.args = args
        self.repo = repo
        self.by_package: dict[str, list[int]] = defaultdict(list)
        for i, f in enumerate(repo):
            self.by_package[f.rel.split("/")[-2]].append(i)
        self.big = [i for i, f in enumerate(repo) if f.lines >= 320]
        self.mix = args.mix
        # A few files everyone touches often, like in a real repository.
        weights = [1.0 / (rank + 1) ** 0.8 for rank in range(len(repo))]
        self.popularity = weights

    def requests(self) -> list[Request]:
        rng = random.Random(self.args.seed)
        days = working_days(self.args.start, self.args.days)
        classes, weights = zip(*self.mix.items(), strict=True)
        out: list[Request] = []
        for dev in range(self.args.devs):
            for day in days:
                focus = rng.choices(range(len(self.repo)), self.popularity, k=rng.randint(3, 7))
                base = dt.datetime.combine(day, dt.time(WORK_START_H)).timestamp()
                span = (WORK_END_H - WORK_START_H) * 3600
                times = sorted(base + rng.random() * span for _ in range(self.args.per_dev_day))
                for ts in times:
                    klass = rng.choices(classes, weights)[0]
                    out.append(self._request(rng, dev, ts, klass, focus))
        out.sort(key=lambda r: (r.ts, r.dev))
        return [dataclasses.replace(r, seq=i) for i, r in enumerate(out)]

    def _others(self, rng: random.Random, main: int, focus: list[int], k: int) -> tuple[int, ...]:
        pool = [i for i in {*focus, *self.by_package[self.repo[main].rel.split("/")[-2]]}]
        pool = [i for i in pool if i != main]
        rng.shuffle(pool)
        while len(pool) < k:
            pool.append(rng.randrange(len(self.repo)))
        return tuple(dict.fromkeys(pool[:k]))

    def _request(
        self, rng: random.Random, dev: int, ts: float, klass: str, focus: list[int]
    ) -> Request:
        seed = rng.getrandbits(32)
        if klass == "autocomplete":
            return Request(0, dev, ts, klass, seed=seed)
        main = rng.choice(focus)
        files: tuple[int, ...] = (main,)
        lines = self.repo[main].lines
        instruction = diagnostic = ""
        if klass == "names":
            kind = "ask"
            start, end = _selection(rng, lines, 5, 20)
            template = rng.choice(NAMES_ASKS)
        elif klass == "boilerplate":
            kind = "tests" if rng.random() < 0.55 else "ask"
            start, end = _selection(rng, lines, 8, 45)
            template = "" if kind == "tests" else rng.choice(BOILERPLATE_ASKS)
        else:
            if klass == "complex":
                kind = rng.choice(("ask", "refactor"))
                multi = rng.random() < 0.6
            else:
                kind = "fix" if rng.random() < 0.55 else "refactor"
                multi = rng.random() < 0.65
            if multi:
                files = (main, *self._others(rng, main, focus, rng.randint(1, 3)))
                start, end = _selection(rng, lines, 20, 150)
            else:
                main = rng.choice(self.big) if self.big else main
                files, lines = (main,), self.repo[main].lines
                start, end = _selection(rng, lines, 100, 300)
            template = rng.choice(COMPLEX_ASKS if kind == "ask" else REFACTORS)
            if kind == "fix":
                template = ""
                diagnostic = rng.choice(DIAGNOSTICS).format(
                    attr=rng.choice(ATTRS),
                    noun=rng.choice(NOUNS),
                    n=rng.randint(2, 9),
                    m=rng.randint(10, 99),
                )
        if template:
            selected = "\n".join(self.repo[main].text.split("\n")[start : end + 1])
            instruction = template.format(ident=_ident_in(rng, selected))
        return Request(0, dev, ts, klass, kind, files, start, end, instruction, diagnostic, seed)


def completion_entry(req: Request, project_root: str, path: str) -> Entry:
    """What the LSP server records for one autocomplete request on the embedded model."""
    rng = random.Random(req.seed)
    pick = rng.random()
    common = {
        "task": AUTOCOMPLETE,
        "tier": "local",
        "provider": LOCAL_PROVIDER,
        "model": LOCAL_MODEL,
        "project_root": project_root,
        "project": PROJECT,
        "language": language_of(path),
        "ts": req.ts,
    }
    if pick < 0.10:  # typed through: the suggestion shown already continued
        return Entry(outcome="typed-through", latency_ms=rng.uniform(0.2, 2), **common)
    if pick < 0.15:
        return Entry(outcome="served-from-cache", latency_ms=rng.uniform(0.5, 4), **common)
    prompt = rng.randint(300, 480)
    fresh = prompt if rng.random() < 0.08 else rng.randint(6, 90)  # a jump: no reuse
    tokens = Tokens(input=fresh, cache_read=prompt - fresh, output=rng.randint(6, 32))
    return Entry(
        outcome="ok",
        tokens=tokens,
        latency_ms=rng.uniform(40, 260) + fresh * 7,
        accepted=rng.random() < 0.3,
        **common,
    )


# -- the local OpenAI-compatible server (its own process) ------------------------------------

DONE = b"data: [DONE]\n\n"
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
                    for f in sorted((ROOT / "server" / "nearline").glob("*.py"))
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


class CloudServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, tokenizer: Tokenizer, ttl_s: float) -> None:
        super().__init__(("127.0.0.1", 0), _CloudHandler)
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
    server: CloudServer, model: str, messages: list[dict[str, Any]], now: float
) -> tuple[int, int]:
    """(prompt tokens, of them read from the cache), like OpenAI's automatic prompt caching:
    the longest prefix, at a piece boundary, used within the TTL, if 1024 tokens or more
    (counted in steps of 128). The caller holds ``server.turn``."""
    pieces = prefix_pieces(messages)
    counts = [server.tokenizer.count(p, memo=i < len(pieces) - 1) for i, p in enumerate(pieces)]
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
        seen = server.cache.get(key)
        if seen is not None and 0 <= now - seen <= server.ttl_s:
            cached = max(cached, n)
        server.cache[key] = max(now, seen or now)
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


class _CloudHandler(http.server.BaseHTTPRequestHandler):
    server: CloudServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def _json(self, status: int, body: Any) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self) -> None:
        if self.path == "/v1/models":
            self._json(200, {"object": "list", "data": [{"id": "bench", "object": "model"}]})
        elif self.path == "/bench/stats":
            with self.server.turn:
                self._json(200, {k: dict(v) for k, v in self.server.stats.items()})
        else:
            self._json(404, {"error": {"message": "not found"}})

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path != "/v1/chat/completions":
            self._json(404, {"error": {"message": "not found"}})
            return
        body = json.loads(raw)
        model = str(body.get("model") or "")
        messages = body.get("messages") or []
        now = float(self.headers.get(TS_HEADER) or time.time())
        seq = self.headers.get(SEQ_HEADER)
        text = answer_for(body)
        completion = self.server.tokenizer.count(text)
        limit = int(body.get("max_tokens") or 4096)
        finish = "stop"
        if completion > limit:
            text, completion, finish = text[: limit * 3], limit, "length"
        with self.server.in_order(int(seq) if seq else None):
            prompt, cached = prompt_usage(self.server, model, messages, now)
            s = self.server.stats[model]
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
        out = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + DONE
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


def serve(tokenizer_model: str | None, ttl_s: float) -> None:
    """The server process: prints its port, serves until stdin closes (the parent exited)."""
    tokenizer = Tokenizer(tokenizer_model)
    server = CloudServer(tokenizer, ttl_s)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(server.server_address[1], tokenizer.name, flush=True)
    sys.stdin.read()
    server.shutdown()


# -- running it ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
    command = [sys.executable, str(Path(__file__).resolve()), "--serve"]
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


SENDING: contextvars.ContextVar[tuple[float, int] | None] = contextvars.ContextVar(
    "sending", default=None
)
"""The simulated time and sequence number of the request the current task is sending."""


class KeptTransport(httpx.AsyncBaseTransport):
    """One connection pool for every engine (closing an engine leaves it open); tells the
    benchmark server the simulated time of each request."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        sending = SENDING.get()
        if sending is not None:
            request.headers[TS_HEADER] = repr(sending[0])
            request.headers[SEQ_HEADER] = str(sending[1])
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        pass


class BenchEscalator(Escalator):
    """``Escalator`` whose HTTP engines, one per simulated developer, share one transport that
    stamps each request with its simulated time (the benchmark server's prompt cache runs on
    it). Everything else (the engine, its streaming, retries, usage parsing) is nearline's."""

    transport: KeptTransport | None = None

    def _engine(self, name: str) -> ChatEngine:
        if name == LOCAL_PROVIDER:
            return super()._engine(name)
        if BenchEscalator.transport is None:
            BenchEscalator.transport = KeptTransport()
        return make_engine(self.settings.providers[name], BenchEscalator.transport)


@dataclass
class Run:
    settings: Settings
    repo: list[SourceFile]
    roots: list[Path]
    ledger: Ledger
    klass: dict[str, str] = field(default_factory=dict)
    """Ledger uid → request class."""
    weight: dict[str, float] = field(default_factory=dict)
    """Ledger uid → how many requests of the month it stands for."""
    decisions: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    """Class → tier → requests, as the router decided for every request of the month."""
    estimates: dict[str, list[float]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))
    """Class → [router's estimated prompt tokens, estimated USD] over the requests sent."""
    failures: Counter[str] = field(default_factory=Counter)
    escalators: dict[int, Escalator] = field(default_factory=dict)
    price_table: Any = None

    def docs(self, req: Request) -> list[Document]:
        root = self.roots[req.dev]
        out = []
        for i in req.files:
            path = root / self.repo[i].rel
            out.append(Document(path.as_uri(), str(path), self.repo[i].text, 1))
        return out

    def task(self, req: Request, docs: list[Document]) -> Task:
        return Task(
            kind=req.kind,
            uri=docs[0].uri,
            start_line=req.start_line,
            end_line=req.end_line,
            instruction=req.instruction,
            files=tuple(d.uri for d in docs[1:]),
            diagnostic=req.diagnostic,
        )

    def escalator(self, dev: int) -> Escalator:
        """One per developer, as each runs their own server (its own loop guard and breaker)."""
        if dev not in self.escalators:
            self.escalators[dev] = BenchEscalator(
                self.settings, self.roots[dev], default_model_path
            )
        return self.escalators[dev]

    def escalation_cost(self, provider: str, tokens: Tokens) -> float:
        return cost_of(provider, tokens, self.settings)

    def record(self, req: Request, entry: Entry, weight: float = 1.0) -> None:
        uid = self.ledger.record(entry)
        self.klass[uid] = req.klass
        self.weight[uid] = weight

    def record_outcome(
        self, req: Request, docs: list[Document], outcome: Outcome, status: str, weight: float
    ) -> None:
        """As ``Actions._record`` does it."""
        entry = ledger_entry(
            outcome,
            status,
            self.settings,
            project_root=str(self.roots[req.dev]),
            project=PROJECT,
            language=language_of(docs[0].path),
            ts=req.ts,
        )
        self.record(req, entry, weight)

    def record_failure(
        self, req: Request, docs: list[Document], why: str, elapsed_ms: float, weight: float
    ) -> None:
        """``Actions._record_failure`` without an answer."""
        self.failures[f"{req.klass}: {why}"] += 1
        entry = Entry(
            task=req.kind,
            outcome="error",
            tier="",
            provider="",
            latency_ms=elapsed_ms,
            project_root=str(self.roots[req.dev]),
            project=PROJECT,
            language=language_of(docs[0].path),
            ts=req.ts,
        )
        self.record(req, entry, weight)

    def decide(self, req: Request) -> Decision:
        docs = self.docs(req)
        decision = self.escalator(req.dev).decide(self.task(req, docs), docs)
        self.decisions[req.klass][decision.tier] += 1
        return decision

    def note(self, req: Request, decision: Decision, routed: bool) -> None:
        est = self.estimates[req.klass]
        est[0] += decision.est_tokens
        est[1] += decision.est_cost_usd
        if routed:
            self.decisions[req.klass][decision.tier] += 1

    async def escalate(self, req: Request, weight: float = 1.0, routed: bool = True) -> None:
        """``Actions.execute`` without the editor: run it, record what it cost. ``routed``:
        count its tier among the router's decisions (not yet counted)."""
        docs = self.docs(req)
        task = self.task(req, docs)
        escalator = self.escalator(req.dev)
        t0 = time.perf_counter()
        try:
            outcome = await escalator.run(task, docs)
        except DiffError as exc:
            answered = getattr(exc, "outcome", None)
            if answered is None:
                self.note(req, escalator.decide(task, docs), routed)
                self.record_failure(req, docs, f"DiffError {exc}", 0.0, weight)
            else:
                self.note(req, answered.decision, routed)
                self.failures[f"{req.klass}: the answer's diff did not apply"] += 1
                self.record_outcome(req, docs, answered, "error", weight)
            return
        except NearlineError as exc:
            elapsed = (time.perf_counter() - t0) * 1000
            self.note(req, escalator.decide(task, docs), routed)
            self.record_failure(req, docs, f"{type(exc).__name__}: {exc}"[:160], elapsed, weight)
            return
        self.note(req, outcome.decision, routed)
        self.record_outcome(req, docs, outcome, "ok", weight)


async def run_all(run: Run, requests: list[Request], concurrency: int, progress: bool) -> int:
    """Every request, in simulated-time order, ``concurrency`` escalations in flight."""
    slots = asyncio.Semaphore(concurrency)
    pending: set[asyncio.Task[None]] = set()
    sent = 0
    started = time.perf_counter()
    escalations = sum(1 for r in requests if r.klass != "autocomplete")

    async def one(req: Request, seq: int) -> None:
        SENDING.set((req.ts, seq))  # this task's own context
        try:
            await run.escalate(req)
        finally:
            slots.release()

    for req in requests:
        if req.klass == "autocomplete":
            main = run.roots[req.dev] / run.repo[req.seed % len(run.repo)].rel
            run.record(req, completion_entry(req, str(run.roots[req.dev]), str(main)))
            run.decisions[req.klass]["local"] += 1
            continue
        await slots.acquire()
        task = asyncio.create_task(one(req, sent))
        pending.add(task)
        task.add_done_callback(pending.discard)
        sent += 1
        if sent % 5000 == 0:
            run.ledger.flush(60)  # keep the ledger's queue short (it drops rows past 100k)
            if progress:
                rate = sent / (time.perf_counter() - started)
                print(
                    f"  {sent}/{escalations} escalations sent ({rate:.0f}/s)",
                    file=sys.stderr,
                    flush=True,
                )
    if pending:
        await asyncio.gather(*pending)
    return sent


async def run_sample(
    run: Run, requests: list[Request], sample: int, seed: int, max_prompt: int
) -> int:
    """Route every request; send ``sample`` per class through the server, each standing for
    its class's share. Only requests whose estimated prompt fits ``max_prompt`` are drawn."""
    rng = random.Random(seed + 1)
    by_class: dict[str, list[Request]] = defaultdict(list)
    fits: dict[str, list[Request]] = defaultdict(list)
    for req in requests:
        if req.klass == "autocomplete":
            main = run.roots[req.dev] / run.repo[req.seed % len(run.repo)].rel
            run.record(req, completion_entry(req, str(run.roots[req.dev]), str(main)))
            run.decisions[req.klass]["local"] += 1
        else:
            decision = run.decide(req)
            by_class[req.klass].append(req)
            if decision.est_tokens * 1.25 <= max_prompt:
                fits[req.klass].append(req)
    sent = 0
    for klass, reqs in by_class.items():
        chosen = rng.sample(fits[klass], min(sample, len(fits[klass])))
        for req in chosen:
            t0 = time.perf_counter()
            await run.escalate(req, weight=len(reqs) / len(chosen), routed=False)
            print(
                f"  {LABELS[klass]}: {req.kind} on {len(req.files)} file(s), "
                f"{time.perf_counter() - t0:.0f} s",
                file=sys.stderr,
                flush=True,
            )
            sent += 1
    return sent


# -- the report ------------------------------------------------------------------------------

TOKEN_COLUMNS = ("input_tokens", "cache_read_tokens", "cache_write_tokens", "output_tokens")


def tokens_of(rows: Sequence[tuple[dict[str, Any], float]]) -> Tokens:
    sums = [math.fsum(float(r[c] or 0) * w for r, w in rows) for c in TOKEN_COLUMNS]
    return Tokens(*(round(s) for s in sums))


def cloud_tokens_of(rows: Sequence[tuple[dict[str, Any], float]]) -> Tokens:
    """The rows' tokens as a cloud model would bill the same requests."""
    billed = [(as_cloud_request(r), w) for r, w in rows]
    sums = [
        math.fsum(getattr(t, f) * w for t, w in billed)
        for f in ("input", "cache_read", "cache_write", "output")
    ]
    return Tokens(*(round(x) for x in sums))


def usd_of(rows: Sequence[tuple[dict[str, Any], float]]) -> float:
    return math.fsum(float(r["cost_usd"] or 0) * w for r, w in rows)


def share(part: float, whole: float) -> float:
    return part / whole if whole else 0.0


def tier_price(settings: Settings, table: Any, tier: str) -> tuple[str, Price]:
    for name in settings.routing.tiers.get(tier, ()):
        p = settings.providers.get(name)
        if p is not None and p.model:
            return p.model, provider_price(p, table)
    return "", Price()


def build_report(
    run: Run,
    args: argparse.Namespace,
    requests: list[Request],
    elapsed_s: float,
    sent: int,
    billed: dict[str, dict[str, int]],
) -> dict[str, Any]:
    run.ledger.flush(120)
    all_rows = run.ledger.rows()
    rows = [(r, run.weight[r["uid"]]) for r in all_rows if r["uid"] in run.klass]
    table = run.price_table
    flag_model, flag_price = flagship(run.settings, table)
    value_model, value_price = tier_price(run.settings, table, "value")
    by_class: dict[str, list[tuple[dict[str, Any], float]]] = defaultdict(list)
    for r, w in rows:
        by_class[run.klass[r["uid"]]].append((r, w))
    counts = Counter(r.klass for r in requests)
    total_requests = sum(w for _, w in rows)

    def group(items: Sequence[tuple[dict[str, Any], float]]) -> dict[str, Any]:
        tokens = tokens_of(items)
        n = sum(w for _, w in items)
        tiers = Counter()
        for r, w in items:
            tiers[r["tier"] or "(failed)"] += w
        cost = usd_of(items)
        billed = cloud_tokens_of(items)  # local KV-cache reads are uncached input to a cloud
        flag = flag_price.cost(billed)
        value = value_price.cost(billed)
        sent_in = tokens.input + tokens.cache_read + tokens.cache_write
        return {
            "requests": round(n),
            "rows": len(items),
            "tiers": {t: round(c) for t, c in sorted(tiers.items())},
            "tier_share": {t: share(c, n) for t, c in sorted(tiers.items())},
            "tokens": dataclasses.asdict(tokens) | {"total": tokens.total},
            "cache_read_share": share(tokens.cache_read, sent_in),
            "cost_usd": cost,
            "all_flagship_usd": flag,
            "all_value_usd": value,
            "saved_vs_flagship": share(flag - cost, flag),
            "saved_vs_value": share(value - cost, value),
            "outcomes": dict(Counter(r["outcome"] for r, _ in items)),
        }

    classes = {k: group(by_class[k]) for k in CLASSES if k in by_class}
    total = group(rows)
    for k in classes:
        classes[k]["share_of_requests"] = share(classes[k]["requests"], total_requests)
        classes[k]["share_of_all_flagship_usd"] = share(
            classes[k]["all_flagship_usd"], total["all_flagship_usd"]
        )
        if k in run.estimates and classes[k]["rows"]:
            est_tokens, est_usd = run.estimates[k]
            sent_rows = [r for r, _ in by_class[k] if r["outcome"] != "error" or r["tier"]]
            actual = sum(
                r["input_tokens"] + r["cache_read_tokens"] + r["cache_write_tokens"]
                for r in sent_rows
            )
            classes[k]["router_estimate"] = {
                "prompt_tokens": int(est_tokens),
                "actual_prompt_tokens": actual,
                "usd": est_usd,
                "actual_usd": math.fsum(float(r["cost_usd"]) for r in sent_rows),
            }
    on_flagship = {
        k: {
            "requests": classes[k]["requests"] if k in classes else 0,
            "flagship": classes[k]["tiers"].get("flagship", 0) if k in classes else 0,
            "routed_flagship": run.decisions[k].get("flagship", 0),
            "routed": sum(run.decisions[k].values()),
        }
        for k in MUST_BE_FLAGSHIP
    }
    all_on_flagship = all(v["flagship"] == v["requests"] for v in on_flagship.values())
    if args.llama_server:  # the sample says nothing about the others' tiers: the router does
        all_on_flagship = all(v["routed_flagship"] == v["routed"] for v in on_flagship.values())
    savings = total["saved_vs_flagship"]
    flagship_bound = math.fsum(
        classes[k]["all_flagship_usd"] for k in MUST_BE_FLAGSHIP if k in classes
    )
    ceiling = share(total["all_flagship_usd"] - flagship_bound, total["all_flagship_usd"])
    # The same, had those requests' input cost nothing, on both sides: their answers alone.
    pinned_output = math.fsum(
        flag_price.cost(Tokens(output=classes[k]["tokens"]["output"]))
        for k in MUST_BE_FLAGSHIP
        if k in classes
    )
    free_input_ceiling = share(
        total["all_flagship_usd"] - flagship_bound,
        total["all_flagship_usd"] - flagship_bound + pinned_output,
    )
    accounting = [
        (r, w)
        for r, w in rows
        if r["provider"]
        and abs(run.escalation_cost(r["provider"], _row_tokens(r)) - r["cost_usd"]) > 1e-12
    ]
    answered = [r for r, _ in rows if r["cloud"] and r["provider"]]
    no_usage = [r for r in answered if not _row_tokens(r).total]
    unmeasured = [
        k
        for k in CLASSES
        if k != "autocomplete" and counts.get(k) and not any(r["provider"] for r, _ in by_class[k])
    ]
    server_usd = math.fsum(
        (table.get(model) or Price()).cost(
            Tokens(
                input=b.get("prompt_tokens", 0) - b.get("cached_tokens", 0),
                cache_read=b.get("cached_tokens", 0),
                output=b.get("completion_tokens", 0),
            )
        )
        for model, b in billed.items()
    )
    report = {
        "mode": "llama_cpp.server sample" if args.llama_server else "local benchmark server",
        "team": {
            "developers": args.devs,
            "working_days": args.days,
            "requests_per_developer_day": args.per_dev_day,
            "first_day": working_days(args.start, args.days)[0].isoformat(),
            "last_day": working_days(args.start, args.days)[-1].isoformat(),
            "seed": args.seed,
            "mix_percent": args.mix,
        },
        "requests": len(requests),
        "requests_by_class": {k: counts.get(k, 0) for k in CLASSES},
        "escalations_sent_over_http": sent,
        "ledger": {
            "path": str(run.ledger.path),
            "rows": len(rows),
            "days": len({r["day"] for r, _ in rows}),
            "answered_escalations": len(answered),
            "answered_usd": math.fsum(float(r["cost_usd"]) for r in answered),
            "dropped": run.ledger.dropped,
            "rows_whose_cost_differs_from_the_price_table": len(accounting),
        },
        "prices_usd_per_million_tokens": {
            "flagship": {"model": flag_model} | _per_million(flag_price),
            "value": {"model": value_model} | _per_million(value_price),
        },
        "routed": {
            k: {t: run.decisions[k].get(t, 0) for t in TIERS if run.decisions[k].get(t)}
            for k in CLASSES
        },
        "classes": classes,
        "total": total,
        "complex_and_refactor_on_flagship": on_flagship,
        "every_complex_and_refactor_on_flagship": all_on_flagship,
        "savings_vs_all_flagship": savings,
        "savings_vs_all_value": total["saved_vs_value"],
        "best_possible_savings_with_complex_and_refactor_on_flagship": ceiling,
        "best_possible_savings_were_their_input_free": free_input_ceiling,
        "target": {"min_savings_vs_all_flagship": TARGET_SAVINGS, "all_complex_on_flagship": True},
        "answered_without_usage": len(no_usage),
        "classes_without_an_answer": unmeasured,
        "pass": savings >= TARGET_SAVINGS and all_on_flagship and not no_usage and not unmeasured,
        "failures": dict(run.failures.most_common(20)),
        "server": {
            "billed_requests": sum(b.get("requests", 0) for b in billed.values()),
            "billed_usd": server_usd,
            "by_model": billed,
        }
        if billed
        else None,
        "runtime_s": round(elapsed_s, 1),
    }
    return report


def _row_tokens(r: dict[str, Any]) -> Tokens:
    return Tokens(
        r["input_tokens"], r["cache_read_tokens"], r["cache_write_tokens"], r["output_tokens"]
    )


def _per_million(price: Price) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for f in PRICE_FIELDS:
        value = getattr(price, f)
        out[f] = None if value is None else round(value * 1e6, 6)
    return out


def fmt_usd(value: float) -> str:
    return f"${value:,.2f}" if abs(value) >= 1 else f"${value:.4f}"


def fmt_tokens(n: float) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.1f}{unit}"
    return f"{n:.0f}"


def print_report(report: dict[str, Any], settings_toml: list[str], server: str) -> None:
    team = report["team"]
    print("nearline cost benchmark: a simulated month")
    print(
        f"  {team['developers']} developers x {team['working_days']} working days "
        f"({team['first_day']} .. {team['last_day']}) x {team['requests_per_developer_day']} "
        f"requests a day = {report['requests']:,} requests (seed {team['seed']})"
    )
    mix = ", ".join(f"{LABELS[k]} {v:g}%" for k, v in team["mix_percent"].items())
    print(f"  mix: {mix}")
    print(f"  answers: {server}")
    print(f"  escalations sent over HTTP: {report['escalations_sent_over_http']:,}")
    led = report["ledger"]
    print(f"  ledger: {led['rows']:,} rows over {led['days']} days read back from {led['path']}")
    print(
        f"  ledger: {led['answered_escalations']:,} answered escalations, "
        f"{fmt_usd(led['answered_usd'])}; dropped rows: {led['dropped']}; rows whose cost is "
        f"not the price table's: {led['rows_whose_cost_differs_from_the_price_table']}"
    )
    billed = report.get("server")
    if billed:
        print(
            f"  server: billed {billed['billed_requests']:,} requests, "
            f"{fmt_usd(billed['billed_usd'])} at the same prices"
        )
    print()
    print("policy (.nearline.toml):")
    while settings_toml and not settings_toml[0]:
        settings_toml = settings_toml[1:]
    for line in settings_toml:
        print(f"  {line}" if line else "")
    print()
    prices = report["prices_usd_per_million_tokens"]
    for tier in ("flagship", "value"):
        p = prices[tier]
        cached = p["cache_read_input_token_cost"]
        print(
            f"price, {tier}: {p['model']}: ${p['input_cost_per_token']:g} in, "
            f"${p['output_cost_per_token']:g} out, "
            f"${cached if cached is not None else p['input_cost_per_token']:g} cached "
            "per million tokens"
        )
    print()
    head = (
        f"{'class':<20}{'requests':>9}{'local':>8}{'value':>8}{'flagship':>9}"
        f"{'tokens':>9}{'cached':>8}{'cost':>11}{'all-flagship':>14}{'all-value':>11}{'saved':>7}"
    )
    print(head)
    print("-" * len(head))
    rows = [(LABELS[k], g) for k, g in report["classes"].items()]
    rows.append(("total", report["total"]))
    for label, g in rows:
        ts = g["tier_share"]
        line = (
            f"{label:<20}{g['requests']:>9,}"
            + "".join(f"{ts.get(t, 0):>8.1%}" for t in ("local", "value"))
            + f"{ts.get('flagship', 0):>9.1%}"
            f"{fmt_tokens(g['tokens']['total']):>9}{g['cache_read_share']:>8.0%}"
            f"{fmt_usd(g['cost_usd']):>11}{fmt_usd(g['all_flagship_usd']):>14}"
            f"{fmt_usd(g['all_value_usd']):>11}{g['saved_vs_flagship']:>7.0%}"
        )
        if label == "total":
            print("-" * len(head))
        print(line)
    print()
    t = report["total"]
    tok = t["tokens"]
    print(
        f"tokens: {fmt_tokens(tok['input'])} uncached input, {fmt_tokens(tok['cache_read'])} "
        f"cache reads, {fmt_tokens(tok['cache_write'])} cache writes, "
        f"{fmt_tokens(tok['output'])} output"
    )
    print(
        "share of the all-flagship cost: "
        + ", ".join(
            f"{LABELS[k]} {g['share_of_all_flagship_usd']:.0%}"
            for k, g in report["classes"].items()
        )
    )
    est = [
        (LABELS[k], g["router_estimate"])
        for k, g in report["classes"].items()
        if "router_estimate" in g
    ]
    if est:
        print(
            "router estimate / actual prompt tokens: "
            + ", ".join(
                f"{label} {share(e['prompt_tokens'], e['actual_prompt_tokens']):.2f}"
                for label, e in est
            )
        )
    failures = report["failures"]
    if failures:
        print("not answered or not applied:")
        for why, n in failures.items():
            print(f"  {n:>6}  {why}")
    print()
    print(f"actual cost:             {fmt_usd(t['cost_usd'])}")
    print(
        f"all-flagship cost:       {fmt_usd(t['all_flagship_usd'])}  "
        f"(saved {report['savings_vs_all_flagship']:.1%})"
    )
    print(
        f"all-value cost:          {fmt_usd(t['all_value_usd'])}  "
        f"(saved {report['savings_vs_all_value']:.1%})"
    )
    per_dev = t["cost_usd"] / max(1, report["team"]["developers"])
    print(f"per developer:           {fmt_usd(per_dev)} a month")
    best = report["best_possible_savings_with_complex_and_refactor_on_flagship"]
    print(
        "best possible with every complex and debugging/refactor request on the flagship "
        f"(everything else free): {best:.1%}; were their input tokens free too: "
        f"{report['best_possible_savings_were_their_input_free']:.1%}"
    )
    for k, v in report["complex_and_refactor_on_flagship"].items():
        print(
            f"{LABELS[k]} on the flagship tier: {v['flagship']:,} of {v['requests']:,} in the "
            f"ledger; routed {v['routed_flagship']:,} of {v['routed']:,}"
        )
    if report["answered_without_usage"]:
        print(
            f"WARNING: {report['answered_without_usage']} answers came without token usage "
            "(recorded as 0 tokens, $0): the costs are too low"
        )
    if report["classes_without_an_answer"]:
        names = ", ".join(LABELS[k] for k in report["classes_without_an_answer"])
        print(f"WARNING: no answered request measures {names}: their cost counts as 0")
    ok_savings = report["savings_vs_all_flagship"] >= TARGET_SAVINGS
    ok_tiers = report["every_complex_and_refactor_on_flagship"]
    print()
    print(
        f"target: >= {TARGET_SAVINGS:.0%} cheaper than all-flagship: "
        f"{'yes' if ok_savings else 'no'} ({report['savings_vs_all_flagship']:.1%}); "
        f"every complex and refactor request on flagship: {'yes' if ok_tiers else 'no'}"
    )
    print(f"{'PASS' if report['pass'] else 'FAIL'}  ({report['runtime_s']:.0f} s)")


# -- main ------------------------------------------------------------------------------------


def parse_mix(text: str) -> dict[str, float]:
    mix = dict(DEFAULT_MIX)
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        if name not in mix:
            raise argparse.ArgumentTypeError(f"unknown class {name!r}; known: {', '.join(mix)}")
        try:
            mix[name] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{part!r}: expected CLASS=PERCENT") from None
    if any(v < 0 for v in mix.values()) or not sum(mix.values()):
        raise argparse.ArgumentTypeError("the mix needs non-negative shares, not all 0")
    return mix


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--devs", type=int, default=50, help="developers (50)")
    p.add_argument("--days", type=int, default=21, help="working days (21)")
    p.add_argument("--per-dev-day", type=int, default=30, help="requests a developer-day (30)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--start",
        type=dt.date.fromisoformat,
        default=default_start(dt.date.today()),
        help="first day, YYYY-MM-DD (default: the Monday five weeks ago)",
    )
    p.add_argument("--mix", type=parse_mix, default=dict(DEFAULT_MIX), help="e.g. names=30,...")
    p.add_argument("--files", type=int, default=400, help="files in the synthetic repository")
    p.add_argument("--flagship-model", default="claude-sonnet-4-5")
    p.add_argument("--value-model", default="claude-haiku-4-5")
    p.add_argument("--concurrency", type=int, default=8, help="escalations in flight (8)")
    p.add_argument("--cache-ttl-min", type=float, default=5.0, help="prompt cache TTL (5 min)")
    p.add_argument("--ledger", type=Path, help="keep the ledger here (default: a temp file)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--llama-server", action="store_true", help="answers from llama_cpp.server")
    p.add_argument("--sample", type=int, default=2, help="--llama-server: requests per class")
    p.add_argument("--llama-max-tokens", type=int, default=128, help="--llama-server answers")
    p.add_argument("--llama-n-ctx", type=int, default=16384, help="--llama-server context")
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--tokenizer", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    for name in ("devs", "days", "per_dev_day", "files", "concurrency", "sample"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve:
        serve(args.tokenizer, args.cache_ttl_min * 60)
        return 0
    started = time.perf_counter()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up on kill, too
    tmp = Path(tempfile.mkdtemp(prefix="nearline-bench-costs-"))
    try:
        return bench(args, tmp, started)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def bench(args: argparse.Namespace, tmp: Path, started: float) -> int:
    log: Callable[[str], None] = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731
    rng = random.Random(args.seed)
    repo = make_repo(rng, args.files)
    requests = Month(args, repo).requests()
    log(f"simulated {len(requests):,} requests over {len(repo)} files")
    roots = [tmp / "team" / f"dev{i:02d}" / PROJECT for i in range(args.devs)]
    try:
        tokenizer: str | None = str(default_model_path())
    except NearlineError:
        tokenizer = None
    server = (
        llama_server(tmp, args.llama_n_ctx)
        if args.llama_server
        else fake_cloud(tmp, args.cache_ttl_min, tokenizer)
    )
    ledger_path = args.ledger or tmp / "usage.db"
    with server as (url, counting):
        data = policy(url, args.flagship_model, args.value_model)
        if args.llama_server:  # the 135M model rambles: cap its answers
            # llama_cpp.server sends no usage in a stream (it ignores stream_options), and
            # nearline would record 0 tokens: ask for one JSON answer, which has it.
            body = {"max_tokens": args.llama_max_tokens, "stream": False, "stream_options": None}
            for p in data["providers"].values():
                p["extra_body"] = body
        settings = parse_settings(data, "the benchmark policy")
        ledger = Ledger(ledger_path)
        run = Run(settings, repo, roots, ledger, price_table=price_table_for(settings))
        try:
            if args.llama_server:
                max_prompt = args.llama_n_ctx - args.llama_max_tokens
                sent = asyncio.run(run_sample(run, requests, args.sample, args.seed, max_prompt))
                where = f"llama_cpp.server with {LOCAL_MODEL} at {url} ({args.sample} per class)"
            else:
                log(f"sending the escalations to {url} ({args.concurrency} at a time)")
                sent = asyncio.run(run_all(run, requests, args.concurrency, True))
                where = f"the local benchmark server at {url}; tokens: {counting}"
            stats = {} if args.llama_server else server_stats(url)
            elapsed = time.perf_counter() - started
            report = build_report(run, args, requests, elapsed, sent, stats)
        finally:
            ledger.close()
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print_report(report, toml_lines(data), where)
    return 0 if report["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
