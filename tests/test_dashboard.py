"""``nearline dashboard`` over this machine's ledger: the page's model (filters, budgets and the
day they run out, the levers), and the real server (uvicorn on 127.0.0.1) over HTTP: the page,
its JSON equal to ``usage --json``, the CSV equal to the table, the token and the Host check,
bad filters, SIGTERM."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest

from nearline.accounting.prices import Price, Tokens
from nearline.accounting.report import dashboard as board
from nearline.app.dashboard import Filters, local_dashboard, parse_filters
from nearline.cli import main
from nearline.config import parse_settings
from nearline.errors import ConfigError
from nearline.web.app import host_name
from nearline.web.serve import is_loopback
from test_usage import cloud, completion, write

TODAY = dt.date.today()
DAYS = [(TODAY - dt.timedelta(days=n)).isoformat() for n in (0, 1, 2)]


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A ledger of three days: completions on two models, cloud requests on two tiers."""
    path = tmp_path / "u.db"
    config = tmp_path / "config.toml"
    config.write_text(
        '[usage]\nflagship_model = "claude-sonnet-4-5"\n[budget.user]\nmonthly_usd = 10.0\n'
    )
    monkeypatch.setenv("NEARLINE_LEDGER", str(path))
    monkeypatch.setenv("NEARLINE_CONFIG", str(config))
    monkeypatch.chdir(tmp_path)
    entries = []
    for i, day in enumerate(DAYS):
        entries += [
            completion(day, True, chars=10 + i, project="web", project_root="/src/web"),
            completion(day, False, model="codestral", project="web", project_root="/src/web"),
            cloud(day, 0.5 + i, project="api", project_root="/src/api"),
            cloud(
                day,
                1.0,
                tier="flagship",
                provider="anthropic",
                model="claude-sonnet-4-5",
                tokens=Tokens(input=1000, cache_read=4000, output=200),
                client="complete",
                project="web",
                project_root="/src/web",
            ),
        ]
    write(path, entries)
    return path


def settings() -> Any:
    return parse_settings(
        {
            "usage": {"flagship_model": "claude-sonnet-4-5"},
            "budget": {"user": {"monthly_usd": 10.0}},
        }
    )


# -- the model ---------------------------------------------------------------------------------


def test_filters_parse_and_round_trip() -> None:
    f = parse_filters({"period": "week", "model": " qwen ", "since": "2026-11-01", "x": "y"})
    assert f == Filters(period="week", since="2026-11-01", model="qwen")
    assert f.query() == {"period": "week", "since": "2026-11-01", "model": "qwen"}
    assert f.query(model=None) == {"period": "week", "since": "2026-11-01"}
    assert f.narrow() == {"model": "qwen"}
    for bad, said in (
        ({"period": "year"}, "period"),
        ({"stack": "model"}, "stack"),
        ({"since": "11/01/2026"}, "since"),
        ({"since": "2026-11-05", "until": "2026-11-01"}, "after"),
        ({"model": "x" * 300}, "model"),
        ({"tier": "a\x00b"}, "tier"),
    ):
        with pytest.raises(ConfigError, match=said):
            parse_filters(bad)


@pytest.mark.parametrize(
    ("spent", "cap", "asof", "expected"),
    [
        (50.0, 100.0, "2026-11-10", "2026-11-20"),  # $5 a day: $50 more in 10 days
        (10.0, 100.0, "2026-11-10", None),  # $1 a day: not before the month ends
        (0.0, 100.0, "2026-11-10", None),
        (100.0, 100.0, "2026-11-10", "2026-11-10"),  # reached
        (29.0, 30.0, "2026-11-29", "2026-11-30"),
    ],
)
def test_run_out_day(spent: float, cap: float, asof: str, expected: str | None) -> None:
    assert board.run_out(spent, cap, dt.date.fromisoformat(asof)) == expected


