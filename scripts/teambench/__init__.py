"""The team sync benchmark (``scripts/bench_team.py``): ``workload`` (each developer's month:
the cost benchmark's escalations, completions at the editor's rate), ``worker`` (a developer's
process: its ledger, its syncer, the kill in a sync round, the batch sent twice), ``fleet`` (the
team database, the processes at a time, the outage, the kills), ``checks`` (the team database
against the machines' ledgers), ``sizes`` (completions as request rows or as hourly buckets),
``cpu`` (the syncer's CPU while typing), ``year`` (a year of the team's data and
``usage --team`` timed). What they share is here."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from nearline.accounting.team.sync import Identity

SCRIPT = Path(__file__).resolve().parents[1] / "bench_team.py"
"""The entry script, run again for each developer's process (``--worker``) and for the CPU
measurement (``--typing-worker``)."""
URL_ENV = "NEARLINE_BENCH_TEAM_URL"
"""The team database's URL, for the ``--url`` default and the processes the benchmark starts."""


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def developer(dev: int) -> Identity:
    return Identity(f"dev{dev:02d}@acme.example", f"laptop-{dev:02d}")


def write_json(path: Path, data: Any) -> None:
    """Atomically: a reader never sees half a file."""
    part = path.with_suffix(".part")
    part.write_text(json.dumps(data))
    part.replace(path)
