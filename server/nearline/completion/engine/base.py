"""The small interface every completion engine implements."""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from nearline.completion.engine.templates import FimTemplate


class StopReason(enum.Enum):
    STOP = "stop"
    """A stop token, or the caller's stop rule matched."""
    LENGTH = "length"
    """``max_tokens`` generated."""
    BUDGET = "budget"
    """The time budget ran out; the text is what was generated so far (one token at least)."""
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class Generation:
    text: str
    tokens: tuple[int, ...]
    stop_reason: StopReason
    prompt_tokens: int
    reused_tokens: int
    """Prompt tokens already in the KV cache."""
    evaluated_tokens: int
    eval_ms: float
    generate_ms: float
    logprobs: tuple[float, ...] = ()
    """log P of each generated token, as the model gave it (greedy: the most likely)."""


StopRule = Callable[[str], "int | None"]
"""Given the text so far, the index to cut it at to stop now, or None to go on."""


class CompletionEngine(Protocol):
    model_id: str
    template: FimTemplate

    def tokenize(self, text: str) -> list[int]: ...

    def prefill(self, tokens: Sequence[int], cancel: threading.Event) -> int:
        """Evaluate ``tokens`` into the cache (warm-up); returns how many were evaluated."""
        ...

    def generate(
        self,
        tokens: Sequence[int],
        *,
        max_tokens: int,
        stop: StopRule,
        deadline: float | None,
        cancel: threading.Event,
        forced_prefix: str = "",
    ) -> Generation:
        """Greedy completion of ``tokens``, beginning with ``forced_prefix`` (whitespace the
        prompt left out; see ``context.prompt_prefix``). Every call runs on the scheduler's
        one thread."""
        ...

    def counters(self) -> dict[str, int]:
        """What the engine did beyond plain decoding (kept KV states restored, drafts
        accepted, ...), for ``nearline/stats``."""
        ...

    def close(self) -> None:
        """Let go of what the engine keeps (the KV states' disk store)."""
        ...
