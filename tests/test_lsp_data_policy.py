"""The data policy end to end: two real OpenAI-compatible servers on 127.0.0.1, one that the
project's ``privacy.providers`` excludes (listed first in the tier) and one that qualifies
(retention zero, in the EU), the real ``nearline serve`` over stdio and ``nearline route``.
Each server counts the requests it got: the excluded one must get none, in the fallback
chain too."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.escalation import CALC, EditingClient, code_action, run, to_toml
from support.fake_provider import FakeProvider, RecordingProvider, Reply

ZERO_EU = {"retention": "zero", "region": ["eu"]}


@pytest.fixture
def logging_provider() -> Iterator[RecordingProvider]:
    """Cheap and keeps prompts for 30 days: a policy of zero retention excludes it."""
    server = RecordingProvider("From the logging provider.").start()
    yield server
    server.stop()


@pytest.fixture
def zdr_provider() -> Iterator[RecordingProvider]:
    """Keeps nothing, processes in the EU."""
    server = RecordingProvider("From the EU provider.").start()
    yield server
    server.stop()


def provider(url: str, model: str, **facts: Any) -> dict[str, Any]:
    return {"kind": "openai", "base_url": url, "model": model, "max_retries": 0, **facts}


def project(tmp_path: Path, chain: list[str], providers: dict[str, Any]) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "calc.py").write_text(CALC)
    config = {
        "providers": providers,
        "routing": {"tiers": {"value": chain, "flagship": chain}},
        "privacy": {"providers": ZERO_EU},
    }
    (root / ".nearline.toml").write_text(to_toml(config))
    return root


def both(logging: RecordingProvider, zdr: RecordingProvider) -> dict[str, Any]:
    return {
        "cheap": provider(logging.url, "cheap-model", retention="days:30", region="us"),
        "zdr": provider(zdr.url, "zdr-model", retention="zero", region="eu"),
    }


async def explain(env: dict[str, str], root: Path) -> tuple[str, dict[str, Any], list[Any]]:
    """The explain action's title, the result of running it, and the escalations recorded."""
    client = EditingClient()
    await client.start(env, root=root)
    uri = (root / "calc.py").as_uri()
    client.open(uri, CALC)
    try:
        action = await code_action(client, uri, "explain")
        result = await run(client, action)
        return action.title, result, (await client.stats())["escalations"]
    finally:
        await client.finish()


def route(env: dict[str, str], root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nearline", "route", "explain", "--files", "calc.py"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_the_request_goes_only_to_the_provider_that_qualifies(
    logging_provider: RecordingProvider,
    zdr_provider: RecordingProvider,
    nearline_env: dict[str, str],
    tmp_path: Path,
) -> None:
    root = project(tmp_path, ["cheap", "zdr"], both(logging_provider, zdr_provider))
    title, result, [record] = await explain(nearline_env, root)
    assert title == (
        "nearline: explain → value (zdr-model, ~$0.000; cheap skipped: privacy.providers)"
    )
    assert result["ok"] is True and result["text"] == "From the EU provider.", result
    assert record["provider"] == "zdr"
    assert len(zdr_provider.received) == 1
    assert logging_provider.received == []

    r = route(nearline_env, root)
    assert r.returncode == 0, r.stderr
    assert "providers: zdr (zdr-model)" in r.stdout
    assert 'policy:    privacy.providers: retention "zero", region eu' in r.stdout
    assert (
        'skipped:   cheap (privacy.providers: it keeps data (days:30), the policy needs "zero"; '
        "region us, the policy needs eu)"
    ) in r.stdout
    assert f"sent to:   zdr → {zdr_provider.url}" in r.stdout
    assert logging_provider.url not in r.stdout and "verdict:   ok" in r.stdout


async def test_with_only_the_excluded_provider_the_request_is_refused_and_never_sent(
    logging_provider: RecordingProvider, nearline_env: dict[str, str], tmp_path: Path
) -> None:
    cheap = provider(logging_provider.url, "cheap-model", retention="days:30", region="us")
    root = project(tmp_path, ["cheap"], {"cheap": cheap})
    title, result, records = await explain(nearline_env, root)
    assert title.startswith(
        "nearline: explain (unavailable: no provider of tier 'value' meets privacy.providers"
    )
    assert result["ok"] is False
    assert result["message"].startswith(
        "nearline: explain not sent: no provider of tier 'value' meets privacy.providers "
        '(retention "zero", region eu): cheap: it keeps data (days:30), the policy needs "zero"'
    )
    assert records == [] and logging_provider.received == []

    r = route(nearline_env, root)
    assert r.returncode == 2
    assert "providers: (none)" in r.stdout
    assert "skipped:   cheap (privacy.providers: it keeps data (days:30)" in r.stdout
    assert "verdict:   REFUSED: no provider of tier 'value' meets privacy.providers" in r.stdout
    assert logging_provider.received == []


async def test_when_the_qualifying_provider_fails_the_chain_does_not_fall_back_to_one_that_does_not(
    logging_provider: RecordingProvider, nearline_env: dict[str, str], tmp_path: Path
) -> None:
    failing = FakeProvider(lambda received: Reply(500, b'{"error": "down"}')).start()
    try:
        providers = {
            "zdr": provider(failing.url + "/v1", "zdr-model", retention="zero", region="eu"),
            "cheap": provider(logging_provider.url, "cheap-model", retention="days:30"),
        }
        root = project(tmp_path, ["zdr", "cheap"], providers)
        title, result, _ = await explain(nearline_env, root)
    finally:
        failing.stop()
    assert title.endswith("(zdr-model, ~$0.000; cheap skipped: privacy.providers)")
    assert result["ok"] is False and "500" in result["message"], result
    assert len(failing.received) == 1
    assert logging_provider.received == []
