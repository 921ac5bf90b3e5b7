"""The cost benchmark (``scripts/bench_costs.py``): ``workload`` (the simulated month),
``policy`` (the project's ``.nearline.toml``), ``provider`` (the simulated cloud model, with
``anthropic``, the Messages API it speaks, and ``caching``, the providers' prompt caches),
``drive`` (every request through the server's escalate-and-record use case), ``report`` (the
figures), ``levers`` (the baselines and the savings by lever), ``text``."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
