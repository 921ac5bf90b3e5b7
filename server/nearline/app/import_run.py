"""``python -m nearline.app.import_run``: the server's background ``nearline usage import``, in
a process of its own (``usage_import.BackgroundImport`` starts it).

It reads one JSON line on its standard input (the sources, and the project whose settings
hold the prices), runs at the lowest CPU priority, ends with its parent (as the index build
does), stops itself when the server asks (SIGTSTP) but never inside a ledger transaction, and
prints one JSON line per source: its summary, or the error that stopped it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

from nearline.index.process import die_with_parent, exit_at_end_of_input, lowest_priority


class Pause:
    """The server's SIGTSTP (its engine is busy): stop now, or, inside a ledger transaction,
    right after it, so no lock is held while stopped. Its SIGCONT: go on."""

    def __init__(self) -> None:
        self.writing = 0
        self.asked = False

    def ask(self, *_: object) -> None:
        if self.writing:
            self.asked = True
        else:
            os.kill(os.getpid(), signal.SIGSTOP)

    def resume(self, *_: object) -> None:
        self.asked = False

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        self.writing += 1
        try:
            yield
        finally:
            self.writing -= 1
            if not self.writing and self.asked:
                self.asked = False
                os.kill(os.getpid(), signal.SIGSTOP)


def main() -> NoReturn:
    die_with_parent(os.getppid())  # first: the server may be killed at any time
    pause = Pause()
    signal.signal(signal.SIGTSTP, pause.ask)
    signal.signal(signal.SIGCONT, pause.resume)
    job = json.loads(sys.stdin.readline() or "{}")
    lowest_priority()
    threading.Thread(target=exit_at_end_of_input, name="nearline-stdin", daemon=True).start()
    from nearline.app.usage_import import import_usage
    from nearline.config import ConfigStack
    from nearline.errors import NearlineError

    root = Path(job["root"]) if job.get("root") else None
    for name in job.get("sources", ()):
        try:
            settings = ConfigStack(root=root).load()
            [result] = import_usage(settings, [name], guard=pause.transaction)
            said = {"source": name, "records": result.records, "summary": result.summary()}
        except (NearlineError, OSError, ValueError) as exc:
            said = {"source": name, "error": str(exc)}
        sys.stdout.write(json.dumps(said) + "\n")
        sys.stdout.flush()
    os._exit(0)  # not through the interpreter's shutdown: the stdin thread still reads


if __name__ == "__main__":
    main()
