"""``nearline usage --team``: the team's report over a real PostgreSQL team database, and its
table, JSON, CSV and HTML."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import random
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import psycopg
import pytest

from nearline.accounting.report.team_model import TeamReport
from nearline.accounting.report.team_render import CSV_FIELDS, as_text
from nearline.accounting.team import figures
from nearline.accounting.team.report import find_anomalies
from nearline.accounting.team.schema import REFRESH_DAILY, migrate
from nearline.app.team_report import team_report
from nearline.cli import main
from nearline.config import TeamSettings, parse_settings
from support.net import closed_port
from support.postgres import LocalPostgres

SETTINGS = parse_settings({})
FIRST, LAST = dt.date(2026, 4, 27), dt.date(2026, 5, 10)
WINDOW = ("--since", FIRST.isoformat(), "--until", LAST.isoformat())
Conn = psycopg.Connection[Any]


@pytest.fixture
def db(team_url: str) -> Iterator[Conn]:
    """The team database with nearline's tables, empty."""
    with psycopg.connect(team_url, autocommit=True) as conn:
        migrate(conn)
        yield conn


def request(conn: Conn, day: str, developer: str, cost: float, **kw: Any) -> None:
    """One request row; tokens and names from ``kw`` over plain defaults."""
    row: dict[str, Any] = {
        "project": "web",
        "client": "lsp",
        "task": "refactor",
        "tier": "value",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "input_tokens": 0,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "output_tokens": 0,
        **kw,
    }
    conn.execute(
        "INSERT INTO nearline_requests VALUES (gen_random_uuid()::text, %(day)s::timestamptz, "
        "%(day)s, %(developer)s, 'dev-1', %(project)s, %(client)s, %(task)s, %(tier)s, "
        "%(provider)s, %(model)s, 'python', 'ok', NULL, %(input_tokens)s, "
        "%(cache_read_tokens)s, %(cache_write_tokens)s, %(output_tokens)s, %(cost)s, 100)",
        {**row, "day": day, "developer": developer, "cost": cost},
    )
    conn.execute(REFRESH_DAILY, {"developer": developer, "days": [day]})  # as a sync does


def bucket(
    conn: Conn, day: str, developer: str, model: str, counts: tuple[int, ...], **kw: Any
) -> None:
    """One completion bucket: ``counts`` = (requests, shown, accepted, chars accepted, input
    tokens, output tokens); ``project``, ``client`` and ``cost`` in ``kw``."""
    conn.execute(
        "INSERT INTO nearline_completions VALUES (gen_random_uuid()::text, %s::timestamptz, "
        "%s, %s, 'dev-1', %s, %s, %s, 'python', %s, %s, %s, %s, %s, 0, %s, %s, 1000)",
        (
            day,
            day,
            developer,
            kw.get("project", "web"),
            kw.get("client", "lsp"),
            model,
            *counts,
            kw.get("cost", 0.0),
        ),
    )


@pytest.fixture
def team(db: Conn) -> Conn:
    """Three developers, two projects, three tools, two weeks across two months."""
    anthropic = {"tier": "flagship", "provider": "anthropic", "model": "claude-sonnet"}
    request(db, "2026-04-20", "alice", 9.0)  # in the baseline, before the window
    request(db, "2026-04-28", "alice", 0.5, input_tokens=1000, cache_read_tokens=3000)
    request(
        db,
        "2026-05-05",
        "alice",
        1.25,
        task="explain",
        input_tokens=2000,
        cache_read_tokens=6000,
        cache_write_tokens=2000,
        **anthropic,
    )
    request(db, "2026-04-30", "bob", 0.75, project="api", client="complete", input_tokens=4000)
    request(
        db,
        "2026-05-08",
        "bob",
        2.0,
        project="api",
        task="explain",
        input_tokens=1000,
        cache_read_tokens=1000,
        **anthropic,
    )
    request(
        db,
        "2026-05-01",
        "carol",
        0.0,
        client="eval",
        task="edit",
        tier="local",
        provider="local",
        model="qwen-coder",
        input_tokens=500,
    )
    request(db, "2026-05-11", "alice", 5.0)  # after the window
    bucket(db, "2026-04-28", "alice", "qwen-coder", (40, 30, 10, 500, 20000, 800))
    bucket(db, "2026-05-05", "alice", "qwen-coder", (20, 10, 5, 200, 10000, 400))
    bucket(db, "2026-05-06", "alice", "codestral", (5, 5, 5, 100, 1000, 50), cost=0.05)
    bucket(db, "2026-05-08", "bob", "qwen-coder", (10, 8, 0, 0, 5000, 200), project="api")
    return db


