"""``python -m nearline.app.index_build``: the project index's build, in a process of its own.

The server starts it (``app.indexing.IndexBuilder``) and writes one JSON line to its standard
input: the project, the store and the limits. It runs at the lowest CPU priority, ends with its
parent (the parent-death signal, a watch on the parent's pid, and the end of its standard
input), writes its records to the store as it goes (a build stopped midway resumes from there
next time), and prints one JSON line, the build's figures, when done."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import threading
from pathlib import Path
from typing import Any, NoReturn

from nearline.index.process import die_with_parent, exit_at_end_of_input, lowest_priority


def build(job: dict[str, Any]) -> dict[str, Any]:
    from nearline.escalation.privacy import local_only_match
    from nearline.index.store import ProjectIndex

    local_only = tuple(job.get("local_only", ()))
    index = ProjectIndex(
        Path(job["root"]),
        Path(job["store"]),
        max_files=int(job["max_files"]),
        max_file_bytes=int(job["max_file_bytes"]),
        workers=int(job.get("workers", 0)),
        exclude=lambda rel: local_only_match(rel, local_only) is not None,
    )
    try:
        index.load()
        stats = index.refresh()
    finally:
        index.close()
    return dataclasses.asdict(stats)


def main() -> NoReturn:
    die_with_parent(os.getppid())  # first: the server may be killed at any time
    job = json.loads(sys.stdin.readline() or "{}")
    lowest_priority()
    threading.Thread(target=exit_at_end_of_input, name="nearline-stdin", daemon=True).start()
    stats = build(job)
    sys.stdout.write(json.dumps({"stats": stats}) + "\n")
    sys.stdout.flush()
    os._exit(0)  # not through the interpreter's shutdown: the stdin thread still reads


if __name__ == "__main__":
    main()
