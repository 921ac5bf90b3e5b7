"""The project index: what it reads of a file, which files it walks, and what it keeps on disk
(a restart re-reads only changed files; a corrupt store is rebuilt)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from nearline.index import SymbolKind, scan_text
from nearline.index.store import ProjectIndex
from nearline.index.walk import walk

SOURCE = '''\
"""A module."""
import os
from .base import Base as B
from pkg import (
    one,
    two,
)

LIMIT: int = 10
TOKEN = "sk-live-0123456789abcdefghijklmnopqrstuvwxyz"


class Thing(B):
    """A thing.

    More text."""

    name: str
    size: int = 0

    def __init__(self, name: str) -> None:
        self.name = name

    def grow(self, by: int = 1, *, cap: int | None = None) -> int:
        """Grow it."""
        return self.size + by

    def _hidden(self) -> None:
        pass


async def fetch(url, timeout=30.0, headers={"a": "a very long default value here"}):
    """Fetch ``url``."""
'''


def test_python_symbols_signatures_and_imports() -> None:
    entry = scan_text("pkg/thing.py", SOURCE, "python")
    by_name = {s.name: s for s in entry.symbols}
    assert entry.imports == ("os", ".base", "pkg")
    assert by_name["LIMIT"].signature == "LIMIT: int"
    assert by_name["TOKEN"].signature == "TOKEN"  # the value (a secret) is not kept
    assert "sk-live" not in repr(entry)
    assert by_name["Thing"].signature == "class Thing(B)"
    assert by_name["Thing"].doc == "A thing."
    assert by_name["Thing.name"].kind is SymbolKind.FIELD
    assert by_name["Thing.__init__"].signature == "def __init__(self, name: str) -> None"
    assert by_name["Thing.grow"].signature == (
        "def grow(self, by: int = 1, *, cap: int | None = None) -> int"
    )
    assert by_name["Thing.grow"].doc == "Grow it."
    assert "Thing._hidden" not in by_name
    assert by_name["fetch"].signature == "async def fetch(url, timeout=30.0, headers=...)"
    assert by_name["fetch"].line == 31
    assert entry.module == "pkg.thing"


def test_a_file_that_does_not_parse_is_listed_without_symbols() -> None:
    entry = scan_text("broken.py", "def f(:\n", "python")
    assert entry.symbols == () and entry.error.startswith("SyntaxError")
    other = scan_text("x.lua", "local x = 1\n", "lua")
    assert other.symbols == () and other.error == ""


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_walk_respects_gitignore_nested_ones_and_limits(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            ".gitignore": "build/\n*.gen.py\n",
            "a.py": "x = 1\n",
            "b.gen.py": "x = 1\n",
            "build/c.py": "x = 1\n",
            "sub/.gitignore": "secret.py\n!keep.gen.py\n",
            "sub/secret.py": "x = 1\n",
            "sub/keep.gen.py": "x = 1\n",
            "sub/d.py": "x = 1\n",
            "notes.txt": "not code\n",
            ".git/e.py": "x = 1\n",
            "big.py": "x = 1\n" * 1000,
        },
    )
    found = [f.rel for f in walk(tmp_path, max_file_bytes=1000, max_files=100)]
    assert found == ["a.py", "sub/d.py", "sub/keep.gen.py"]
    assert len(list(walk(tmp_path, max_file_bytes=1000, max_files=2))) == 2


def test_a_restart_rereads_only_changed_files(tmp_path: Path) -> None:
    root, store = tmp_path / "project", tmp_path / "store"
    write(root, {f"m{i}.py": f"def f{i}(a): ...\n" for i in range(20)})
    first = ProjectIndex(root, store)
    stats = first.refresh()
    assert (stats.files, stats.read, stats.parsed) == (20, 20, 20)
    first.close()

    (root / "m3.py").write_text("def changed(b): ...\n")
    (root / "m4.py").unlink()
    touched = root / "m5.py"  # same bytes, newer time: read again, not parsed again
    os.utime(touched, ns=(time.time_ns(), time.time_ns() + 10**9))
    again = ProjectIndex(root, store)
    assert again.load() == 20
    stats = again.refresh()
    assert (stats.files, stats.read, stats.parsed, stats.removed) == (19, 2, 1, 1)
    assert [s.name for s in again.get("m3.py").symbols] == ["changed"]  # type: ignore[union-attr]
    assert again.get("m4.py") is None
    again.close()


def test_an_editor_update_changes_one_entry(tmp_path: Path) -> None:
    root = tmp_path / "p"
    write(root, {"pkg/__init__.py": "", "pkg/mod.py": "def old(): ...\n"})
    index = ProjectIndex(root, None)
    index.refresh()
    generation = index.generation
    entry = index.update(root / "pkg" / "mod.py", "def new(x): ...\n", "python")
    assert entry is not None and [s.name for s in entry.symbols] == ["new"]
    assert index.generation == generation + 1
    assert index.update(root / "pkg" / "mod.py", "def new(x): ...\n", "python") is entry
    assert index.generation == generation + 1  # the same text: nothing changed
    assert index.update(tmp_path / "outside.py", "x = 1\n", "python") is None
    assert index.modules()["pkg.mod"].path == "pkg/mod.py"
    assert index.modules()["mod"].path == "pkg/mod.py"


def test_a_corrupt_store_is_rebuilt(tmp_path: Path) -> None:
    root, store = tmp_path / "project", tmp_path / "store"
    write(root, {"a.py": "def a(): ...\n"})
    store.mkdir()
    (store / "cache.db").write_bytes(b"this is not a database" * 100)
    index = ProjectIndex(root, store)
    assert index.disk_error is None
    assert index.refresh().parsed == 1
    index.close()
    assert ProjectIndex(root, store).load() == 1


def test_the_first_build_in_worker_processes_gives_the_same_entries(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "project"
    write(root, {f"pkg/m{i}.py": f"class C{i}:\n    x: int\n" for i in range(100)})
    here, there = ProjectIndex(root, None), ProjectIndex(root, None, workers=2)
    here.refresh()
    assert here.last is not None and here.last.processes == 0 and not here.reader_pids
    stats = there.refresh()
    assert stats.parsed == 100
    assert here.entries() == there.entries()
    # The reading processes ran (no fallback to this process): their pids, not ours.
    assert not [r for r in caplog.records if "worker processes failed" in r.getMessage()]
    assert there.reader_pids and os.getpid() not in there.reader_pids
    assert 1 <= stats.processes == len(there.reader_pids) <= 2


def test_an_edit_parses_only_the_chunks_it_changed() -> None:
    import ast
    from unittest import mock

    before = "import os\n\n\ndef a(x):\n    return x\n\n\nclass B:\n    def m(self): ...\n"
    old = scan_text("m.py", before, "python")
    after = before.replace("    return x\n", "    y = x\n    return y\n") + "\ndef c(): ...\n"
    new = scan_text("m.py", after, "python", previous=old)
    assert new == scan_text("m.py", after, "python")  # the same as a whole parse
    assert [(s.name, s.line) for s in new.symbols] == [
        ("a", 3),
        ("B", 8),
        ("B.m", 9),
        ("c", 11),
    ]
    # An edit inside one chunk (a line more in ``a``): that chunk alone is parsed, the others
    # come from the previous entry (those after it a line lower).
    edited = after.replace("    y = x\n", "    y = x\n    y += 1\n")
    with mock.patch.object(ast, "parse", wraps=ast.parse) as parse:
        newer = scan_text("m.py", edited, "python", previous=new)
    parsed = [call.args[0] for call in parse.call_args_list]
    assert parsed == ["def a(x):\n    y = x\n    y += 1\n    return y\n\n\n"]
    assert newer == scan_text("m.py", edited, "python")
    assert [(s.name, s.line) for s in newer.symbols][1:] == [("B", 9), ("B.m", 10), ("c", 12)]
    # Mid-edit: a chunk that does not parse; the others keep their symbols.
    broken = after.replace("def c(): ...", "def c(:")
    assert [s.name for s in scan_text("m.py", broken, "python", previous=new).symbols] == [
        "a",
        "B",
        "B.m",
    ]


def test_index_and_cross_file_settings_are_checked() -> None:
    import pytest

    from nearline.config import parse_settings
    from nearline.errors import ConfigError

    assert parse_settings({"index": {"workers": 0}}).index.workers == 0
    with pytest.raises(ConfigError, match=r"index\.workers"):
        parse_settings({"index": {"workers": -1}})
    with pytest.raises(ConfigError, match=r"completion\.cross_file_chars"):
        parse_settings({"completion": {"cross_file_chars": -5}})


def test_local_only_files_are_not_indexed(tmp_path: Path) -> None:
    from nearline.app.indexing import open_index
    from nearline.config import parse_settings

    write(tmp_path, {"a.py": "def a(): ...\n", "secrets/keys.py": "def k(): ...\n"})
    settings = parse_settings({"cache": {"enable_disk": False}})
    index = open_index(tmp_path, settings)
    assert index is not None
    index.refresh()
    assert [e.path for e in index.entries()] == ["a.py"]
    assert index.update(tmp_path / "secrets" / "keys.py", "def k2(): ...\n", "python") is None