def test_levers_add_up_to_what_was_saved() -> None:
    flag = Price(
        input_cost_per_token=3e-6, output_cost_per_token=15e-6, cache_read_input_token_cost=3e-7
    )
    value = Price(
        input_cost_per_token=1e-6, output_cost_per_token=2e-6, cache_read_input_token_cost=1e-7
    )
    sums = [
        board.ModelSums(
            "local", "local", "qwen", False, Tokens(input=100, cache_read=900, output=10), 0.0
        ),
        board.ModelSums(
            "value", "openai", "mini", True, Tokens(input=1000, cache_read=9000, output=100), 0.0013
        ),
        board.ModelSums(
            "flagship", "anthropic", "sonnet", True, Tokens(input=500, output=50), 0.00225
        ),
    ]
    naive, levers = board.levers(sums, flag, lambda p, m: {"mini": value, "sonnet": flag}.get(m))
    saved = {v.name: v.saved_usd for v in levers}
    assert naive == pytest.approx(
        1000 * 3e-6 + 10 * 15e-6 + 10000 * 3e-6 + 100 * 15e-6 + 500 * 3e-6 + 50 * 15e-6
    )
    assert saved["local model"] == pytest.approx(1000 * 3e-6 + 10 * 15e-6)
    assert saved["routing"] == pytest.approx(10000 * 2e-6 + 100 * 13e-6)
    assert saved["provider caching"] == pytest.approx(10000 * 1e-6 + 100 * 2e-6 - 0.0013)
    assert saved["diffs"] is None
    known = sum(v.saved_usd for v in levers if v.saved_usd is not None)
    assert known == pytest.approx(naive - (0.0013 + 0.00225))


def test_local_dashboard_sums_match_the_ledger(ledger: Path) -> None:
    d = local_dashboard(settings(), Filters(), root=Path("/src/web"))
    assert d.cost_usd == pytest.approx(sum(0.5 + i + 1.0 for i in range(3)))
    assert sum(s.cost_usd for s in d.slices) == pytest.approx(d.cost_usd)
    assert {s.part for s in d.slices} == {"local", "value", "flagship"}
    assert len(d.requests) == 12 and not d.more_requests
    models = {s.key: s for s in d.by_model}
    assert (models["qwen-coder"].shown, models["qwen-coder"].accepted) == (3, 3)
    assert models["qwen-coder"].chars_accepted == 10 + 11 + 12
    assert (models["codestral"].shown, models["codestral"].accepted) == (3, 0)
    assert d.choices["project"] == ("api", "web") and d.choices["client"] == ("complete", "lsp")
    (you,) = [b for b in d.budgets if b.scope == "you"]
    month = [day for day in DAYS if day[:7] == TODAY.isoformat()[:7]]
    assert you.spent_usd == pytest.approx(sum(0.5 + DAYS.index(day) + 1.0 for day in month))

    narrowed = local_dashboard(settings(), Filters(tier="flagship", stack="client"))
    assert narrowed.cost_usd == pytest.approx(3.0)
    assert {s.part for s in narrowed.slices} == {"complete"}
    assert all(r[5] == "flagship" for r in narrowed.requests) and len(narrowed.requests) == 3
    by_project = local_dashboard(settings(), Filters(project="api"))
    assert by_project.cost_usd == pytest.approx(0.5 + 1.5 + 2.5)
    with pytest.raises(ConfigError, match="team"):
        local_dashboard(settings(), Filters(developer="alice"))


def test_loopback_and_host_names() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("::") and not is_loopback("10.1.2.3")
    assert not is_loopback("example.com")
    assert host_name("127.0.0.1:8760") == "127.0.0.1" and host_name("[::1]:80") == "[::1]"
    assert host_name("localhost") == "localhost"


# -- the real server ---------------------------------------------------------------------------


