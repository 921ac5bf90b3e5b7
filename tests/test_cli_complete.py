"""`nearline complete FILE:LINE:COL` on the embedded model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from support import TEST_DATA

DEMO = TEST_DATA / "demo.py"


def nearline(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nearline", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def end_of_last_line() -> str:
    lines = DEMO.read_text().splitlines()
    return f"{DEMO}:{len(lines)}:{len(lines[-1]) + 1}"


def test_complete_prints_suggestion_model_route_cache_and_latency(
    nearline_env: dict[str, str],
) -> None:
    first = nearline("complete", end_of_last_line(), env=nearline_env)
    assert first.returncode == 0, first.stderr
    suggestion, _, details = first.stdout.partition("---\n")
    assert suggestion.strip() and suggestion.strip() != "(no suggestion)"
    assert "model:   SmolLM2-135M-Instruct.Q4_1 (template prefix-only)" in details
    assert "route:   local" in details
    assert "cache:   miss (model)" in details
    assert "latency: " in details and " ms" in details
    assert first.stderr == ""  # nothing but the answer unless asked to log

    again = nearline("complete", end_of_last_line(), "--json", env=nearline_env)
    info = json.loads(again.stdout)
    assert info["cache"] == "hit" and info["suggestion"] == suggestion.rstrip("\n")
    assert info["route"] == "local"


def test_bad_location_and_missing_file_say_what_is_wrong(
    nearline_env: dict[str, str], tmp_path: Path
) -> None:
    r = nearline("complete", "no-colons", env=nearline_env)
    assert r.returncode == 1 and "FILE:LINE:COL" in r.stderr
    r = nearline("complete", f"{tmp_path / 'missing.py'}:1:1", env=nearline_env)
    assert r.returncode == 1 and "cannot read" in r.stderr
    r = nearline("complete", f"{DEMO}:99:1", env=nearline_env)
    assert r.returncode == 1 and "past the end" in r.stderr
    r = nearline("complete", f"{DEMO}:0:1", env=nearline_env)
    assert r.returncode == 1 and "count from 1" in r.stderr


def test_binary_file_is_refused(nearline_env: dict[str, str], tmp_path: Path) -> None:
    blob = tmp_path / "blob.bin"
    blob.write_bytes(b"\x00\x01\x02\xff" * 1000)
    r = nearline("complete", f"{blob}:1:1", env=nearline_env)
    assert r.returncode == 1 and "binary" in r.stderr


def test_doctor_reports_each_check(nearline_env: dict[str, str], tmp_path: Path) -> None:
    ok = nearline("doctor", env=nearline_env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    for name in ("llama-cpp-python", "model", "cache dir", "data dir", "gpu offload"):
        assert f"] {name}:" in ok.stdout
    assert "[ok ] usage ledger:" in ok.stdout
    bad = nearline("doctor", "--model", str(tmp_path / "nope.gguf"), env=nearline_env)
    assert bad.returncode == 1
    assert "[FAIL] model:" in bad.stdout and "fix:" in bad.stdout
    damaged = tmp_path / "usage.db"
    damaged.write_bytes(b"not a database" * 100)
    broken = nearline("doctor", env={**nearline_env, "NEARLINE_LEDGER": str(damaged)})
    assert broken.returncode == 1
    assert "[FAIL] usage ledger:" in broken.stdout and "move" in broken.stdout
    assert damaged.read_bytes().startswith(b"not a database")  # doctor only looks


def test_models_lists_the_default_as_active(nearline_env: dict[str, str]) -> None:
    r = nearline("models", env=nearline_env)
    assert r.returncode == 0, r.stderr
    active = [line for line in r.stdout.splitlines() if line.startswith("* smollm2")]
    assert active and "SmolLM2-135M-Instruct.Q4_1.gguf" in active[0]
    assert "qwen2.5-coder-1.5b" in r.stdout
