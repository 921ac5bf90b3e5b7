"""Kept KV states (switching documents, reopening, restarting) and speculative decoding by
prompt lookup, with the real default model: what comes back is what evaluating again gives."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from nearline.catalog import default_model_path
from nearline.completion.engine.base import Generation
from nearline.completion.engine.kvstate import KvState, KvStates, as_tokens
from nearline.completion.engine.llama import LocalEngine, PromptLookup
from nearline.config import ModelSettings

FILE_A = "def alpha(values):\n    total = 0\n    for value in values:\n" * 12
FILE_B = "class Beta:\n    def __init__(self, name):\n        self.name = name\n" * 12
CANCEL = threading.Event()


def never(_text: str) -> None:
    return None


@pytest.fixture
def make(tmp_path: Path) -> Iterator[object]:
    made: list[LocalEngine] = []

    def engine(
        draft_tokens: int = 3, memory_mb: int = 64, template: str = "auto", kept: bool = True
    ) -> LocalEngine:
        kv = (
            KvStates(
                "test-model",
                memory_bytes=memory_mb << 20,
                disk_dir=tmp_path / "kv",
                disk_bytes=64 << 20,
            )
            if kept
            else None  # no window kept in memory or on disk: everything evaluated anew
        )
        settings = ModelSettings(draft_tokens=draft_tokens, template=template)
        e = LocalEngine(default_model_path(), settings, kv)
        e.load()
        made.append(e)
        return e

    yield engine
    for e in made:
        e.close()


def complete(engine: LocalEngine, text: str, n: int = 6) -> tuple[str, int]:
    g = engine.generate(
        engine.tokenize(text), max_tokens=n, stop=never, deadline=None, cancel=CANCEL
    )
    return g.text, g.reused_tokens


def test_switching_back_to_a_document_restores_its_window(make) -> None:  # type: ignore[no-untyped-def]
    engine = make()
    first, _ = complete(engine, FILE_A)
    complete(engine, FILE_B)
    again, reused = complete(engine, FILE_A)
    assert engine.counters()["kv_memory_restores"] == 1
    assert reused >= len(engine.tokenize(FILE_A)) - 1  # nothing evaluated again
    assert again == first


def test_a_window_warmed_before_a_restart_is_restored_from_disk(make) -> None:  # type: ignore[no-untyped-def]
    def generate(engine: LocalEngine) -> Generation:
        tokens = engine.tokenize(FILE_A)
        return engine.generate(tokens, max_tokens=16, stop=never, deadline=None, cancel=CANCEL)

    fresh = generate(make(kept=False))  # evaluated, nothing kept to restore
    engine = make()
    tokens = engine.tokenize(FILE_A)
    engine.prefill(tokens, CANCEL)
    assert engine.kv_states is not None
    engine.kv_states.flush()
    engine.close()
    restarted = make()
    restored = generate(restarted)
    assert restarted.counters()["kv_disk_restores"] == 1
    assert restored.reused_tokens >= len(tokens) - 1
    # The restored cells are the evaluated ones: the same text, and the same log-probabilities
    # (cells a little off can leave a repetitive window's greedy text as it was).
    assert restored.text == fresh.text
    assert np.allclose(restored.logprobs, fresh.logprobs, rtol=0, atol=1e-3)


def test_a_damaged_state_on_disk_is_skipped_and_counted(make, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    engine = make()
    engine.prefill(engine.tokenize(FILE_A), CANCEL)
    assert engine.kv_states is not None
    engine.kv_states.flush()
    engine.close()
    import diskcache

    with diskcache.Cache(str(tmp_path / "kv")) as disk:
        for key in list(disk.iterkeys()):
            if key.startswith("s:"):
                raw = bytearray(disk[key])
                raw[len(raw) // 2] ^= 0xFF
                disk[key] = bytes(raw)
    restarted = make()
    text, reused = complete(restarted, FILE_A)
    assert reused == 0 and text
    assert restarted.counters()["kv_skipped"] == 1
    assert restarted.counters()["kv_disk_restores"] == 0


def test_a_state_llama_cpp_refuses_is_never_fatal(make) -> None:  # type: ignore[no-untyped-def]
    engine = make()
    tokens = as_tokens(engine.tokenize(FILE_A))
    assert engine.kv_states is not None
    engine.kv_states.remember(KvState(tokens, b"not a llama.cpp state" * 10))
    complete(engine, FILE_B)
    text, reused = complete(engine, FILE_A)
    assert text and reused == 0
    assert engine.counters()["kv_skipped"] == 1


def test_drafts_change_nothing_but_the_speed(make) -> None:  # type: ignore[no-untyped-def]
    plain, drafting = make(draft_tokens=0), make(draft_tokens=4)
    for text in (FILE_A, FILE_B, FILE_A + "def alpha(values):\n    total"):
        assert complete(plain, text, 24)[0] == complete(drafting, text, 24)[0]
    counts = drafting.counters()
    assert counts["drafts_accepted"] > 0 and counts["drafts_offered"] >= counts["drafts_accepted"]
    assert plain.counters()["drafts_offered"] == 0


def test_a_prompt_without_a_suffix_makes_no_scratch_sequence(make) -> None:  # type: ignore[no-untyped-def]
    import llama_cpp

    # Prefix-only: nothing to splice around, no second context. The context itself is asked
    # (its sequences); a template with a suffix shows what the scratch sequence makes of it.
    plain, suffixed = make(), make(template="qwen2.5-coder")
    assert not plain.template.uses_suffix and suffixed.template.uses_suffix
    assert llama_cpp.llama_n_seq_max(plain._llm.ctx) == 1
    assert llama_cpp.llama_n_seq_max(suffixed._llm.ctx) == 2


def test_prompt_lookup_drafts_what_followed_the_last_tokens_before() -> None:
    lookup = PromptLookup([1, 2, 3, 4, 5, 9, 1, 2])
    lookup.add(3)
    assert lookup.draft(3) == [4, 5, 9]
    assert lookup.draft(0) == []
    assert PromptLookup([7, 8]).draft(2) == []
    fresh = PromptLookup(np.arange(10))
    fresh.add(42)
    assert fresh.draft(2) == []


def test_memory_states_are_bounded_and_most_recent_stay() -> None:
    kv = KvStates("m", memory_bytes=3000)
    for i in range(5):
        kv.remember(KvState(as_tokens([i] * 10), b"x" * 900))
    kept = [int(s.tokens[0]) for s in kv._memory.values()]
    assert kept == [2, 3, 4]
    found, state, key = kv.best(as_tokens([3] * 12))
    assert found == 10 and state is not None and key is None


def test_a_keystroke_before_a_suffix_keeps_the_suffix_and_a_warm_up_makes_it_exact(make) -> None:  # type: ignore[no-untyped-def]
    # A FIM-like prompt: the prefix, then a suffix that a keystroke does not change, then one
    # marker token. The keystroke is spliced in before the suffix (the suffix's cells kept).
    # A template with a suffix makes the engine ready to splice; the prompts here are tokens.
    engine, fresh = make(template="qwen2.5-coder"), make()
    suffix = engine.tokenize("\n" + FILE_B)[1:]
    marker = engine.tokenize("\n")[-1:]
    before = engine.tokenize(FILE_A + "    total")
    typed = engine.tokenize(FILE_A + "    total +=")
    assert typed[: len(before) - 1] == before[: len(before) - 1]
    engine.generate(
        before + suffix + marker, max_tokens=4, stop=never, deadline=None, cancel=CANCEL
    )
    spliced = engine.generate(
        typed + suffix + marker, max_tokens=4, stop=never, deadline=None, cancel=CANCEL
    )
    assert engine.counters()["splices"] == 1
    assert spliced.evaluated_tokens <= len(typed) - len(before) + 3  # not the suffix again
    engine.prefill(typed + suffix + marker, CANCEL)  # a warm-up evaluates the kept cells anew
    warm = engine.generate(
        typed + suffix + marker, max_tokens=8, stop=never, deadline=None, cancel=CANCEL
    )
    cold = fresh.generate(
        typed + suffix + marker, max_tokens=8, stop=never, deadline=None, cancel=CANCEL
    )
    assert warm.text == cold.text
