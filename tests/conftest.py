"""Fixtures: an isolated environment, a real ``nearline serve`` over stdio, and llama-cpp-python's
OpenAI-compatible server. Helpers live in ``support``."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from nearline.completion import CompletionService
from support import TEST_DATA
from support import postgres as pg_support
from support.llama_server import llama_cpp_server
from support.lsp_client import Client
from support.postgres import LocalPostgres


@pytest.fixture(autouse=True)
def _isolated_dirs(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In-process code (the CLI's ``main``, sessions) never touches the user's real files."""
    home = tmp_path_factory.mktemp("nearline-home")
    for name, sub in (
        ("NEARLINE_DATA_DIR", "data"),
        ("NEARLINE_CACHE_DIR", "cache"),
        ("NEARLINE_CONFIG", "config.toml"),
    ):
        monkeypatch.setenv(name, str(home / sub))
    monkeypatch.delenv("NEARLINE_LEDGER", raising=False)


@pytest.fixture
def nearline_env(tmp_path: Path) -> dict[str, str]:
    """Environment for a server or CLI run that touches only ``tmp_path``."""
    env = dict(os.environ)
    env.update(
        NEARLINE_CACHE_DIR=str(tmp_path / "cache"),
        NEARLINE_DATA_DIR=str(tmp_path / "data"),
        NEARLINE_CONFIG=str(tmp_path / "config.toml"),
        PYTHONUNBUFFERED="1",
    )
    env.pop("NEARLINE_CATALOG", None)
    return env


@pytest.fixture
def services() -> Iterator[list[CompletionService]]:
    """Completion services a test makes; closed after it."""
    made: list[CompletionService] = []
    yield made
    for service in made:
        service.close()


@pytest.fixture
async def client(nearline_env: dict[str, str]) -> AsyncIterator[Client]:
    c = Client()
    await c.start(nearline_env)
    try:
        yield c
    finally:
        await c.finish()


@pytest.fixture(scope="session")
def postgres() -> Iterator[LocalPostgres]:
    """A real PostgreSQL server for the session (skipped, saying how to get one, without)."""
    if not pg_support.available():
        pytest.skip(f"team tests need a real PostgreSQL: {pg_support.INSTALL_HINT}")
    server = LocalPostgres()
    server.start()
    yield server
    server.destroy()


@pytest.fixture
def team_url(postgres: LocalPostgres, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh team database; its URL is also in ``NEARLINE_TEAM_URL``."""
    url = pg_support.new_database(postgres)
    monkeypatch.setenv("NEARLINE_TEAM_URL", url)
    return url


@pytest.fixture
def sample_text() -> str:
    return (TEST_DATA / "sample.py").read_text()


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``python -m llama_cpp.server`` (llama-cpp-python's OpenAI-compatible server) with the
    default model on 127.0.0.1; yields its base URL (``.../v1``)."""
    with llama_cpp_server(tmp_path_factory.mktemp("llama_server"), threads=None) as (_, url):
        yield url
