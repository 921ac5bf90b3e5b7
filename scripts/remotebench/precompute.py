"""Qwen2.5-Coder-1.5B's answers where the typing replay can ask the completion server.

The replay's documents are deterministic: the file is opened with a region's lines replaced by
one line holding the first line's indentation, the region is typed back in (Enter writes the
newline and the next line's indentation), and Tab writes only text that matches the file. So
every document is "the file with the region typed up to character p", p counted in the
region's text. The positions that matter are the region's start, each line start after Enter,
and each pause after a word (``bench_quality.is_pause_after``), for the same regions the replay
types (``pick_regions``, same seed and rng string as ``run_replay``); ``--every-key`` adds the
position after every other keystroke (about ten times as many: the replayed server then
answers the keystrokes between pauses too, instead of "" as misses). A Tab that ends a line
lands on a line start whose ``input_prefix`` is the same as after Enter (the cursor line's
spaces are left out), so that one entry serves both.

The window sent is built as nearline builds it (``nearline.completion.context``: anchored
prefix of ``max_prefix_chars``, less the spaces and tabs before the cursor; whole suffix lines
up to ``max_suffix_chars``); the key reads only its last 800 and first 200 characters, so a
window that starts elsewhere still matches. llama-cpp-python answers with the Qwen FIM prompt,
temperature 0, 32 tokens mid-line and 64 at a line start, stopping at a line end when the
cursor line goes on; positions come in document order so consecutive prompts share their
start (llama-cpp-python keeps the evaluated tokens it shares with the next prompt).
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import bench_quality as bq
from nearline.completion.context import build_context, prompt_prefix
from nearline.documents import split_lines
from nearline.paths import models_download_dir
from remotebench.answers import AnswerTable, Entry, key_of, near_of

MODEL_FILE = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
FIM = "<|fim_prefix|>{prefix}<|fim_suffix|>{suffix}<|fim_middle|>"
STOPS = ["<|endoftext|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>", "<|im_end|>"]
STOPS += ["<|fim_prefix|>"]
MAX_PREFIX_CHARS = 3000
MAX_SUFFIX_CHARS = 1000
LINE_START_TOKENS = 64
MID_LINE_TOKENS = 32
GUESS_S = 6.0
"""Seconds per answer assumed for the first estimate (1.5B Q4_K_M, 2 CPU threads: 3 to 14 s
measured here, on a shared 2-core machine)."""


def default_model() -> Path:
    found = models_download_dir() / MODEL_FILE
    if found.exists():
        return found
    return Path.home() / ".local" / "share" / "nearline" / "models" / MODEL_FILE


@dataclass(frozen=True)
class Position:
    split: str
    file: str
    p: int
    """Characters of the region's text typed."""
    kind: str
    """"start" (where the file is opened), "line" (after Enter), "word" (after a word)."""
    line: int
    column: int
    """0-based, in the file as the replay holds it (code points)."""
    prefix: str
    """``input_prefix`` as nearline sends it."""
    suffix: str
    line_rest: str
    """The rest of the cursor's line (always empty in the replay: the region is removed)."""

    @property
    def key(self) -> str:
        return key_of(self.prefix, self.suffix)

    @property
    def pos_id(self) -> str:
        return f"{self.file}:{self.line + 1}:{self.column + 1} {self.kind}"

    @property
    def line_start(self) -> bool:
        return self.kind in ("start", "line")

    @property
    def max_tokens(self) -> int:
        return LINE_START_TOKENS if self.line_start else MID_LINE_TOKENS

    @property
    def stop(self) -> list[str]:
        return [*STOPS, "\n"] if self.line_rest.strip() else list(STOPS)

    @property
    def prompt(self) -> str:
        return FIM.format(prefix=self.prefix, suffix=self.suffix)


def typed_positions(region: bq.Region, every_key: bool = False) -> list[tuple[int, str]]:
    """(p, kind) where the replay asks and may look: the start, and its pauses (the same
    keystrokes as ``Typist.type_region``); with ``every_key`` also after every other
    keystroke, the region's last one included (kind "key")."""
    target = region.target
    i = len(region.indent)
    found = [(i, "start")]
    while i < len(target):
        text, kind = bq.Typist.next_key(target, i)
        i += len(text)
        if kind and i < len(target):
            found.append((i, kind))
        elif every_key:
            found.append((i, "key"))  # the last keystroke's too
    return found


def layout(
    region: bq.Region,
    p: int,
    anchor: int | None = None,
    max_prefix_chars: int = MAX_PREFIX_CHARS,
    max_suffix_chars: int = MAX_SUFFIX_CHARS,
) -> tuple[str, str, str, int, int, int]:
    """The request nearline makes with the region typed up to ``p``: (input_prefix,
    input_suffix, the rest of the cursor line, line, column, the window's anchor)."""
    head = region.head + region.target[:p]
    text = head + region.tail
    lines = split_lines(text)
    line = head.count("\n")
    column = len(head) - (head.rfind("\n") + 1)
    ctx = build_context(
        lines,
        line,
        column,
        previous_anchor=anchor,
        max_prefix_chars=max_prefix_chars,
        max_suffix_chars=max_suffix_chars,
    )
    return prompt_prefix(ctx), ctx.suffix, ctx.line_suffix, line, column, ctx.anchor


