"""The connection's state: settings that change rebuild what comes from them, through the same
path ``workspace/didChangeConfiguration`` and the config files' watch take."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from nearline.completion import CompletionService
from nearline.completion.cache import CompletionCache
from nearline.config import Settings
from nearline.lsp.state import ServerState
from support.fake_engine import FakeEngine


@pytest.fixture
def state() -> Iterator[ServerState]:
    def fake_service(settings: Settings) -> CompletionService:
        return CompletionService(settings, FakeEngine(), CompletionCache(None))

    made = ServerState(service_factory=fake_service)
    yield made
    made.close()


def test_a_completion_setting_reconfigures_the_service_in_place(state: ServerState) -> None:
    service = state.completions.service
    state.set_editor_options({"completion": {"max_block_lines": 3}})
    changed, error = state.reload()
    assert changed and error is None
    assert state.completions.service is service
    assert service.settings.completion.max_block_lines == 3
    assert state.escalations.escalator.settings is state.settings


def test_a_model_setting_makes_a_new_service(state: ServerState) -> None:
    old = state.completions.service
    built: list[CompletionService] = []
    state.on_new_service = built.append
    state.set_editor_options({"nearline": {"model": {"n_ctx": 4096}}})
    assert state.reload() == (True, None)
    assert built and built[0] is state.completions.service is not old


def test_a_broken_setting_keeps_the_last_good_ones(state: ServerState) -> None:
    state.set_editor_options({"completion": {"max_block_lines": 0}})
    changed, error = state.reload()
    assert not changed and error is not None and "max_block_lines" in str(error)
    assert state.settings.completion.max_block_lines == 8


def test_an_index_setting_makes_a_new_index(state: ServerState, tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("def a(): ...\n")
    (tmp_path / "b.py").write_text("def b(): ...\n")
    state.stack.root = tmp_path
    service = state.completions.service
    state.start_index()
    first = state.index
    assert first is not None and first.built.wait(30) and len(first) == 2
    assert service.project is first
    state.set_editor_options({"index": {"max_files": 1}})
    assert state.reload() == (True, None)
    second = state.index
    assert second is not None and second is not first and second.built.wait(30)
    assert len(second) == 1 and service.project is second
    state.set_editor_options({"index": {"enable": False}})
    state.reload()
    assert state.index is None and service.project is None
