"""`nearline doctor` says where each provider's requests (and key) would go, never the key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CONFIG = """\
[providers.claude]
kind = "anthropic"
model = "claude-sonnet-4-5"
api_key_env = "ANTHROPIC_API_KEY"

[providers.tuned]
kind = "openai"
model = "my-finetune"
api_key_env = "OPENAI_API_KEY"

[routing.tiers]
flagship = ["claude", "tuned"]
"""


def test_doctor_shows_each_provider_s_resolved_url_and_key_variable(
    tmp_path: Path, nearline_env: dict[str, str]
) -> None:
    (tmp_path / ".nearline.toml").write_text(CONFIG)
    env = {**nearline_env, "ANTHROPIC_API_KEY": "sk-ant-secret-value", "OPENAI_API_KEY": ""}
    r = subprocess.run(
        [sys.executable, "-m", "nearline", "doctor"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = r.stdout
    assert (
        "[ok ] provider claude: claude → https://api.anthropic.com "
        "(anthropic, key from $ANTHROPIC_API_KEY)" in out
    ), out
    assert "[warn] provider tuned: tuned → https://api.openai.com/v1" in out, out
    assert "$OPENAI_API_KEY is not set" in out
    assert "[warn] price of my-finetune: not in the price table" in out
    assert "sk-ant-secret-value" not in out + r.stderr


def test_doctor_says_whether_gpu_offload_is_active() -> None:
    from nearline.app.doctor import _gpu_check

    active = _gpu_check(True, -1)
    assert active.ok and "active: every layer" in active.detail
    off = _gpu_check(True, 0)
    assert not off.ok and off.warning and "n_gpu_layers = -1" in off.fix
    cpu = _gpu_check(False, 20)
    assert not cpu.ok and "no effect" in cpu.detail and "GGML_CUDA" in cpu.fix


POLICY_CONFIG = """\
[providers.cheap]
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
model = "cheap-model"
retention = "days:30"

[providers.zdr]
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
model = "zdr-model"
retention = "zero"
region = "eu"

[routing.tiers]
value = ["cheap", "zdr"]
flagship = ["cheap"]

[privacy.providers]
retention = "zero"
"""


def test_doctor_reports_each_tier_where_no_provider_meets_the_data_policy(
    tmp_path: Path, nearline_env: dict[str, str]
) -> None:
    (tmp_path / ".nearline.toml").write_text(POLICY_CONFIG)
    r = subprocess.run(
        [sys.executable, "-m", "nearline", "doctor"],
        cwd=tmp_path,
        env=nearline_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = r.stdout
    skips = 'privacy.providers (retention "zero") skips cheap: it keeps data (days:30)'
    assert f"[warn] tier flagship: {skips}" in out, out
    assert "no provider is left: its requests are refused" in out
    assert "add a provider that meets it to the tier" in out
    assert f"[ok ] tier value: {skips}" in out and "left: zdr" in out
