"""The escalation runner's test command: it runs in a process session of its own, and a
timeout or a cancel (Ctrl-C) ends it and everything it started; a cancel is never a result."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from pathlib import Path

import pytest

from nearline.accounting.entries import Project
from nearline.config import Settings
from nearline.config.settings import EvalSettings
from nearline.evaluation.history import GitRepo
from nearline.evaluation.runner import EscalationRunner

# Starts a child that outlives the shell unless its session is ended, and says its pid.
COMMAND = "sleep 30 & echo $! > child.pid; wait"


def runner(tmp_path: Path, timeout_s: int = 30) -> EscalationRunner:
    settings = dataclasses.replace(Settings(), eval=EvalSettings("true", timeout_s))
    return EscalationRunner(settings, "local", GitRepo(tmp_path), None, Project(), Path)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone too: its parent, the shell, was killed and it waits to be reaped.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def child(tmp_path: Path) -> int:
    deadline = time.monotonic() + 10
    while not (tmp_path / "child.pid").exists() or not (tmp_path / "child.pid").read_text():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return int((tmp_path / "child.pid").read_text())


def test_a_command_over_its_time_fails_and_leaves_nothing_running(tmp_path: Path) -> None:
    passed, why = asyncio.run(runner(tmp_path, timeout_s=1)._command(COMMAND, tmp_path))
    assert (passed, why) == (False, "the tests took over 1 s")
    pid = child(tmp_path)
    deadline = time.monotonic() + 5
    while alive(pid):
        assert time.monotonic() < deadline, "the command's child still runs"
        time.sleep(0.05)


def test_a_cancelled_command_is_no_result_and_leaves_nothing_running(tmp_path: Path) -> None:
    async def cancel_it() -> None:
        task = asyncio.ensure_future(runner(tmp_path)._command(COMMAND, tmp_path))
        await asyncio.to_thread(child, tmp_path)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel_it())
    pid = child(tmp_path)
    deadline = time.monotonic() + 5
    while alive(pid):
        assert time.monotonic() < deadline, "the command's child still runs"
        time.sleep(0.05)


def test_a_passing_and_a_failing_command(tmp_path: Path) -> None:
    assert asyncio.run(runner(tmp_path)._command("exit 0", tmp_path)) == (True, "")
    assert asyncio.run(runner(tmp_path)._command("exit 3", tmp_path)) == (False, "")
