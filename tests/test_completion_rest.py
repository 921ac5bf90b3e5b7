"""Where the cursor rests: a cold window is evaluated short first and becomes the document's
window at once, then the full window follows and takes over; a key typed meanwhile is answered
from the short one. Each document's window (its anchor and cross-file blocks) is kept across a
restart, so the first prompt after it is the one whose state was kept, index ready or not."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from nearline.completion import CompletionService
from nearline.completion.cache import CompletionCache
from nearline.completion.engine.templates import detect_template
from nearline.completion.service import SHORT_PREFIX_CHARS
from nearline.completion.windows import WindowStore
from nearline.config import parse_settings
from nearline.documents import DocumentView, split_lines
from nearline.index.store import ProjectIndex
from support.fake_engine import FakeEngine

MODELS = "class Request:\n    url: str\n\n    def read(self) -> bytes: ...\n"
HEAD = "from pkg._models import Request\n\n\ndef send(r: Request) -> bytes:\n"
BODY = "".join(f"    value_{i} = r.read() + {i}\n" for i in range(60))
TEXT = HEAD + BODY + "    return r."


class RecordingEngine(FakeEngine):
    """Keeps every prefilled prompt; a prefill waits on ``gate`` (if set) until cancelled."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.prefilled: list[str] = []
        self.gate: threading.Event | None = None
        self.warm: set[str] = set()

    def prefill(self, tokens: Sequence[int], cancel: threading.Event) -> int:
        text = "".join(map(chr, tokens))
        if self.gate is not None and len(self.prefilled) >= 1:
            while not cancel.is_set() and not self.gate.is_set():
                time.sleep(0.005)
            if cancel.is_set():
                return 0
        self.prefilled.append(text)
        self.warm.add(text)
        return len(tokens)

    def cached(self, tokens: Sequence[int]) -> int:
        text = "".join(map(chr, tokens))
        return len(tokens) if text in self.warm else 0


@pytest.fixture
def index(tmp_path: Path) -> ProjectIndex:
    root = tmp_path / "p"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "_models.py").write_text(MODELS)
    (root / "pkg" / "client.py").write_text(TEXT)
    built = ProjectIndex(root, None)
    built.refresh()
    return built


def make(
    services: list[CompletionService],
    index: ProjectIndex | None,
    engine: FakeEngine,
    windows: WindowStore | None = None,
) -> CompletionService:
    settings = parse_settings({"completion": {"max_prefix_chars": 1200, "cross_file_chars": 800}})
    service = CompletionService(settings, engine, CompletionCache(None), windows=windows)
    service.project = index
    services.append(service)
    return service


def qwen() -> RecordingEngine:
    return RecordingEngine("x", template=detect_template(["qwen2.5-coder-0.5b"]))


def doc(index: ProjectIndex, text: str = TEXT, version: int = 1) -> DocumentView:
    return DocumentView((index.root / "pkg" / "client.py").as_uri(), version, split_lines(text))


async def rested(service: CompletionService, key: str, timeout_s: float = 5) -> None:
    give_up = time.monotonic() + timeout_s
    while (service.stats.last_rest or {}).get(key) is None:
        assert time.monotonic() < give_up, f"the rest's {key} never came"
        await asyncio.sleep(0.01)


def end(text: str) -> tuple[int, int]:
    lines = text.split("\n")
    return len(lines) - 1, len(lines[-1])


async def test_a_cold_window_is_evaluated_short_then_full(
    services: list[CompletionService], index: ProjectIndex
) -> None:
    engine = qwen()
    service = make(services, index, engine)
    view = doc(index)
    service.rest(view, *end(TEXT), "utf-32")
    await rested(service, "full_ms")
    short, full = engine.prefilled
    assert not short.startswith("<|repo_name|>")  # no cross-file blocks: as short as can be
    assert len(short) < SHORT_PREFIX_CHARS + 100 and short.endswith("    return r.")
    assert full.startswith("<|repo_name|>p\n<|file_sep|>pkg/_models.py\n")
    assert len(full) > len(short) + 200
    assert service.stats.rests == 1 and service.stats.last_rest is not None
    assert 0 < service.stats.last_rest["short_ms"] <= service.stats.last_rest["full_ms"]
    # The full window is the document's now: a request there uses it as evaluated.
    await service.complete(view, *end(TEXT), "utf-32")
    assert engine.calls[-1] == full


