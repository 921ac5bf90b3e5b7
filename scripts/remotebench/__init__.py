"""The remote completion benchmark (``scripts/bench_remote.py``): ``answers`` (the table of
precomputed answers and its key), ``precompute`` (the positions the typing replay can ask at,
and Qwen2.5-Coder-1.5B's answers there), ``replay_server`` (a llama-server ``/infill`` that
answers from the table after a fixed latency), ``arms`` (what each arm's server is told, and
the typing replay with its request records), ``report`` (the figures)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