def report(**kw: Any) -> TeamReport:
    options: dict[str, Any] = {"period": "day", "by": None, "project": None, **kw}
    return team_report(SETTINGS, FIRST, LAST, **options)


def groups(found: TeamReport) -> dict[str, tuple[int, float]]:
    return {g.key: (g.requests, round(g.cost_usd, 10)) for g in found.groups}


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["usage", *args])
    out, err = capsys.readouterr()
    return code, out, err


def cli_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    code, out, err = cli(capsys, "--team", "--json", *args)
    assert code == 0, err
    return json.loads(out)


# -- groups and totals -----------------------------------------------------------------------


def test_groups_by_developer_project_client_and_totals(team: Conn) -> None:
    by_developer = report(by="developer")
    assert groups(by_developer) == {"bob": (12, 2.75), "alice": (67, 1.8), "carol": (1, 0.0)}
    assert [g.key for g in by_developer.groups] == ["bob", "alice", "carol"]  # by spend
    assert groups(report(by="project")) == {"web": (68, 1.8), "api": (12, 2.75)}
    assert groups(report(by="client")) == {
        "lsp": (78, 3.8),
        "complete": (1, 0.75),
        "eval": (1, 0.0),
    }
    total = by_developer.total
    assert (total.requests, round(total.cost_usd, 10)) == (80, 4.55)
    assert total.input_tokens == 1000 + 2000 + 4000 + 1000 + 500 + 20000 + 10000 + 1000 + 5000
    assert total.cache_read_tokens == 10000 and total.cache_write_tokens == 2000
    assert total.output_tokens == 800 + 400 + 50 + 200


def test_completion_buckets_are_the_local_tier_and_the_completion_task(team: Conn) -> None:
    assert groups(report(by="tier")) == {
        "local": (76, 0.05),
        "value": (2, 1.25),
        "flagship": (2, 3.25),
    }
    assert groups(report(by="task")) == {
        "completion": (75, 0.05),
        "refactor": (2, 1.25),
        "explain": (2, 3.25),
        "edit": (1, 0.0),
    }
    assert groups(report(by="model"))["qwen-coder"] == (71, 0.0)


def test_groups_by_day_week_and_month_in_time_order(team: Conn) -> None:
    assert list(groups(report()).items()) == [
        ("2026-04-28", (41, 0.5)),
        ("2026-04-30", (1, 0.75)),
        ("2026-05-01", (1, 0.0)),
        ("2026-05-05", (21, 1.25)),
        ("2026-05-06", (5, 0.05)),
        ("2026-05-08", (11, 2.0)),
    ]
    assert list(groups(report(period="week")).items()) == [
        ("2026-W18", (43, 1.25)),
        ("2026-W19", (37, 3.3)),
    ]
    assert list(groups(report(period="month")).items()) == [
        ("2026-04", (42, 1.25)),
        ("2026-05", (38, 3.3)),
    ]


def test_a_project_filter_reaches_every_figure(team: Conn) -> None:
    found = report(by="developer", project="web")
    assert groups(found) == {"alice": (67, 1.8), "carol": (1, 0.0)}
    assert {a.developer for a in found.acceptance} == {"alice"}
    assert {c.provider for c in found.cache} == {"openai", "anthropic"}
    assert groups(report(by="developer", project="nowhere")) == {}


def test_a_project_path_means_its_name(
    team: Conn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "web" / "src").mkdir(parents=True)
    (tmp_path / "web" / ".nearline.toml").write_text("")
    monkeypatch.chdir(tmp_path / "web" / "src")
    data = cli_json(capsys, "--by", "developer", "--project", ".", *WINDOW)
    assert data["window"]["project"] == "web"
    assert [g["key"] for g in data["groups"]] == ["alice", "carol"]