async def test_a_key_typed_before_the_full_window_is_answered_from_the_short_one(
    services: list[CompletionService], index: ProjectIndex
) -> None:
    engine = qwen()
    engine.gate = threading.Event()  # the full window's evaluation never ends by itself
    service = make(services, index, engine)
    service.rest(doc(index), *end(TEXT), "utf-32")
    await rested(service, "short_ms")
    (short,) = engine.prefilled
    typed = TEXT + "r"
    await service.complete(doc(index, typed, 2), *end(typed), "utf-32")
    assert engine.calls[-1] == short + "r"  # the short window, one key on
    assert service.stats.last_rest is not None and service.stats.last_rest["full_ms"] is None
    assert engine.prefilled == [short]  # the full window's evaluation was cancelled


async def test_a_window_evaluated_already_is_not_cut_short(
    services: list[CompletionService], index: ProjectIndex
) -> None:
    engine = qwen()
    service = make(services, index, engine)
    view = doc(index)
    await service.complete(view, *end(TEXT), "utf-32")
    engine.warm.add(engine.calls[-1])
    service.rest(view, *end(TEXT), "utf-32")
    await rested(service, "full_ms")
    assert engine.prefilled == [engine.calls[-1]]
    record = service.stats.last_rest
    assert record is not None and record["short_ms"] == record["full_ms"]


async def test_a_newer_rest_cancels_the_one_before(
    services: list[CompletionService], index: ProjectIndex
) -> None:
    engine = qwen()
    engine.gate = threading.Event()
    service = make(services, index, engine)
    service.rest(doc(index), *end(TEXT), "utf-32")
    await rested(service, "short_ms")
    service.rest(doc(index), 3, 0, "utf-32")  # the cursor moved to the top
    engine.gate.set()
    await rested(service, "full_ms")
    assert service.stats.rests == 2
    assert service.stats.last_rest is not None and service.stats.last_rest["line"] == 3
    assert all(not p.endswith("    return r.") for p in engine.prefilled[1:])


async def test_the_window_is_kept_across_a_restart_whatever_the_index_is_doing(
    services: list[CompletionService], index: ProjectIndex, tmp_path: Path
) -> None:
    store = tmp_path / "cache" / "windows.json"
    first_engine = qwen()
    first = make(services, index, first_engine, WindowStore(store))
    await first.complete(doc(index), *end(TEXT), "utf-32")
    before = first_engine.calls[-1]
    assert before.startswith("<|repo_name|>")
    first.close()
    assert store.exists()

    not_ready = ProjectIndex(index.root, None)  # a restart: the index not loaded yet
    again_engine = qwen()
    again = make(services, not_ready, again_engine, WindowStore(store))
    await again.complete(doc(index), *end(TEXT), "utf-32")
    assert again_engine.calls[-1] == before  # the same prompt: its kept state serves it


def test_a_damaged_window_file_is_ignored(tmp_path: Path) -> None:
    store = tmp_path / "windows.json"
    store.write_text("{not json")
    windows = WindowStore(store)
    assert windows.get("file:///a.py") is None
    store.write_text('{"format": 1, "windows": {"file:///a.py": {"anchor": "x"}}}')
    assert WindowStore(store).get("file:///a.py") is None


async def test_a_later_rest_grows_a_short_window_to_the_full_one(
    services: list[CompletionService], index: ProjectIndex
) -> None:
    engine = qwen()
    engine.gate = threading.Event()
    service = make(services, index, engine)
    service.rest(doc(index), *end(TEXT), "utf-32")
    await rested(service, "short_ms")
    typed = TEXT + "r"
    await service.complete(doc(index, typed, 2), *end(typed), "utf-32")  # the short window
    assert not engine.calls[-1].startswith("<|repo_name|>")
    engine.gate.set()
    service.rest(doc(index, typed, 2), *end(typed), "utf-32")  # a pause after typing
    await rested(service, "full_ms")
    await service.complete(doc(index, typed, 2), *end(typed), "utf-32")
    assert engine.calls[-1] == engine.prefilled[-1]  # the full window, as evaluated
    assert engine.calls[-1].startswith("<|repo_name|>p\n<|file_sep|>pkg/_models.py\n")
    window = engine.calls[-1].rsplit("<|file_sep|>pkg/client.py\n", 1)[1]
    assert len(window) > SHORT_PREFIX_CHARS + 100  # a full window, not the short one grown