def region_positions(region: bq.Region, split: str, every_key: bool = False) -> list[Position]:
    anchor: int | None = None
    found = []
    for p, kind in typed_positions(region, every_key):
        prefix, suffix, rest, line, column, anchor = layout(region, p, anchor)
        found.append(
            Position(split, region.source.path.name, p, kind, line, column, prefix, suffix, rest)
        )
    return found


def replay_regions(
    args: argparse.Namespace, sets: dict[str, list[bq.Source]]
) -> list[tuple[str, bq.Region]]:
    """The regions ``run_replay`` types, per split, in its order."""
    out = []
    for split, sources in sets.items():
        rng = random.Random(f"{args.seed}:{bq.base_name(split)}:regions")
        out += [(split, r) for r in bq.pick_regions(sources, args.regions, args.lines, rng)]
    return out


def all_positions(args: argparse.Namespace, sets: dict[str, list[bq.Source]]) -> list[Position]:
    """Every position once (by key), in document order: by file, region, then p."""
    regions = replay_regions(args, sets)
    regions.sort(key=lambda sr: (sr[0], str(sr[1].source.path), sr[1].start))
    seen: set[str] = set()
    out = []
    for split, region in regions:
        for pos in region_positions(region, split, args.every_key):
            if pos.key not in seen:
                seen.add(pos.key)
                out.append(pos)
    return out


def estimate(n: int, seconds: float) -> str:
    total = n * seconds
    return f"{total / 60:.0f} min" if total < 5400 else f"{total / 3600:.1f} h"


def run(args: argparse.Namespace) -> int:
    sets = bq.file_sets(args)
    positions = all_positions(args, sets)
    table = AnswerTable.load(Path(args.table))
    todo = [p for p in positions if p.key not in table]
    by_split = {s: sum(1 for p in positions if p.split == s) for s in sets}
    print(
        f"precompute: {len(positions)} positions "
        f"({', '.join(f'{s} {n}' for s, n in by_split.items())}; "
        f"{sum(p.line_start for p in positions)} line starts), {len(positions) - len(todo)} "
        f"already in {args.table}; {len(todo)} to go, about {estimate(len(todo), GUESS_S)} "
        f"at ~{GUESS_S:.0f} s each",
        flush=True,
    )
    if not todo or args.dry_run:
        return 0
    model = Path(args.remote_gguf)
    if not model.exists():
        raise SystemExit(f"{model}: no such model (pull qwen2.5-coder-1.5b, or --remote-gguf)")
    from llama_cpp import Llama

    llm = Llama(
        model_path=str(model), n_ctx=4096, n_threads=args.threads, n_batch=512, verbose=False
    )
    table.meta = {
        "model": model.name,
        "fim": FIM,
        "n_ctx": 4096,
        "temperature": 0,
        "max_tokens": {"line_start": LINE_START_TOKENS, "mid_line": MID_LINE_TOKENS},
        "window": {"max_prefix_chars": MAX_PREFIX_CHARS, "max_suffix_chars": MAX_SUFFIX_CHARS},
    }
    t_start = time.perf_counter()
    for i, pos in enumerate(todo, 1):
        t0 = time.perf_counter()
        out = llm.create_completion(
            pos.prompt,
            max_tokens=pos.max_tokens,
            temperature=0.0,
            top_k=1,
            repeat_penalty=1.0,
            stop=pos.stop,
        )
        answer = str(out["choices"][0]["text"])  # type: ignore[index]
        table.add(pos.key, Entry(answer, pos.split, pos.pos_id, near_of(pos.prefix)))
        took = time.perf_counter() - t0
        each = (time.perf_counter() - t_start) / i
        print(
            f"[{i}/{len(todo)}] {pos.split} {pos.pos_id}: {took:.1f} s, "
            f"{answer[:50]!r}; about {estimate(len(todo) - i, each)} left",
            flush=True,
        )
    print(f"precompute: done, {len(table)} answers in {args.table}", flush=True)
    return 0


def positions_for(
    sources: Sequence[bq.Source], split: str, regions: int, lines: int, seed: int = 1
) -> list[Position]:
    """The positions of ``regions`` regions drawn as the replay draws them (for tests)."""
    rng = random.Random(f"{seed}:{bq.base_name(split)}:regions")
    return [
        pos
        for region in bq.pick_regions(sources, regions, lines, rng)
        for pos in region_positions(region, split)
    ]
