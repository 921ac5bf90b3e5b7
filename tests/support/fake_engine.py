"""A ``CompletionEngine`` for fast service-level tests: one token per character, an answer
chosen by the prompt, a fixed time per token, and the llama engine's contract (a stop rule,
the time budget after at least one token, cancellation between tokens, carrying on after
tokens it generated)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from nearline.completion.engine.base import Generation, StopReason, StopRule
from nearline.completion.engine.templates import FimTemplate, get_template


class FakeEngine:
    model_id = "fake-model"

    def __init__(
        self,
        answer: str | Callable[[str], str] = "answer",
        *,
        token_s: float = 0.0,
        template: FimTemplate | None = None,
        logprob: float = 0.0,
    ) -> None:
        self.answer_for = answer if callable(answer) else (lambda _prompt: answer)
        self.token_s = token_s
        """Seconds each generated token takes (waited on the cancel flag)."""
        self.logprob = logprob
        """log P the model gives each token it generates."""
        self.template = template or get_template("prefix-only")
        self.calls: list[str] = []
        """The prompt of every ``generate``, in order (a carry-on's too)."""
        self.threads: list[str] = []
        self.prefills = 0
        self._last: tuple[tuple[int, ...], str] | None = None

    def counters(self) -> dict[str, int]:
        return {}

    def close(self) -> None:
        pass

    def tokenize(self, text: str) -> list[int]:
        return [ord(ch) for ch in text]

    def prefill(self, tokens: Sequence[int], cancel: threading.Event) -> int:
        self.prefills += 1
        return len(tokens)

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
        t0 = time.perf_counter()
        tokens = tuple(tokens)
        self.threads.append(threading.current_thread().name)
        prompt, done = self._prompt_and_done(tokens)
        self.calls.append(prompt)
        answer = self.answer_for(prompt)
        if not done:
            self._last = (tuple(self.tokenize(prompt)), answer)
        out: list[int] = []
        text = ""
        reason = StopReason.LENGTH
        for ch in answer[len(done) :]:
            if len(out) >= max_tokens:
                break
            if cancel.is_set() or (self.token_s and cancel.wait(self.token_s)):
                reason = StopReason.CANCELLED
                break
            out.append(ord(ch))
            text = "".join(map(chr, out))
            cut = stop(done + text)
            if cut is not None:
                text = text[: max(0, cut - len(done))]
                reason = StopReason.STOP
                break
            if deadline is not None and time.perf_counter() + self.token_s >= deadline:
                reason = StopReason.BUDGET
                break
        else:
            reason = StopReason.STOP
        return Generation(
            text=text,
            tokens=tuple(out),
            stop_reason=reason,
            prompt_tokens=len(tokens),
            reused_tokens=0,
            evaluated_tokens=len(tokens),
            eval_ms=0.0,
            generate_ms=(time.perf_counter() - t0) * 1000,
            logprobs=(self.logprob,) * len(out),
        )

    def _prompt_and_done(self, tokens: tuple[int, ...]) -> tuple[str, str]:
        """The prompt, and the part of its answer already generated (a carry-on's tokens)."""
        if self._last is not None:
            prompt, answer = self._last
            if tokens[: len(prompt)] == prompt:
                done = "".join(map(chr, tokens[len(prompt) :]))
                if answer.startswith(done):
                    return "".join(map(chr, prompt)), done
        return "".join(map(chr, tokens)), ""
