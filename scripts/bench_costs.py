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
escalation goes through the use case the server runs for a task command
(``app.escalations.Escalations.run``), one per developer as each runs their own server:
routing, budgets, the privacy scan, the prompt (with the project map, built by
``escalation.project_map`` from the synthetic repository's index entries made by
``index.scan_text``: Python files with their definitions, TypeScript files as paths), nearline's
engine for each provider's kind streaming over HTTP (Anthropic's Messages API for the Claude
models, OpenAI's chat completions for others), retries, usage parsing, the answer's diff
checked by ``plan_changes``, and the ledger row costed with the configured price table (the
bundled ``models/prices.json``, prices imported with ``nearline prices import``, the policy's
overrides), refused and failed ones too. The one difference: every provider engine sends
through one httpx transport, passed to the ``Escalator``, that stamps each request with its
simulated time (``costbench.drive``), which is also the project map's clock. Every request is
a row in a real SQLite ``Ledger`` (a temporary file, or ``--ledger PATH``); the report is read
back from the ledger, and checked against what the server billed.

What is simulated: the models. By default nearline's fake server
(``tests/support/fake_provider.py``, as the tests use it), started by this script on 127.0.0.1
in its own process with the responder in ``costbench.provider``, answers every escalation
(``--concurrency`` in flight), on ``/v1/messages`` as Anthropic and on
``/v1/chat/completions`` as OpenAI. It counts tokens with GPT-2's pre-tokenizer scaled to the
embedded model's (SmolLM2) BPE tokenizer, measured on nearline's own source at start (within
~5% of the tokenizer on code and prose); caches prompt prefixes as each provider bills them
(``costbench.caching``; kept ``--cache-ttl-min`` simulated minutes after their last use):
Anthropic only at ``cache_control`` breakpoints past the model's minimum (Sonnet 4.5: 1024
tokens, Haiku 4.5: 4096), reported as ``cache_read_input_tokens`` and
``cache_creation_input_tokens`` (writes are billed at 1.25x the input price); OpenAI
automatically (prefixes of 1024 tokens or more, at message and file boundaries, in 128-token
steps, as ``prompt_tokens_details.cached_tokens``, no writes); and streams an answer of a plausible
length: a diff that applies for refactor (a rename through the selection), fix (one line) and
tests (a new file), Markdown for ask and explain. Each request carries its simulated time and
its place in the month in two headers; the server handles the cache in that order, so a run is
reproducible. Autocomplete is not run: each request is recorded as the LSP server records a
completion by the embedded model.

``--llama-server`` instead starts the real ``python -m llama_cpp.server`` with the embedded
default model, routes every request of the month (``Escalator.decide``), and sends only
``--sample`` requests per class (drawn from those whose prompt fits ``--llama-n-ctx``) through
``Escalator.run``, each standing for its class's share of the month. It is slow (a prompt of
10k tokens takes minutes on 2 CPU cores); answers are capped at ``--llama-max-tokens``, and the
135M model's change answers rarely hold a diff that applies (recorded as the LSP server does:
outcome "error", with their tokens and cost). Token counts are the server's own.

The comparisons use the ledger's tokens. Naive all-flagship is what published all-flagship
team bills assume: every request on the flagship (autocomplete too, its KV-cache reads as
uncached input), no provider caching, each prompt without the project map, and a change to
existing files answered as the whole rewritten files instead of a diff. The same prompts on
the flagship ("all-flagship") prices every request's ledger tokens (cache reads and writes as
billed) at the flagship's model, as ``nearline usage`` does; all-value at the value tier's
model. The levers (``costbench.levers``) are the steps from the naive bill to the actual one:
diffs, provider caching (the map's own tokens count against it), the local model, routing;
they add up to the whole saving. "Best possible" is the savings against the same prompts on
the flagship if everything but complex logic and debugging/refactor had cost nothing; the
second bound also takes those requests' input tokens as free. The targets (the issue's): at
least 80% cheaper than naive all-flagship, with every complex-logic and debugging/refactor
request on the flagship tier; at least 88% of the flagship tier's input tokens read from the
provider cache. Exit status: 0 when they are met, 1 when not, 2 on a usage error.

    .venv/bin/python scripts/bench_costs.py                  # ~31,500 requests, ~4 min
    .venv/bin/python scripts/bench_costs.py --per-dev-day 60 --json   # ~8 min
    .venv/bin/python scripts/bench_costs.py --mix names=40,complex=5
    .venv/bin/python scripts/bench_costs.py --no-map          # the prompts without the project map
    .venv/bin/python scripts/bench_costs.py --llama-server --sample 1  # 15-20 min

Only 127.0.0.1 is contacted. The servers and the temporary files are removed at exit.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import random
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "scripts"), str(ROOT / "server"), str(ROOT / "tests")]

from costbench.drive import Run, run_all, run_sample  # noqa: E402
from costbench.policy import parse_mix, policy, toml_lines  # noqa: E402
from costbench.provider import (  # noqa: E402
    Tokenizer,
    fake_cloud,
    llama_server,
    serve,
    server_stats,
)
from costbench.report import build_report  # noqa: E402
from costbench.text import print_report  # noqa: E402
from costbench.workload import (  # noqa: E402
    DEFAULT_MIX,
    LOCAL_MODEL,
    PROJECT,
    Month,
    default_start,
    make_repo,
)
from nearline.accounting.ledger import Ledger  # noqa: E402
from nearline.accounting.prices import table_for as price_table_for  # noqa: E402
from nearline.catalog import default_model_path  # noqa: E402
from nearline.config import parse_settings  # noqa: E402
from nearline.errors import NearlineError  # noqa: E402


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
    p.add_argument("--no-map", action="store_true", help="no project map in the prompts")
    p.add_argument(
        "--map-ttl",
        choices=("5m", "1h"),
        help="the map's cache lifetime (project_map.cache_ttl; default: the setting's)",
    )
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
        data = policy(url, args.flagship_model, args.value_model, not args.llama_server)
        if args.no_map:
            data["project_map"] = {"enable": False}
        elif args.map_ttl:
            data["project_map"] = {"cache_ttl": args.map_ttl}
        if args.llama_server:  # the 135M model rambles: cap its answers
            # llama_cpp.server sends no usage in a stream (it ignores stream_options), and
            # nearline would record 0 tokens: ask for one JSON answer, which has it.
            body = {"max_tokens": args.llama_max_tokens, "stream": False, "stream_options": None}
            for p in data["providers"].values():
                p["extra_body"] = body
        settings = parse_settings(data, "the benchmark policy")
        ledger = Ledger(ledger_path)
        run = Run(settings, repo, roots, ledger, price_table=price_table_for(settings))
        run.count = Tokenizer(tokenizer).count  # the server's count, for the naive baseline
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
