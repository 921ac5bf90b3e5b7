"""``scripts/bench_server_load.py`` against the fake llama-server: every level answers and its
figures are printed (the GPU figures are in the issue notes when a device was lent)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from test_lsp_remote import FakeLlamaServer, fake_server  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import bench_server_load  # noqa: E402


def test_levels_of_developers_on_one_server(
    fake_server: FakeLlamaServer,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "load.json"
    args = ["--kind", "llama-server", "--url", fake_server.url, "--concurrency", "1,3"]
    code = bench_server_load.main([*args, "--seconds", "1", "--think-ms", "20", "--json", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    levels = json.loads(out.read_text())
    assert [r["developers"] for r in levels] == [1, 3]
    assert all(r["answers"] > 0 and r["errors"] == 0 for r in levels)
    assert levels[1]["answers"] > levels[0]["answers"]  # three developers ask more often
    assert all(r["ttft_p50_ms"] is not None for r in levels)
    assert "| 3 |" in printed and "first token" in printed
    prompt = fake_server.received[-1].json
    assert prompt["input_prefix"] and prompt["stream"] is True
