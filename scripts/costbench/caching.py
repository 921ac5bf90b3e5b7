"""Provider prompt caches as the providers bill them, for the simulated provider.

OpenAI (automatic): the longest prefix, at a block boundary, seen within the TTL, if at least
1024 tokens, counted in steps of 128; reads at the cached price, no write premium.

Anthropic (explicit): a prefix is cached only at a ``cache_control`` breakpoint (at most 4 a
request) and only when it holds at least the model's minimum (1024 tokens for Sonnet 4.5 and
Opus 4.1, 4096 for Haiku 4.5 and Opus 4.5: Anthropic's prompt caching docs). A request reads the
longest cached breakpoint prefix (``cache_read_input_tokens``), writes from there up to its last
cacheable breakpoint (``cache_creation_input_tokens``, billed at 1.25x input, or 2x for the
part up to a breakpoint marked ``ttl: "1h"``: ``cache_creation.ephemeral_1h_input_tokens``),
and pays full price for the rest (``input_tokens``). An entry lives its lifetime (5 minutes;
an hour for a ``1h`` breakpoint) after its last read or write, each use refreshing it.

Requests are handled in the month's order (the caller serializes them), so a run is
reproducible. Pure Python, no I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

OPENAI_MIN, OPENAI_STEP = 1024, 128
ANTHROPIC_MAX_BREAKPOINTS = 4
ANTHROPIC_MIN = (
    ("haiku-4-5", 4096),
    ("opus-4-5", 4096),
    ("opus-4-6", 4096),
    ("haiku-3", 2048),
    ("", 1024),
)
"""Minimum cacheable prefix by model-name fragment; the first match counts."""


def anthropic_min(model: str) -> int:
    return next(n for fragment, n in ANTHROPIC_MIN if fragment in model)


@dataclass(frozen=True)
class Block:
    text: str
    tokens: int
    breakpoint: bool = False
    """Anthropic: a ``cache_control`` breakpoint ends this block."""
    ttl_s: float | None = None
    """That breakpoint's lifetime (``ttl: "1h"``: 3600); None: the cache's default."""


@dataclass(frozen=True)
class Billed:
    """A request's input tokens as the provider bills them."""

    input: int
    """Neither read from nor written to the cache."""
    cache_read: int = 0
    cache_write: int = 0
    cache_write_1h: int = 0
    """The part of ``cache_write`` up to breakpoints kept an hour."""

    @property
    def prompt(self) -> int:
        return self.input + self.cache_read + self.cache_write


class PromptCache:
    """Cached prefixes (by model and content) and when each was last used."""

    def __init__(self, ttl_s: float = 300.0) -> None:
        self.ttl_s = ttl_s
        self.seen: dict[bytes, float] = {}
        self.lifetime: dict[bytes, float] = {}
        """An entry's own lifetime, where it is not ``ttl_s`` (a 1-hour breakpoint's)."""

    def _fresh(self, key: bytes, now: float) -> bool:
        at = self.seen.get(key)
        ttl = self.lifetime.get(key, self.ttl_s)
        return at is not None and 0 <= now - at <= ttl

    def _touch(self, key: bytes, now: float, ttl_s: float | None = None) -> None:
        self.seen[key] = max(now, self.seen.get(key, now))
        if ttl_s is not None:
            self.lifetime[key] = max(ttl_s, self.lifetime.get(key, 0.0))

    @staticmethod
    def _prefixes(model: str, blocks: Sequence[Block]) -> list[tuple[bytes, int, Block]]:
        """(key, tokens up to and including the block, the block) for each block."""
        digest = hashlib.sha1(model.encode())
        out, upto = [], 0
        for b in blocks:
            digest.update(hashlib.sha1(b.text.encode()).digest())
            upto += b.tokens
            out.append((digest.copy().digest(), upto, b))
        return out

    def openai(
        self, model: str, blocks: Sequence[Block], overhead: int = 0, now: float = 0.0
    ) -> Billed:
        """Automatic caching; the whole prompt is never a cached prefix of itself."""
        total = sum(b.tokens for b in blocks) + overhead
        cached = 0
        for key, upto, _ in self._prefixes(model, blocks)[:-1]:
            if upto < OPENAI_MIN:
                continue
            if self._fresh(key, now):
                cached = max(cached, upto)
            self._touch(key, now)
        if cached:
            cached = OPENAI_MIN + (cached - OPENAI_MIN) // OPENAI_STEP * OPENAI_STEP
        return Billed(total - cached, cached)

    def anthropic(
        self, model: str, blocks: Sequence[Block], overhead: int = 0, now: float = 0.0
    ) -> Billed:
        """Explicit breakpoints: read the longest cached one, write up to the last one."""
        total = sum(b.tokens for b in blocks) + overhead
        least = anthropic_min(model)
        points = [p for p in self._prefixes(model, blocks) if p[2].breakpoint]
        points = [p for p in points[:ANTHROPIC_MAX_BREAKPOINTS] if p[1] >= least]
        read = max((upto for key, upto, _ in points if self._fresh(key, now)), default=0)
        written = max((upto for _, upto, _ in points), default=0)
        hour, before = 0, read
        for _, upto, block in points:  # each segment's lifetime is its breakpoint's
            if upto > before:
                if block.ttl_s is not None and block.ttl_s >= 3600:
                    hour += upto - before
                before = upto
        for key, _, block in points:
            self._touch(key, now, block.ttl_s)
        return Billed(total - written, read, max(0, written - read), hour)
