"""Two developers' servers (two machines: their own data folders and ledgers), one team database
(a real PostgreSQL), one real OpenAI-compatible server: both escalate, both show in the team's
report, and a team budget below their sum refuses the next escalation, naming the budget."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import psycopg

from support.escalation import CALC, EditingClient, code_action, run, to_toml
from test_lsp_escalation import gbnf_exactly

ANSWER = "It adds two numbers."


def config(llama_server: str, daily_cap: float | None = None) -> str:
    data = {
        "providers": {
            "server": {
                "kind": "openai",
                "base_url": llama_server,
                "model": "smollm2",
                "max_retries": 1,
                "read_timeout_s": 120,
                "extra_body": {"grammar": gbnf_exactly(ANSWER)},
                # priced, so the team's budget has something to count
                "input_cost_per_token": 0.001,
                "output_cost_per_token": 0.002,
            }
        },
        "routing": {"tiers": {"flagship": ["server"], "value": ["server"]}},
        "team": {"sync_interval_s": 5},
    }
    if daily_cap is not None:
        data["budget"] = {"team": {"total": {"daily_usd": daily_cap}}}
    return to_toml(data)


async def developer(
    name: str, env: dict[str, str], root: Path, tmp_path: Path, team_url: str
) -> EditingClient:
    mine = dict(env, NEARLINE_DATA_DIR=str(tmp_path / name), NEARLINE_TEAM_URL=team_url)
    client = EditingClient()
    await client.start(mine, options={"team": {"developer": f"{name}@example.com"}}, root=root)
    client.open((root / "calc.py").as_uri(), CALC)
    return client


def team_rows(team_url: str) -> list[tuple[str, float]]:
    try:
        with psycopg.connect(team_url) as pg:
            found = pg.execute(
                "SELECT developer, cost_usd FROM nearline_requests ORDER BY developer"
            )
            return [(str(d), float(c)) for d, c in found.fetchall()]
    except psycopg.errors.UndefinedTable:
        return []


async def test_two_developers_one_team_budget(
    llama_server: str, nearline_env: dict[str, str], tmp_path: Path, team_url: str
) -> None:
    root = tmp_path / "shop"
    root.mkdir()
    (root / "calc.py").write_text(CALC)
    (root / ".nearline.toml").write_text(config(llama_server))
    uri = (root / "calc.py").as_uri()
    alice = await developer("alice", nearline_env, root, tmp_path, team_url)
    bob = await developer("bob", nearline_env, root, tmp_path, team_url)
    try:
        for client in (alice, bob):
            result = await run(client, await code_action(client, uri, "explain"))
            assert result["ok"] is True, result
        deadline = time.monotonic() + 30
        while len(team_rows(team_url)) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        rows = team_rows(team_url)
        assert [d for d, _ in rows] == ["alice@example.com", "bob@example.com"], rows
        spent = sum(c for _, c in rows)
        assert spent > 0

        report = subprocess.run(
            [sys.executable, "-m", "nearline", "usage", "--team", "--by", "developer", "--json"],
            env=dict(nearline_env, NEARLINE_TEAM_URL=team_url),
            capture_output=True,
            text=True,
            timeout=60,
            cwd=root,
        )
        assert report.returncode == 0, report.stderr
        assert team_url.split("@")[0].split(":")[-1] not in report.stdout + report.stderr
        keys = {g["key"] for g in json.loads(report.stdout)["groups"]}
        assert {"alice@example.com", "bob@example.com"} <= keys

        # A team cap below what the two spent: alice's next escalation is refused.
        (root / ".nearline.toml").write_text(config(llama_server, daily_cap=round(spent * 0.9, 4)))
        deadline = time.monotonic() + 30
        while True:
            action = await code_action(alice, uri, "explain")
            if "unavailable" in action.title or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        assert "the team's total daily budget" in action.title, action.title
        result = await run(alice, action)
        assert result["ok"] is False
        assert "budget.team.total" in result["message"], result
        assert len(team_rows(team_url)) == 2  # nothing was sent
    finally:
        await alice.finish()
        await bob.finish()
