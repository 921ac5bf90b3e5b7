"""The cost benchmark (``scripts/bench_costs.py``): ``workload`` (the simulated month),
``policy`` (the project's ``.nearline.toml``), ``provider`` (the simulated cloud model),
``drive`` (every request through the server's escalate-and-record use case), ``report``."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
