"""``python -m nearline.app.import_run``: the server's background ``nearline usage import``, in
a process of its own (``usage_import.BackgroundImport`` starts it).

It reads one JSON line on its standard input (the sources, and the project whose settings
hold the prices), runs at the lowest CPU priority, ends with its parent (as the index build
does), and prints one JSON line per source: its summary, or the error that stopped it."""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path
from typing import NoReturn

from nearline.index.process import die_with_parent, exit_at_end_of_input, lowest_priority


def main() -> NoReturn:
    die_with_parent(os.getppid())  # first: the server may be killed at any time
    job = json.loads(sys.stdin.readline() or "{}")
    lowest_priority()
    threading.Thread(target=exit_at_end_of_input, name="nearline-stdin", daemon=True).start()
    from nearline.app.usage_import import import_usage
    from nearline.config import ConfigStack
    from nearline.errors import NearlineError

    root = Path(job["root"]) if job.get("root") else None
    for name in job.get("sources", ()):
        try:
            [result] = import_usage(ConfigStack(root=root).load(), [name])
            said = {"source": name, "records": result.records, "summary": result.summary()}
        except (NearlineError, OSError, ValueError) as exc:
            said = {"source": name, "error": str(exc)}
        sys.stdout.write(json.dumps(said) + "\n")
        sys.stdout.flush()
    os._exit(0)  # not through the interpreter's shutdown: the stdin thread still reads


if __name__ == "__main__":
    main()
