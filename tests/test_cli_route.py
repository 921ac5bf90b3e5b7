"""`nearline route TASK --files ...` prints the decision and the rule that made it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CONFIG = """\
[providers.claude]
kind = "anthropic"
model = "claude-sonnet-4-5"
api_key_env = "ANTHROPIC_API_KEY"
input_cost_per_token = 3e-6
output_cost_per_token = 15e-6

[routing.tiers]
flagship = ["claude"]

[[routing.rules]]
name = "multi-file work"
tier = "flagship"
min_files = 2

[[routing.rules]]
name = "small things stay here"
tier = "local"
max_selection_lines = 10
"""


def route(root: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nearline", "route", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_route_prints_tier_rule_providers_and_estimate(
    tmp_path: Path, nearline_env: dict[str, str]
) -> None:
    (tmp_path / ".nearline.toml").write_text(CONFIG)
    for name in ("a.py", "b.py"):
        (tmp_path / name).write_text("def f():\n    return 1\n" * 20)
    r = route(tmp_path, nearline_env, "refactor", "--files", "a.py", "b.py")
    assert r.returncode == 0, r.stderr
    assert "tier:      flagship" in r.stdout
    assert 'because:   rule 1 "multi-file work": files >= 2' in r.stdout
    assert "providers: claude (claude-sonnet-4-5)" in r.stdout
    # Where the request and its key would go: the kind's own host, the key's variable by name.
    assert (
        "sent to:   claude → https://api.anthropic.com (anthropic, key from $ANTHROPIC_API_KEY)"
        in r.stdout
    )
    assert "estimate:  ~$" in r.stdout and "verdict:   ok" in r.stdout
    assert str(tmp_path / ".nearline.toml") in r.stdout

    r = route(tmp_path, nearline_env, "rename f to g", "--files", "a.py", "--lines", "1-2")
    assert "task:      ask ('rename f to g')" in r.stdout
    assert "tier:      local" in r.stdout and "free (this machine)" in r.stdout


def test_route_refuses_a_file_with_a_secret(tmp_path: Path, nearline_env: dict[str, str]) -> None:
    (tmp_path / ".nearline.toml").write_text(CONFIG)
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "keys.py").write_text('AWS = "AKIA' + 'IOSFODNN7EXAMPLE"\n')
    r = route(tmp_path, nearline_env, "refactor", "--files", "a.py", "keys.py")
    assert r.returncode == 2
    assert "verdict:   REFUSED" in r.stdout and "AWS access key" in r.stdout
    assert "IOSFODNN7EXAMPLE" not in r.stdout


def test_route_reports_a_broken_config_with_file_and_key(
    tmp_path: Path, nearline_env: dict[str, str]
) -> None:
    (tmp_path / ".nearline.toml").write_text('[[routing.rules]]\ntier = "platinum"\n')
    (tmp_path / "a.py").write_text("x = 1\n")
    r = route(tmp_path, nearline_env, "explain", "--files", "a.py")
    assert r.returncode == 1
    assert "routing.rules[0].tier = 'platinum'" in r.stderr
