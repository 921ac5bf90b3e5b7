#!/usr/bin/env python3
"""Dashboard benchmark: ``bench_team.py --dashboard``. The team benchmark's month (50
developers through a real PostgreSQL) made a year, then ``nearline dashboard --team`` timed
over it: each view's p95 at the server (goal <= 500 ms) and, in headless Chromium, the time to
the first chart drawn (goal <= 1.5 s). Flags are bench_team.py's.

    .venv/bin/python scripts/bench_dashboard.py          # ~8 min on 2 cores
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_team import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["--dashboard", *sys.argv[1:]]))
