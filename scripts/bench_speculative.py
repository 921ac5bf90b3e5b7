"""Speculative decoding by prompt lookup: tokens per second on code, with and without drafts.

For each of ``--cuts`` random code lines of the quality benchmark's files (``--split``), the
engine is given the file up to the middle of that line (the server's prefix window and the
model's template) and generates up to ``--max-tokens`` tokens, greedy, with no deadline, once
with ``model.draft_tokens = 0`` and once with ``--draft-tokens``; the prompt is evaluated
before the clock starts, so only generation is timed. Greedy decoding makes both outputs the
same (checked and counted). Prints tokens/s for both, the gain, and how many drafts the model
accepted.

    .venv/bin/python scripts/bench_speculative.py [--model F.gguf] [--cuts 30]
"""

from __future__ import annotations

import argparse
import random
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "server"))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_quality import MANIFEST, load_manifest, pick_cuts  # noqa: E402
from nearline.catalog import resolve_model_path  # noqa: E402
from nearline.completion.context import build_context  # noqa: E402
from nearline.completion.engine.llama import LocalEngine  # noqa: E402
from nearline.completion.service import build_prompt  # noqa: E402
from nearline.config import ModelSettings, Settings  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="a GGUF (default: what the server resolves)")
    parser.add_argument("--template", default="auto")
    parser.add_argument("--split", default="all", choices=["tune", "held-out", "all"])
    parser.add_argument("--cuts", type=int, default=30)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--draft-tokens", type=int, default=3, help="compared with 0 (default 3)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.draft_tokens < 1:
        parser.error("--draft-tokens: at least 1 (it is compared with none)")

    settings = Settings()
    path = Path(args.model) if args.model else resolve_model_path(settings.model)
    sources = [s for s in load_manifest(MANIFEST) if args.split in ("all", s.split)]
    cuts = pick_cuts(sources, args.cuts, "any", random.Random(args.seed))

    engines = {}
    for drafts in (0, args.draft_tokens):
        engine = LocalEngine(path, ModelSettings(template=args.template, draft_tokens=drafts))
        engine.load()
        engines[drafts] = engine
    totals = {d: [0, 0.0] for d in engines}
    same = 0
    for cut in cuts:
        source = cut.source
        ctx = build_context(
            list(source.lines),
            cut.line,
            cut.column,
            previous_anchor=None,
            max_prefix_chars=settings.completion.max_prefix_chars,
            max_suffix_chars=settings.completion.max_suffix_chars,
        )
        texts = []
        for drafts, engine in engines.items():
            tokens = engine.tokenize(build_prompt(engine.template, ctx, source.path.name))
            engine.prefill(tokens, threading.Event())
            t0 = time.perf_counter()
            out = engine.generate(
                tokens,
                max_tokens=args.max_tokens,
                stop=lambda text: None,
                deadline=None,
                cancel=threading.Event(),
            )
            totals[drafts][0] += len(out.tokens)
            totals[drafts][1] += time.perf_counter() - t0
            texts.append(out.text)
        same += texts[0] == texts[-1]
    base, spec = (totals[d][0] / totals[d][1] for d in engines)
    drafted = engines[args.draft_tokens].counters()
    print(
        f"model {path.name}, template {engines[0].template.id}, {len(cuts)} cuts, "
        f"up to {args.max_tokens} tokens each, split {args.split}"
    )
    print(f"no drafts      {base:6.1f} tokens/s ({totals[0][0]} tokens)")
    print(
        f"{args.draft_tokens} draft tokens {spec:6.1f} tokens/s  gain {spec / base - 1:+.0%}; "
        f"drafts accepted {drafted.get('drafts_accepted', 0)} of "
        f"{drafted.get('drafts_offered', 0)}; same output {same}/{len(cuts)}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