# -- acceptance and cache ----------------------------------------------------------------------


def test_acceptance_rate_and_cost_per_accepted_suggestion(team: Conn) -> None:
    rows = {(a.developer, a.model): a for a in report().acceptance}
    assert list(rows) == [
        ("alice", None),
        ("alice", "qwen-coder"),
        ("alice", "codestral"),
        ("bob", None),
        ("bob", "qwen-coder"),
    ]  # carol was shown no suggestion
    alice = rows["alice", None]
    assert (alice.shown, alice.accepted, alice.chars_accepted) == (45, 20, 800)
    assert alice.acceptance_rate == pytest.approx(20 / 45)
    # All of alice's spend in the window (escalations too) over her accepted suggestions.
    assert alice.cost_per_accepted == pytest.approx(1.80 / 20)
    assert rows["alice", "qwen-coder"].acceptance_rate == pytest.approx(15 / 40)
    assert rows["alice", "qwen-coder"].cost_per_accepted == 0.0
    assert rows["alice", "codestral"].cost_per_accepted == pytest.approx(0.05 / 5)
    bob = rows["bob", None]
    assert bob.acceptance_rate == 0.0 and bob.cost_per_accepted is None


def test_cache_hit_share_per_provider_over_billed_rows(team: Conn) -> None:
    shares = {c.provider: c.share for c in report().cache}
    assert shares == {
        "anthropic": pytest.approx(7000 / 12000),
        "openai": pytest.approx(3000 / 8000),
    }  # carol's local request is not billed


# -- anomalies -------------------------------------------------------------------------------


@pytest.fixture
def spiky(db: Conn) -> Conn:
    """Two weeks of steady spend, then dave's 3.5x day (2026-06-15) and the days that are not
    anomalies: erin's steady spend, frank's first day, gina's small one."""
    start = dt.date(2026, 6, 1)
    for i in range(14):
        day = (start + dt.timedelta(days=i)).isoformat()
        request(db, day, "dave", 0.9 if i % 2 else 1.1, project="spiky")
        request(db, day, "erin", 1.0, project="spiky", client="complete")
        request(db, day, "gina", 0.1, project="quiet", client="complete")
    request(db, "2026-06-15", "dave", 3.5, project="spiky")
    request(db, "2026-06-15", "erin", 1.0, project="spiky", client="complete")
    request(db, "2026-06-16", "dave", 1.2, project="spiky")  # noise
    request(db, "2026-06-16", "erin", 1.1, project="spiky", client="complete")
    request(db, "2026-06-16", "frank", 5.0, project="new", client="new-tool")
    request(db, "2026-06-16", "gina", 0.5, project="quiet", client="complete")  # under $1
    return db


def test_a_3x_day_is_flagged_and_normal_noise_is_not(spiky: Conn) -> None:
    found = team_report(
        SETTINGS, dt.date(2026, 6, 15), dt.date(2026, 6, 16), period="day", by=None, project=None
    )
    assert [(a.kind, a.name, a.day) for a in found.anomalies] == [
        ("developer", "dave", "2026-06-15"),
        ("tool", "lsp", "2026-06-15"),
    ]
    dave = found.anomalies[0]
    assert dave.spend_usd == pytest.approx(3.5) and dave.average_usd == pytest.approx(1.0)
    assert dave.baseline_days == 14
    assert "3.5x the 14-day average of $1.00" in dave.message
    assert [g.key for g in found.groups if g.anomaly] == ["2026-06-15"]


