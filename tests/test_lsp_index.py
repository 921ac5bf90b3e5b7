"""The project index as the real server keeps it: built in a process of its own after
``initialized``, an edited document's symbols in it once the edits settle (or on save), and
reused after a restart without reading unchanged files again."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import diskcache
from lsprotocol import types

from nearline.paths import project_store
from support.lsp_client import Client

OPTIONS = {"completion": {"warmup": False}}


async def index_stats(client: Client, timeout_s: float = 60) -> dict[str, Any]:
    """The index's figures once its build is done."""
    give_up = time.monotonic() + timeout_s
    while True:
        index = (await client.stats()).get("index") or {}
        if index.get("last_refresh") or time.monotonic() > give_up:
            return index
        await asyncio.sleep(0.1)


def stored_symbols(env: dict[str, str], root: Path, rel: str) -> list[str]:
    """The names the server's index store holds for ``rel`` (read as another process)."""
    store = project_store(Path(env["NEARLINE_CACHE_DIR"]), "index", root)
    with diskcache.Cache(str(store)) as disk:
        record = disk.get(rel)
    return [s.name for s in record.entry.symbols] if record is not None else []


async def poll(check: Any, timeout_s: float) -> bool:
    give_up = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > give_up:
            return False
        await asyncio.sleep(0.05)
    return True


def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    (root / "pkg").mkdir(parents=True)
    (root / ".gitignore").write_text("ignored/\n")
    (root / "ignored").mkdir()
    (root / "ignored" / "x.py").write_text("def hidden(): ...\n")
    for i in range(30):
        (root / "pkg" / f"m{i}.py").write_text(f"def f{i}(a: int) -> int:\n    return a\n")
    return root


async def test_the_index_is_built_updated_and_reused(
    nearline_env: dict[str, str], tmp_path: Path
) -> None:
    root = workspace(tmp_path)
    client = Client()
    await client.start(nearline_env, OPTIONS, root=root)
    try:
        index = await index_stats(client)
        assert index["ready"] and index["files"] == 30  # the ignored folder is not indexed
        assert index["last_refresh"]["parsed"] == 30
        generation = index["generation"]

        uri = (root / "pkg" / "m0.py").as_uri()
        client.open(uri, "def f0(a: int) -> int:\n    return a\n")
        client.insert(uri, 2, 0, "def g(b: str) -> str: ...\n")
        assert stored_symbols(nearline_env, root, "pkg/m0.py") == ["f0"]
        # the edits settle (2 s): the document's symbols go into the index
        assert await poll(lambda: "g" in stored_symbols(nearline_env, root, "pkg/m0.py"), 10)
        assert (await index_stats(client))["generation"] > generation

        # A save goes in at once, before the settle timer fires.
        client.insert(uri, 3, 0, "def h() -> None: ...\n")
        save = types.DidSaveTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
        client.text_document_did_save(save)
        found = lambda: "h" in stored_symbols(nearline_env, root, "pkg/m0.py")  # noqa: E731
        assert await poll(found, 1.5)
        assert stored_symbols(nearline_env, root, "pkg/m0.py") == ["f0", "g", "h"]

        generation = (await index_stats(client))["generation"]
        client.text_document_did_save(save)
        await asyncio.sleep(0.5)
        assert (await index_stats(client))["generation"] == generation  # same text: no change
    finally:
        await client.finish()

    (root / "pkg" / "new.py").write_text("class New: ...\n")
    again = Client()
    await again.start(nearline_env, OPTIONS, root=root)
    try:
        index = await index_stats(again)
        assert index["files"] == 31
        # m0.py was indexed from the editor (unsaved): read again; new.py is new; the rest not.
        assert index["last_refresh"]["read"] == 2
        assert index["last_refresh"]["parsed"] == 2
    finally:
        await again.finish()
