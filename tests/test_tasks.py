"""The task table is the one place the task vocabulary is spelled out; the editors agree with it."""

from __future__ import annotations

import json

from nearline.config import parse_settings
from nearline.tasks import BY_COMMAND, TASK_NAMES, TASKS, TaskKind
from support import ROOT


def test_every_kind_has_one_row_and_one_command() -> None:
    assert set(TASKS) == set(TaskKind)
    assert len(BY_COMMAND) == len(TASKS)
    assert all(BY_COMMAND[info.command] is kind for kind, info in TASKS.items())


def test_kinds_are_their_names_everywhere() -> None:
    assert f"{TaskKind.TESTS}" == "tests" and str(TaskKind.FIX) == "fix"
    assert json.dumps(TaskKind.ASK) == '"ask"' and TaskKind.EXPLAIN == "explain"
    assert TASK_NAMES == ("refactor", "explain", "tests", "fix", "ask")


def test_routing_rules_accept_exactly_the_task_names() -> None:
    parse_settings({"routing": {"rules": [{"tier": "value", "task": list(TASK_NAMES)}]}})


def test_the_vscode_extension_offers_every_task_command() -> None:
    manifest = json.loads((ROOT / "clients" / "vscode" / "package.json").read_text())
    offered = {c["command"] for c in manifest["contributes"]["commands"]}
    assert {info.command for info in TASKS.values()} <= offered
