#!/usr/bin/env python3
"""Completion server load benchmark: N simulated developers asking one team completion server
at once, through nearline's own adapters (``completion_servers``: llama-server's ``/infill``,
a raw FIM prompt to an OpenAI-compatible ``/v1/completions``, Ollama's ``/api/generate``).

Each developer is a loop: a fill-in-the-middle request at a random place of a real source file
(``scripts/bench_data/quality/``; prefix up to ``--prefix-chars``, suffix up to
``--suffix-chars``, as nearline's window sends them), streamed to its end, then ``--think-ms``
before the next (a person's next pause; nearline keeps at most one live request per document).
Every developer has its own connection, as each editor's nearline does. Per concurrency it
prints the requests answered, errors and busy answers, time to first token p50/p95, the whole
answer's latency p50/p95, each answer's generation speed (tokens after the first, over the
time after it) and the server's tokens per second over all developers.

    .venv/bin/python scripts/bench_server_load.py --kind llama-server --url http://gpu-box:8080 \\
        --model qwen2.5-coder-1.5b --concurrency 1,10,50 --seconds 30
    .venv/bin/python scripts/bench_server_load.py --kind openai --url http://127.0.0.1:8000/v1 \\
        --model qwen2.5-coder-1.5b --concurrency 1,10,50
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "server"))

from nearline.completion.remote import RemotePrompt  # noqa: E402
from nearline.completion_servers import make_remote  # noqa: E402
from nearline.config.remote import RemoteSettings  # noqa: E402
from nearline.errors import NearlineError  # noqa: E402

SOURCES = ROOT / "scripts" / "bench_data" / "quality"


@dataclass
class Tally:
    ttft_ms: list[float] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)
    speed: list[float] = field(default_factory=list)
    """Tokens a second after the first token, per answer."""
    tokens: int = 0
    """As the server reports them (0 when it does not, as llama-cpp-python's stream)."""
    chars: int = 0
    errors: int = 0
    busy: int = 0
    first_error: str = ""


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def sources() -> list[tuple[str, str]]:
    found = sorted(p for p in SOURCES.rglob("*") if p.is_file() and p.suffix in (".py", ".lua"))
    return [(p.name, p.read_text(encoding="utf-8", errors="replace")) for p in found]


def prompt_at(
    files: list[tuple[str, str]], rng: random.Random, args: argparse.Namespace
) -> RemotePrompt:
    """A cursor at the end of a random line's indentation or mid-line, as a pause is."""
    name, text = rng.choice(files)
    lines = text.splitlines(keepends=True)
    line = rng.randrange(len(lines))
    before = "".join(lines[:line])
    current = lines[line].rstrip("\n")
    column = rng.randrange(len(current) - len(current.lstrip()), len(current) + 1)
    prefix = (before + current[:column])[-args.prefix_chars :]
    suffix = (current[column:] + "\n" + "".join(lines[line + 1 :]))[: args.suffix_chars]
    return RemotePrompt(
        prefix=prefix,
        suffix=suffix,
        path=name,
        max_tokens=args.max_tokens,
        stop=("\n",),
        time_limit_ms=args.time_limit_ms,
    )


async def developer(
    n: int,
    settings: RemoteSettings,
    files: list[tuple[str, str]],
    args: argparse.Namespace,
    until: float,
    tally: Tally,
) -> None:
    engine = make_remote(settings)
    rng = random.Random(f"{args.seed}:{n}")
    try:
        while time.perf_counter() < until:
            prompt = prompt_at(files, rng, args)
            try:
                answer = await engine.complete(prompt)
            except NearlineError as exc:
                tally.errors += 1
                tally.busy += bool(getattr(exc, "busy", False))
                tally.first_error = tally.first_error or str(exc)
                await asyncio.sleep(args.think_ms / 1000)
                continue
            tally.latency_ms.append(answer.latency_ms)
            tally.tokens += answer.generated_tokens
            tally.chars += len(answer.text)
            if answer.first_token_ms is not None:
                tally.ttft_ms.append(answer.first_token_ms)
                rest_s = (answer.latency_ms - answer.first_token_ms) / 1000
                if answer.generated_tokens > 1 and rest_s > 0:
                    tally.speed.append((answer.generated_tokens - 1) / rest_s)
            await asyncio.sleep(args.think_ms / 1000)
    finally:
        await engine.aclose()


async def run_level(
    concurrency: int,
    settings: RemoteSettings,
    files: list[tuple[str, str]],
    args: argparse.Namespace,
) -> dict[str, Any]:
    tally = Tally()
    start = time.perf_counter()
    until = start + args.seconds
    await asyncio.gather(
        *(developer(n, settings, files, args, until, tally) for n in range(concurrency))
    )
    wall = time.perf_counter() - start
    return {
        "developers": concurrency,
        "seconds": round(wall, 1),
        "answers": len(tally.latency_ms),
        "errors": tally.errors,
        "busy": tally.busy,
        "first_error": tally.first_error,
        "ttft_p50_ms": percentile(tally.ttft_ms, 0.5),
        "ttft_p95_ms": percentile(tally.ttft_ms, 0.95),
        "latency_p50_ms": percentile(tally.latency_ms, 0.5),
        "latency_p95_ms": percentile(tally.latency_ms, 0.95),
        "tokens_per_s_each_p50": percentile(tally.speed, 0.5),
        "tokens_per_s_server": tally.tokens / wall if wall and tally.tokens else None,
        "chars_per_s_server": tally.chars / wall if wall else 0.0,
    }


def show(value: float | None, unit: str = "ms") -> str:
    return (
        "-" if value is None else f"{value:,.1f} {unit}" if value < 10 else f"{value:,.0f} {unit}"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--kind", required=True, choices=("llama-server", "openai", "ollama"))
    p.add_argument("--url", required=True, help="the server's base URL (openai: with /v1)")
    p.add_argument(
        "--model", default="qwen2.5-coder-1.5b", help="its model (picks the FIM template)"
    )
    p.add_argument("--template", default="auto")
    p.add_argument("--concurrency", default="1,10,50", help="developers at once, per level")
    p.add_argument("--seconds", type=float, default=30.0, help="each level's length (30)")
    p.add_argument("--think-ms", type=float, default=300.0, help="between a developer's requests")
    p.add_argument("--prefix-chars", type=int, default=3000)
    p.add_argument("--suffix-chars", type=int, default=1000)
    p.add_argument("--max-tokens", type=int, default=48)
    p.add_argument("--time-limit-ms", type=int, default=0, help="t_max_predict_ms (llama-server)")
    p.add_argument("--allow-public", action="store_true", help="the server is on a public address")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", type=Path, help="write the figures here")
    args = p.parse_args(argv)
    settings = RemoteSettings(
        kind=args.kind,
        url=args.url,
        model=args.model,
        template=args.template,
        allow_public=args.allow_public,
        read_timeout_s=120.0,
    )
    files = sources()
    levels = [int(c) for c in args.concurrency.split(",") if c.strip()]
    print(
        f"{args.kind} at {args.url}, model {args.model}; {args.seconds:g} s a level, "
        f"think {args.think_ms:g} ms, max {args.max_tokens} tokens"
    )
    print(
        "| developers | answers | errors (busy) | first token p50 / p95 | answer p50 / p95 "
        "| tokens/s each (p50) | tokens/s server | chars/s server |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    found = []
    for level in levels:
        r = asyncio.run(run_level(level, settings, files, args))
        found.append(r)
        print(
            f"| {level} | {r['answers']} | {r['errors']} ({r['busy']}) | "
            f"{show(r['ttft_p50_ms'])} / {show(r['ttft_p95_ms'])} | "
            f"{show(r['latency_p50_ms'])} / {show(r['latency_p95_ms'])} | "
            f"{show(r['tokens_per_s_each_p50'], 'tok/s')} | "
            f"{show(r['tokens_per_s_server'], 'tok/s')} | {r['chars_per_s_server']:,.1f} |",
            flush=True,
        )
        if r["first_error"]:
            print(f"  first error: {r['first_error']}")
    if args.json:
        args.json.write_text(json.dumps(found, indent=2))
    return 0 if all(r["answers"] for r in found) else 1


if __name__ == "__main__":
    sys.exit(main())
