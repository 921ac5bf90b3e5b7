"""The embedded llama-cpp-python engine with the real default model."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nearline.catalog import default_model_path
from nearline.completion.engine.base import StopReason
from nearline.completion.engine.llama import LocalEngine
from nearline.completion.scheduler import CancelFlag
from nearline.config import ModelSettings
from nearline.errors import ModelError, ModelNotFoundError

PROMPT = "def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1) +"


@pytest.fixture(scope="module")
def engine() -> Iterator[LocalEngine]:
    e = LocalEngine(default_model_path(), ModelSettings())
    e.load()
    yield e


def never(_text: str) -> None:
    return None


def test_default_model_comes_with_the_install() -> None:
    path = default_model_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.is_file()


def test_loads_with_prefix_only_template(engine: LocalEngine) -> None:
    assert engine.template.id == "prefix-only"
    assert engine.model_id == "SmolLM2-135M-Instruct.Q4_1"
    assert "general.name" in engine.metadata


def test_generation_reuses_the_cached_prefix(engine: LocalEngine) -> None:
    cancel = threading.Event()
    tokens = engine.tokenize(PROMPT)
    engine.generate(tokens, max_tokens=4, stop=never, deadline=None, cancel=cancel)
    longer = engine.tokenize(PROMPT + " fib")
    g = engine.generate(longer, max_tokens=4, stop=never, deadline=None, cancel=cancel)
    assert g.prompt_tokens == len(longer)
    assert g.reused_tokens >= len(tokens) - 1
    assert g.evaluated_tokens <= len(longer) - g.reused_tokens
    assert g.evaluated_tokens <= 3


def test_greedy_output_is_deterministic(engine: LocalEngine) -> None:
    cancel = threading.Event()
    tokens = engine.tokenize(PROMPT)
    a = engine.generate(tokens, max_tokens=8, stop=never, deadline=None, cancel=cancel)
    engine.generate(
        engine.tokenize("x = 1\n"), max_tokens=2, stop=never, deadline=None, cancel=cancel
    )
    b = engine.generate(tokens, max_tokens=8, stop=never, deadline=None, cancel=cancel)
    assert a.text == b.text and a.text.strip()


def test_stop_rule_cuts_the_text(engine: LocalEngine) -> None:
    g = engine.generate(
        engine.tokenize(PROMPT),
        max_tokens=16,
        stop=lambda t: 3 if len(t) >= 3 else None,
        deadline=None,
        cancel=threading.Event(),
    )
    assert g.stop_reason is StopReason.STOP and len(g.text) == 3


def test_cancel_flag_stops_before_work(engine: LocalEngine) -> None:
    cancel = threading.Event()
    cancel.set()
    g = engine.generate(
        engine.tokenize(PROMPT + " other"), max_tokens=16, stop=never, deadline=None, cancel=cancel
    )
    assert g.stop_reason is StopReason.CANCELLED and g.text == ""


def test_cancel_from_another_thread_stops_within_a_step(engine: LocalEngine) -> None:
    cancel = threading.Event()
    long_prompt = PROMPT + "\n" + "\n".join(f"value_{i} = compute({i}) * {i}" for i in range(60))
    timer = threading.Timer(0.05, cancel.set)
    t0 = time.perf_counter()
    timer.start()
    g = engine.generate(
        engine.tokenize(long_prompt), max_tokens=64, stop=never, deadline=None, cancel=cancel
    )
    elapsed = time.perf_counter() - t0
    assert g.stop_reason is StopReason.CANCELLED
    # A cold evaluation of this prompt takes seconds; cancellation lands after one batch.
    assert elapsed < 2.0


def test_time_budget_returns_partial_text_of_one_token_at_least(engine: LocalEngine) -> None:
    g = engine.generate(
        engine.tokenize(PROMPT),
        max_tokens=64,
        stop=never,
        deadline=time.perf_counter() - 1,
        cancel=threading.Event(),
    )
    assert g.stop_reason is StopReason.BUDGET and len(g.tokens) == 1  # one token at least


def test_forced_prefix_heals_the_indentation(engine: LocalEngine) -> None:
    prompt = 'def is_even(n):\n    """Return True if n is even."""\n'
    deadline = time.perf_counter() + 5
    while engine._space_pieces is None and time.perf_counter() < deadline:
        time.sleep(0.05)
    g = engine.generate(
        engine.tokenize(prompt),
        max_tokens=12,
        stop=never,
        deadline=None,
        cancel=threading.Event(),
        forced_prefix="    ",
    )
    assert g.text.startswith("    ") and g.text.strip()


def test_missing_and_corrupt_files_raise_model_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        LocalEngine(tmp_path / "missing.gguf", ModelSettings()).load()
    not_gguf = tmp_path / "x.gguf"
    not_gguf.write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    with pytest.raises(ModelError, match="not a GGUF file"):
        LocalEngine(not_gguf, ModelSettings()).load()
    truncated = tmp_path / "t.gguf"
    truncated.write_bytes(default_model_path().read_bytes()[:100_000])
    with pytest.raises(ModelError, match="could not be loaded"):
        LocalEngine(truncated, ModelSettings()).load()


LONG = PROMPT + "\n" + "\n".join(f"value_{i} = compute({i}) * {i}" for i in range(20))


def test_a_cancel_stops_inside_a_decode_and_leaves_the_cache_sound() -> None:
    # One batch holds the whole prompt: only the abort callback can stop it before it ends.
    engine = LocalEngine(default_model_path(), ModelSettings(n_batch=512, n_threads=1))
    engine.load()
    tokens = engine.tokenize(LONG)
    t0 = time.perf_counter()
    whole = engine.generate(tokens, max_tokens=8, stop=never, deadline=None, cancel=CancelFlag())
    cold_s = time.perf_counter() - t0
    engine.generate(
        engine.tokenize("x = 1\n"), max_tokens=1, stop=never, deadline=None, cancel=CancelFlag()
    )
    cancel = CancelFlag()
    timer = threading.Timer(0.02, cancel.set)
    t0 = time.perf_counter()
    timer.start()
    g = engine.generate(tokens, max_tokens=8, stop=never, deadline=None, cancel=cancel)
    stopped_s = time.perf_counter() - t0
    assert g.stop_reason is StopReason.CANCELLED and g.evaluated_tokens == 0
    assert stopped_s < cold_s / 3, (stopped_s, cold_s)
    # What the stopped batch left behind is not reused: the same prompt gives the same text.
    again = engine.generate(tokens, max_tokens=8, stop=never, deadline=None, cancel=CancelFlag())
    assert again.text == whole.text and again.stop_reason is StopReason.LENGTH
    assert again.reused_tokens <= 2


def test_a_stop_leaves_the_last_token_for_whoever_goes_on(engine: LocalEngine) -> None:
    tokens = engine.tokenize(PROMPT)
    first = engine.generate(tokens, max_tokens=3, stop=never, deadline=None, cancel=CancelFlag())
    assert first.stop_reason is StopReason.LENGTH and len(first.tokens) == 3
    rest = engine.generate(
        [*tokens, *first.tokens], max_tokens=3, stop=never, deadline=None, cancel=CancelFlag()
    )
    assert rest.evaluated_tokens == 1  # the last token of the first part, evaluated now
    whole = engine.generate(tokens, max_tokens=6, stop=never, deadline=None, cancel=CancelFlag())
    assert first.tokens + rest.tokens == whole.tokens


def test_a_forced_indentation_is_never_followed_by_more_whitespace() -> None:
    from nearline.completion.engine.llama import _fits_forced

    four = b"    "
    assert _fits_forced(b"  ", four) and _fits_forced(b"    ", four)
    assert _fits_forced(b"    def", four) and _fits_forced(b"    return", four)
    assert not _fits_forced(b"       def", four) and not _fits_forced(b"     ", four)
    assert not _fits_forced(b"    \t", four) and not _fits_forced(b"x", four)
