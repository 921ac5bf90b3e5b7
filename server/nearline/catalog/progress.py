"""What a pull shows on stderr: lines that stay (which source, each part), and live progress
bars where stderr is a terminal. Disabled, it shows nothing."""

from __future__ import annotations

import sys
from typing import Any


class PullProgress:
    """``with PullProgress(enabled) as p``: ``p.say(text)`` prints a line above the bars;
    ``p.add(label, total)`` makes a bar that ``p.update`` moves (sizes in bytes)."""

    def __init__(self, enabled: bool, *, transient: bool = True) -> None:
        self.enabled = enabled
        self.transient = transient
        self._bars: Any = None

    def __enter__(self) -> PullProgress:
        if not self.enabled:
            return self
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._bars = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True, highlight=False),
            transient=self.transient,
        )
        self._bars.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bars is not None:
            self._bars.stop()
            self._bars = None

    def say(self, text: str) -> None:
        if self._bars is not None:
            self._bars.console.print(text, markup=False, soft_wrap=True)
        elif self.enabled:
            print(text, file=sys.stderr, flush=True)

    def add(self, label: str, total: int | None, done: int = 0) -> int:
        if self._bars is None:
            return -1
        return int(self._bars.add_task(label, total=total or None, completed=done))

    def update(
        self,
        task: int,
        *,
        completed: int | None = None,
        total: int | None = None,
        advance: int | None = None,
    ) -> None:
        if self._bars is None or task < 0:
            return
        fields: dict[str, Any] = {}
        if completed is not None:
            fields["completed"] = completed
        if total:
            fields["total"] = total
        if advance:
            fields["advance"] = advance
        self._bars.update(task, **fields)

    def remove(self, task: int) -> None:
        if self._bars is not None and task >= 0:
            self._bars.remove_task(task)
