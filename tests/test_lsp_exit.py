"""The server leaves when told (``exit``, the end of its input, SIGTERM, SIGINT) within 2 s,
while its project index is being built, and takes every process it started with it; killed
with SIGKILL, its index build dies too; a build stopped midway resumes next time."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import diskcache
import pytest

from nearline.index.store import WRITE_EVERY
from nearline.paths import project_store
from support.rawlsp import RawLsp

EXIT_S = 2.0
FILES = 4000
"""Enough for a first build to take several seconds on 2 cores."""


def children_of(pid: int) -> set[int]:
    """Every live descendant of ``pid`` (from /proc)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2 :].split()
        if fields[0] != b"Z":
            parents[int(entry)] = int(fields[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pids: set[int]) -> set[int]:
    left = set()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        if stat[stat.rindex(b")") + 2 :].split()[0] != b"Z":
            left.add(pid)
    return left


def wait_gone(pids: set[int], until: float) -> set[int]:
    while (left := alive(pids)) and time.monotonic() < until:
        time.sleep(0.02)
    return left


@pytest.fixture(scope="module")
def big_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("big") / "ws"
    for i in range(FILES):
        folder = root / f"pkg{i // 200}"
        folder.mkdir(parents=True, exist_ok=True)
        body = "".join(
            f'def f{i}_{j}(a: int, b: str = \'x\') -> int:\n    """Doc {j}."""\n    return a\n\n'
            for j in range(40)
        )
        (folder / f"m{i}.py").write_text(f"import os\n\nclass C{i}:\n    x: int = 1\n\n{body}")
    return root


def start(env: dict[str, str], root: Path, processes: int = 1) -> RawLsp:
    """A server indexing ``root``, returned once its index build's process runs."""
    raw = RawLsp(env)
    raw.request(
        "initialize",
        {
            "processId": None,
            "rootUri": root.as_uri(),
            "capabilities": {},
            "initializationOptions": {"completion": {"warmup": False}},
        },
    )
    raw.notify("initialized", {})
    deadline = time.monotonic() + 30
    while len(children_of(raw.proc.pid)) < processes:
        assert time.monotonic() < deadline, "the index build's processes never started"
        time.sleep(0.05)
    return raw


def stored(store: Path) -> int:
    """Records in the index store (read as another process)."""
    if not (store / "cache.db").exists():
        return 0
    with diskcache.Cache(str(store)) as disk:
        return len(disk)


def index_stats(raw: RawLsp) -> dict[str, object]:
    return raw.request("nearline/stats", None)["result"].get("index") or {}


def _exit(raw: RawLsp) -> None:
    raw.request("shutdown", None)
    raw.notify("exit", None)


def _close_input(raw: RawLsp) -> None:
    assert raw.proc.stdin is not None
    raw.proc.stdin.close()


WAYS: dict[str, tuple[Callable[[RawLsp], None], int]] = {
    "shutdown-exit": (_exit, 0),
    "exit-alone": (lambda raw: raw.notify("exit", None), 1),
    "end-of-input": (_close_input, 0),
    "sigterm": (lambda raw: raw.proc.send_signal(signal.SIGTERM), 0),
    "sigint": (lambda raw: raw.proc.send_signal(signal.SIGINT), 0),
}


@pytest.fixture
def servers() -> Iterator[list[RawLsp]]:
    started: list[RawLsp] = []
    yield started
    for raw in started:
        if raw.proc.poll() is None:
            raw.proc.kill()
        for pid in alive(children_of(raw.proc.pid)):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("way", list(WAYS))
def test_the_server_leaves_when_told_while_indexing(
    way: str, big_workspace: Path, nearline_env: dict[str, str], servers: list[RawLsp]
) -> None:
    raw = start(nearline_env, big_workspace)
    servers.append(raw)
    assert index_stats(raw)["building"] is True
    started = children_of(raw.proc.pid)
    tell, code = WAYS[way]
    t0 = time.monotonic()
    tell(raw)
    assert raw.proc.wait(timeout=10) == code
    assert time.monotonic() - t0 <= EXIT_S
    assert wait_gone(started, t0 + EXIT_S) == set(), "processes left behind"


def test_killed_server_takes_its_index_build_along_and_the_build_resumes(
    big_workspace: Path, nearline_env: dict[str, str], servers: list[RawLsp]
) -> None:
    raw = start(nearline_env, big_workspace)
    servers.append(raw)
    store = project_store(Path(nearline_env["NEARLINE_CACHE_DIR"]), "index", big_workspace)
    deadline = time.monotonic() + 60
    while stored(store) < 2 * WRITE_EVERY:  # some of the build is written, not all
        assert time.monotonic() < deadline, "the build wrote nothing"
        time.sleep(0.02)
    assert index_stats(raw)["building"] is True
    started = children_of(raw.proc.pid)
    (build,) = started
    os.killpg(build, signal.SIGSTOP)  # as while the engine works: it dies stopped too
    t0 = time.monotonic()
    raw.proc.kill()
    raw.proc.wait(timeout=5)
    assert wait_gone(started, t0 + EXIT_S) == set(), "the index build outlived its server"

    again = start(nearline_env, big_workspace, processes=0)
    servers.append(again)
    deadline = time.monotonic() + 120
    while not (index := index_stats(again)).get("last_refresh"):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert index["files"] == FILES
    refresh = index["last_refresh"]
    assert isinstance(refresh, dict)
    assert 0 < refresh["read"] < FILES, "the second build read everything again"
    _exit(again)
    assert again.proc.wait(timeout=10) == 0