def test_anomalies_flag_their_groups_and_follow_the_team_settings(
    spiky: Conn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    window = ("--since", "2026-06-15", "--until", "2026-06-16")
    data = cli_json(capsys, "--by", "developer", *window)
    flagged = {g["key"]: g["anomaly"] for g in data["groups"]}
    assert flagged["dave"] and "developer dave" in flagged["dave"] and not flagged["erin"]
    assert data["anomalies"][0] == {
        "kind": "developer",
        "name": "dave",
        "day": "2026-06-15",
        "spend_usd": 3.5,
        "baseline_average_usd": 1.0,
        "baseline_days": 14,
        "message": data["anomalies"][0]["message"],
    }
    config = tmp_path / "config.toml"
    config.write_text("[team]\nanomaly_factor = 4.0\n")
    monkeypatch.setenv("NEARLINE_CONFIG", str(config))
    assert cli_json(capsys, *window)["anomalies"] == []


def test_anomalies_are_measured_against_days_before_the_window(spiky: Conn) -> None:
    rule = TeamSettings(anomaly_baseline_days=3)
    found = team_report(
        parse_settings({"team": {"anomaly_baseline_days": 3}}),
        dt.date(2026, 6, 15),
        dt.date(2026, 6, 15),
        period="day",
        by=None,
        project=None,
    )
    dave = found.anomalies[0]
    assert dave.baseline_days == rule.anomaly_baseline_days
    assert dave.average_usd == pytest.approx((0.9 + 1.1 + 0.9) / 3)  # June 12..14


def test_the_sliding_prefilter_misses_no_anomaly() -> None:
    """``find_anomalies`` asks ``figures.anomaly`` only about likely days; it finds what
    asking about every day finds."""
    rng = random.Random(7)
    rule = TeamSettings(anomaly_baseline_days=5, anomaly_min_usd=0.5)
    start = dt.date(2026, 1, 1)
    for _ in range(50):
        days = {
            (start + dt.timedelta(days=i)).isoformat(): rng.choice([0.0, 0.3, 1.0, 2.0, 7.0])
            for i in range(60)
            if rng.random() < 0.7
        }
        first, last = "2026-01-10", "2026-02-20"
        expected = [
            d
            for d in sorted(days)
            if first <= d <= last
            and figures.anomaly({k: (v, 0) for k, v in days.items()}, d, rule, min(days))
        ]
        found = find_anomalies({("developer", "x"): days}, first, last, rule)
        assert [a.day for a in found] == expected


# -- the command -------------------------------------------------------------------------------


def test_cli_table_fits_80_columns(team: Conn, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "--team", "--by", "developer", *WINDOW)
    assert code == 0, err
    assert all(len(line) <= 80 for line in out.splitlines())
    assert "bob" in out and "$2.75" in out and "$4.55" in out
    assert "acceptance: 20 of 53 suggestions (38%)" in out
    assert "anthropic 58%" in out and "openai 38%" in out
    text = as_text(report(by="model"))
    assert all(len(line) <= 80 for line in text.splitlines()) and "qwen-coder" in text


def test_json_is_a_stable_dict(team: Conn, capsys: pytest.CaptureFixture[str]) -> None:
    data = cli_json(capsys, "--by", "project", *WINDOW)
    assert list(data) == ["window", "groups", "acceptance", "cache", "anomalies", "totals"]
    assert data["window"] == {
        "since": "2026-04-27",
        "until": "2026-05-10",
        "period": "day",
        "by": "project",
        "project": None,
    }
    assert [(g["key"], g["cost_usd"]) for g in data["groups"]] == [("api", 2.75), ("web", 1.8)]
    assert data["totals"]["cost_usd"] == 4.55 and data["totals"]["requests"] == 80
    alice = data["acceptance"][0]
    assert alice["developer"] == "alice" and alice["model"] is None
    assert alice["cost_per_accepted_usd"] == 0.09 and alice["chars_accepted"] == 800
    assert {c["provider"]: c["cache_hit_share"] for c in data["cache"]}["openai"] == 0.375


def test_csv_holds_the_groups_and_the_total(team: Conn, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "--team", "--csv", "--weekly", *WINDOW)
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert tuple(rows[0]) == CSV_FIELDS
    assert [(r["key"], r["requests"], r["cost_usd"]) for r in rows] == [
        ("2026-W18", "43", "1.25"),
        ("2026-W19", "37", "3.3"),
        ("total", "80", "4.55"),
    ]


class Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.refs: list[str] = []
        self.tables: list[str] = []
        self._in_data = False
        self.data_block = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.refs += [v or "" for k, v in attrs if k in ("src", "href")]
        self.tables += [v or "" for k, v in attrs if tag == "table" and k == "id"]
        self._in_data = tag == "script" and ("id", "nearline-data") in attrs

    def handle_data(self, data: str) -> None:
        if self._in_data:
            self.data_block += data

    def handle_endtag(self, tag: str) -> None:
        self._in_data = False


def test_html_is_self_contained_and_holds_the_json(
    spiky: Conn, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bucket(spiky, "2026-06-15", "<b>evil</b>", "qwen-coder", (4, 4, 2, 10, 100, 10))
    window = ("--since", "2026-06-15", "--until", "2026-06-16")
    target = tmp_path / "team.html"
    code, out, err = cli(capsys, "--team", "--by", "developer", "--html", str(target), *window)
    assert code == 0 and str(target) in out, err
    text = target.read_text(encoding="utf-8")
    page = Page()
    page.feed(text)
    page.close()
    assert "http://" not in text and "https://" not in text and page.refs == []
    assert page.tags.count("svg") == 1
    assert page.tables == ["groups", "acceptance", "cache", "anomalies"]
    assert "<b>evil" not in text
    assert json.loads(page.data_block) == cli_json(capsys, "--by", "developer", *window)
    assert 'class="anomaly"' in text and "$3.50" in text
    code, _, err = cli(capsys, "--team", "--html", str(target), *window)  # per day: columns
    assert code == 0, err
    assert '<text x="0" y="12">max $7.80</text>' in target.read_text()


# -- errors and emptiness ----------------------------------------------------------------------


def test_by_developer_needs_team(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "--by", "developer")
    assert code == 1 and out == "" and "--by developer needs --team" in err


def test_an_unset_url_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("NEARLINE_TEAM_URL", raising=False)
    code, out, err = cli(capsys, "--team")
    assert code == 1 and out == ""
    assert "$NEARLINE_TEAM_URL" in err and "not configured" in err


def test_a_wrong_password_is_a_clear_error_that_never_shows_it(
    postgres: LocalPostgres,
    team_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    wrong = "Wr0ngSecret4242"
    monkeypatch.setenv("NEARLINE_TEAM_URL", team_url.replace(postgres.password, wrong))
    code, out, err = cli(capsys, "--team", "--json")
    assert code == 1 and out == ""
    assert "authentication failed" in err and "127.0.0.1" in err
    assert wrong not in err and postgres.password not in err


def test_a_database_that_is_down_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = "S3cretThatStays"
    monkeypatch.setenv("NEARLINE_TEAM_URL", f"postgresql://u:{secret}@127.0.0.1:{closed_port()}/db")
    code, out, err = cli(capsys, "--team")
    assert code == 1 and out == ""
    assert "cannot connect to the team database 127.0.0.1:" in err and secret not in err


def test_a_database_without_nearline_tables(
    team_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(capsys, "--team")
    assert code == 1 and out == ""
    assert "no nearline tables yet" in err and "nearline team sync" in err
    with psycopg.connect(team_url, autocommit=True) as conn:  # the report made none
        assert conn.execute("SELECT to_regclass('nearline_schema')").fetchone() == (None,)


def test_a_newer_schema_is_refused(db: Conn, capsys: pytest.CaptureFixture[str]) -> None:
    db.execute("UPDATE nearline_schema SET version = 99")
    code, _, err = cli(capsys, "--team")
    assert code == 1 and "version 99, newer than this nearline knows" in err


def test_an_empty_team_database(
    db: Conn, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(capsys, "--team", *WINDOW)
    assert code == 0, err
    assert "no requests in the team database between 2026-04-27 and 2026-05-10" in out
    data = cli_json(capsys, *WINDOW)
    assert data["groups"] == data["acceptance"] == data["cache"] == data["anomalies"] == []
    assert data["totals"]["requests"] == 0 and data["totals"]["cost_usd"] == 0
    code, out, _ = cli(capsys, "--team", "--csv", *WINDOW)
    assert out.splitlines()[1:] == ["total,0,0,0,0,0,0,0.0,"]
    assert cli(capsys, "--team", "--html", str(tmp_path / "e.html"), *WINDOW)[0] == 0
    assert "no requests in the team database" in (tmp_path / "e.html").read_text()