class Tables(HTMLParser):
    """The text of each table's body cells, by the table's id."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._table: str | None = None
        self._in_body = False
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self._table = dict(attrs).get("id") or ""
            self.tables[self._table] = []
        elif tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body and self._table is not None:
            self.tables[self._table].append([])
        elif tag == "td" and self._in_body:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None and self._table is not None:
            self.tables[self._table][-1].append("".join(self._cell))
            self._cell = None
        elif tag == "tbody":
            self._in_body = False
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def tables_of(html: str) -> dict[str, list[list[str]]]:
    parser = Tables()
    parser.feed(html)
    return parser.tables


class Dashboard:
    """``nearline dashboard`` as a child process; its URL as it printed it."""

    def __init__(
        self, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "nearline", "dashboard", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env or dict(os.environ),
            cwd=cwd,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if " at http" not in line:
            self.proc.kill()
            raise AssertionError(
                f"no URL: {line!r} {self.proc.stderr.read() if self.proc.stderr else ''}"
            )
        self.url = line.split(" at ", 1)[1].strip()
        self.base = self.url.split("?", 1)[0]

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=15)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


@pytest.fixture
def served(ledger: Path) -> Iterator[Dashboard]:
    server = Dashboard("--token")
    yield server
    server.stop()


def test_token_is_asked_checked_and_set_as_a_cookie(served: Dashboard) -> None:
    token = served.url.split("token=", 1)[1]
    assert httpx.get(served.base).status_code == 401
    assert httpx.get(served.base + "api/dashboard").status_code == 401
    assert httpx.get(served.base + "requests.csv", params={"token": "x" + token}).status_code == 403
    bearer = httpx.get(served.base + "api/report", headers={"Authorization": f"Bearer {token}"})
    assert bearer.status_code == 200
    with httpx.Client() as client:
        first = client.get(served.base, params={"token": token, "model": "codestral"})
        assert first.status_code == 303 and first.headers["location"] == "/?model=codestral"
        assert "token" not in first.headers["location"]
        page = client.get(served.base + "?model=codestral")
        assert page.status_code == 200 and "<svg" in page.text
        assert page.headers["content-security-policy"].startswith("default-src 'none'")


def test_page_json_and_csv_agree_with_the_ledger(
    served: Dashboard, capsys: pytest.CaptureFixture[str]
) -> None:
    token = served.url.split("token=", 1)[1]
    auth = {"Authorization": f"Bearer {token}"}
    since = DAYS[-1]
    report = httpx.get(served.base + "api/report", params={"since": since}, headers=auth).json()
    assert main(["usage", "--json", "--since", since]) == 0
    assert report == json.loads(capsys.readouterr().out)

    query = {"tier": "value", "since": since}
    page = httpx.get(served.base, params=query, headers=auth).text
    table = tables_of(page)["requests-table"]
    text = httpx.get(served.base + "requests.csv", params=query, headers=auth).text
    assert list(csv.reader(io.StringIO(text)))[1:] == table
    assert len(table) == 3 and {row[5] for row in table} == {"value"}
    data = httpx.get(served.base + "api/dashboard", params=query, headers=auth).json()
    assert data["savings"]["cost_usd"] == pytest.approx(0.5 + 1.5 + 2.5)
    assert data["filters"] == query
    assert sum(d["cost_usd"] for d in data["days"]) == pytest.approx(4.5)

    bad = httpx.get(served.base, params={"period": "year"}, headers=auth)
    assert bad.status_code == 400 and "period" in bad.text


def test_loopback_bind_serves_only_a_loopback_host(ledger: Path) -> None:
    server = Dashboard()
    try:
        assert "token" not in server.url
        assert httpx.get(server.base).status_code == 200
        rebound = httpx.get(server.base, headers={"Host": "evil.example:8760"})
        assert rebound.status_code == 403
    finally:
        assert server.stop() == 0


def test_team_without_a_database_says_why(ledger: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NEARLINE_TEAM_URL", raising=False)
    proc = subprocess.run(
        [sys.executable, "-m", "nearline", "dashboard", "--team", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1 and "NEARLINE_TEAM_URL" in proc.stderr


def test_other_tools_beside_nearline_outside_its_budgets_and_levers(
    ledger: Path, tmp_path: Path
) -> None:
    from nearline.app.usage_import import import_usage
    from nearline.web.page import render
    from test_imports import assistant, jsonl
    from test_usage_import import COPILOT_ORG

    before = local_dashboard(settings(), Filters(stack="client"), root=Path("/src/web"))
    log = jsonl(tmp_path / "s.jsonl", assistant("msg_a", 100, ts=f"{DAYS[1]}T10:00:00Z"))
    os.utime(log, (0, 0))  # an old log: no session is still writing it
    report = tmp_path / "copilot.json"
    report.write_text(json.dumps([{**COPILOT_ORG[0], "date": DAYS[1]}]))
    (claude,) = import_usage(settings(), ["claude-code"], [log])
    import_usage(settings(), ["copilot"], [report])
    d = local_dashboard(settings(), Filters(stack="client"), root=Path("/src/web"))
    cost = d.cost_usd - before.cost_usd
    assert claude.records == 1 and cost > 0
    assert {s.part for s in d.slices} == {"complete", "lsp", "claude-code"}
    assert d.naive_usd == pytest.approx(before.naive_usd + cost)  # at its own cost: no lever
    assert [v.saved_usd for v in d.levers] == [v.saved_usd for v in before.levers]
    assert [b.spent_usd for b in d.budgets] == [b.spent_usd for b in before.budgets]
    tools = tables_of(render(d))["tools"]
    assert tools == [["copilot", "1", "1,000", "250", "25%", "420 of 1,500", "57"]]
