"""The escalated tasks in one table: each kind's editor command, label, code action kind,
prompt instruction, whether it answers with a change, and the size of answer it expects."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from nearline.vocab import StrEnum


class TaskKind(StrEnum):
    REFACTOR = "refactor"
    EXPLAIN = "explain"
    TESTS = "tests"
    FIX = "fix"
    ASK = "ask"


AUTOCOMPLETE = "completion"
"""The ledger's task for an autocomplete request (escalations carry their ``TaskKind``)."""
IMPORTED = "imported"
"""The ledger's task for another tool's request, read from its log (``nearline usage import``)."""


@dataclass(frozen=True)
class TaskInfo:
    kind: TaskKind
    command: str
    """The ``workspace/executeCommand`` name the editors run."""
    label: str
    """What the task is called in titles and messages."""
    code_action: str | None
    """The LSP ``CodeActionKind`` of its code action; None: a command only."""
    instruction: str
    """The request's first line in the prompt; empty: the user's own words."""
    changes_code: bool
    """Answers with a diff (``ask`` may too, when its answer holds one)."""
    output_tokens: int | None
    """Expected answer size; None: about the selection's size (a diff of it)."""


TASKS: Mapping[TaskKind, TaskInfo] = MappingProxyType(
    {
        info.kind: info
        for info in (
            TaskInfo(
                TaskKind.REFACTOR,
                "nearline.refactor",
                "refactor",
                "refactor.rewrite",
                "Refactor the selected code: clearer names and structure, same behaviour.",
                True,
                None,
            ),
            TaskInfo(
                TaskKind.EXPLAIN,
                "nearline.explain",
                "explain",
                "",
                "Explain what the selected code does, how, and anything surprising about it.",
                False,
                500,
            ),
            TaskInfo(
                TaskKind.TESTS,
                "nearline.writeTests",
                "write tests",
                "source",
                "Write unit tests for the selected code, in the project's test style and folder.",
                True,
                None,
            ),
            TaskInfo(
                TaskKind.FIX,
                "nearline.fix",
                "fix",
                "quickfix",
                "Fix the problem reported by the diagnostic at the selection.",
                True,
                None,
            ),
            TaskInfo(TaskKind.ASK, "nearline.ask", "ask", None, "", False, 600),
        )
    }
)
TASK_NAMES = tuple(kind.value for kind in TaskKind)
BY_COMMAND: Mapping[str, TaskKind] = MappingProxyType({t.command: t.kind for t in TASKS.values()})
