"""The architecture's invariants (README, "Architecture"): import-linter contracts in
pyproject.toml (no import cycles, the layers, only ``nearline.lsp`` knows pygls and lsprotocol,
the hot path imports no HTTP client and no SQLite), and checks of the source itself (ledger rows
built in ``accounting/entries.py``, tasks' names in ``tasks.py``, an escalation's outcome a
typed result)."""

from __future__ import annotations

import ast
import subprocess
import sys
import typing
from pathlib import Path

from nearline.escalation.results import EscalationResult
from nearline.tasks import TASKS
from support import ROOT

PACKAGE = ROOT / "server" / "nearline"


def test_the_import_contracts_are_kept() -> None:
    lint = Path(sys.executable).parent / "lint-imports"
    r = subprocess.run(
        [str(lint), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=ROOT / "server",
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 broken" in r.stdout and "BROKEN" not in r.stdout


def test_only_the_lsp_package_names_pygls_or_lsprotocol() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in PACKAGE.rglob("*.py")
        if "lsp" not in path.relative_to(PACKAGE).parts[:1]
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if "pygls" in line or "lsprotocol" in line
    ]
    assert not found, found


def test_no_lsp_module_is_over_250_lines() -> None:
    long = {
        str(path.relative_to(ROOT)): n
        for path in (PACKAGE / "lsp").rglob("*.py")
        if (n := len(path.read_text().splitlines())) > 250
    }
    assert not long, long


def parsed() -> dict[str, ast.Module]:
    """Every module of the package by its path under ``server/nearline``."""
    return {
        path.relative_to(PACKAGE).as_posix(): ast.parse(path.read_text())
        for path in sorted(PACKAGE.rglob("*.py"))
    }


def docstrings(tree: ast.Module) -> set[int]:
    """The ids of the module's, classes' and functions' docstring nodes."""
    return {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }


def entry_calls(tree: ast.Module) -> list[int]:
    """Lines that call ``Entry(...)``, under its own name, an alias or as an attribute."""
    names = {"Entry"} | {
        alias.asname
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
        if alias.name == "Entry" and alias.asname
    }
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and (
            (isinstance(node.func, ast.Name) and node.func.id in names)
            or (isinstance(node.func, ast.Attribute) and node.func.attr == "Entry")
        )
    ]


def test_every_ledger_row_is_built_in_accounting_entries() -> None:
    found = {
        path: lines
        for path, tree in parsed().items()
        if path != "accounting/entries.py" and (lines := entry_calls(tree))
    }
    assert not found, found
    assert entry_calls(parsed()["accounting/entries.py"])  # the check sees the builders


TASK_WORDS = {
    text
    for info in TASKS.values()
    for text in (info.kind.value, info.command, info.label, info.instruction)
    if text
}
"""Each task's name, editor command, label and prompt instruction."""
NOT_A_TASK = {("evaluation/report.py", "tests")}
"""The same words meaning something else: the eval table's "tests" (passed) column."""


def test_every_task_s_name_command_label_and_prompt_is_only_in_tasks() -> None:
    found = [
        f"{path}:{node.lineno} {node.value!r}"
        for path, tree in parsed().items()
        if path != "tasks.py"
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and node.value in TASK_WORDS
        and id(node) not in docstrings(tree)
        and (path, node.value) not in NOT_A_TASK
    ]
    assert not found, found


def test_an_escalation_s_outcome_is_a_typed_result() -> None:
    """``Escalator.run`` returns one of the result variants and raises nothing itself (that no
    provider's or diff's exception gets through is the escalation tests' part)."""
    variants = {t.__name__ for t in typing.get_args(EscalationResult)}
    assert variants == {"Answered", "Changed", "Unappliable", "Refused", "Failed"}
    tree = parsed()["escalation/escalator.py"]
    [run] = [
        node
        for cls in tree.body
        if isinstance(cls, ast.ClassDef) and cls.name == "Escalator"
        for node in cls.body
        if isinstance(node, ast.AsyncFunctionDef) and node.name == "run"
    ]
    assert run.returns is not None and ast.unparse(run.returns) == "EscalationResult"
    assert [n.lineno for n in ast.walk(run) if isinstance(n, ast.Raise)] == []
    returned = {
        ast.unparse(n.value.func)
        for n in ast.walk(run)
        if isinstance(n, ast.Return) and isinstance(n.value, ast.Call)
    }
    returns = [n for n in ast.walk(run) if isinstance(n, ast.Return)]
    assert all(isinstance(n.value, ast.Call) for n in returns)
    assert returned == variants
