"""``nearline usage``: the report over a real SQLite ledger, and its table, JSON, CSV and HTML."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import time
from collections.abc import Iterable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from nearline.accounting.entries import Entry
from nearline.accounting.ledger import Ledger
from nearline.accounting.ledger.queries import read_rows
from nearline.accounting.prices import PriceTable, Tokens
from nearline.accounting.report.export import CSV_FIELDS, to_json
from nearline.accounting.report.model import Report, build_report, summarize
from nearline.accounting.report.text import render, tokens_short, usd
from nearline.cli import main
from nearline.config import parse_settings

SETTINGS = parse_settings({"usage": {"flagship_model": "claude-sonnet-4-5"}})
# The bundled price of claude-sonnet-4-5, USD per token.
IN, OUT, READ, WRITE = 3e-6, 1.5e-5, 3e-7, 3.75e-6


@pytest.fixture(autouse=True)
def ledger_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated data dir, config and ledger; the CLI runs in ``tmp_path``."""
    config = tmp_path / "config.toml"
    config.write_text('[usage]\nflagship_model = "claude-sonnet-4-5"\n')
    monkeypatch.setenv("NEARLINE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("NEARLINE_CONFIG", str(config))
    monkeypatch.setenv("NEARLINE_LEDGER", str(tmp_path / "u.db"))
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path / "u.db"


def at(day: str, hour: int = 12) -> float:
    return time.mktime(dt.datetime.fromisoformat(f"{day}T{hour:02d}:00").timetuple())


def write(path: Path, entries: Iterable[Entry]) -> None:
    ledger = Ledger(path)
    for entry in entries:
        ledger.record(entry)
    assert ledger.flush()
    ledger.close()


def rows(path: Path) -> list[dict[str, Any]]:
    return [dict(r) for r in read_rows(path, "2000-01-01", "2100-01-01")]


def cloud(day: str, cost: float, **kw: Any) -> Entry:
    values: dict[str, Any] = dict(
        task="refactor",
        outcome="ok",
        tier="value",
        provider="openai",
        model="gpt-4o-mini",
        cloud=True,
        tokens=Tokens(input=1000, output=100),
        cost_usd=cost,
        ts=at(day),
    )
    values.update(kw)
    return Entry(**values)


def completion(day: str, accepted: bool | None, **kw: Any) -> Entry:
    values: dict[str, Any] = dict(
        task="completion",
        outcome="ok",
        model="qwen-coder",
        tokens=Tokens(input=500, output=20),
        accepted=accepted,
        ts=at(day),
    )
    values.update(kw)
    return Entry(**values)


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["usage", *args])
    out, err = capsys.readouterr()
    return code, out, err


def cli_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    code, out, err = cli(capsys, "--json", *args)
    assert code == 0, err
    return json.loads(out)


def text_of(table_report: Report) -> str:
    console = Console(width=80, record=True)
    render(table_report, console)
    return console.export_text()


# -- grouping ------------------------------------------------------------------------------


def test_groups_by_day_week_and_month(ledger_file: Path) -> None:
    days = ["2026-10-20", "2026-11-02", "2026-11-08", "2026-11-08", "2026-11-09", "2026-12-01"]
    write(ledger_file, [completion(d, False) for d in days])
    found = rows(ledger_file)

    def groups(period: str) -> list[tuple[str, int]]:
        report = build_report(
            found, SETTINGS, period=period, since="2026-11-01", until="2026-12-31"
        )
        assert report.total.requests == 5  # 2026-10-20 is before the window
        return [(g.key, g.requests) for g in report.groups]

    assert groups("day") == [
        ("2026-11-02", 1),
        ("2026-11-08", 2),
        ("2026-11-09", 1),
        ("2026-12-01", 1),
    ]
    # ISO weeks: Monday 2026-11-02 to Sunday 2026-11-08 is week 45.
    assert groups("week") == [("2026-W45", 3), ("2026-W46", 1), ("2026-W49", 1)]
    assert groups("month") == [("2026-11", 4), ("2026-12", 1)]


def test_groups_by_model_tier_project_and_task(ledger_file: Path) -> None:
    day = "2026-11-10"
    write(
        ledger_file,
        [
            cloud(day, 0.05, project="alpha", model="gpt-4o"),
            cloud(day, 0.01, project="beta", task="explain"),
            cloud(day, 0.01, project="beta", tier="flagship", model="claude-opus-4"),
            completion(day, True, project="alpha"),
            completion(
                day, None, project="", model="", outcome="served-from-cache", tokens=Tokens()
            ),
        ],
    )
    found = rows(ledger_file)

    def keys(by: str) -> list[str]:
        report = build_report(found, SETTINGS, by=by, since=day, until=day)
        assert sum(g.requests for g in report.groups) == report.total.requests == 5
        assert sum(g.total_tokens for g in report.groups) == report.total.total_tokens
        return [g.key for g in report.groups]

    # The costliest first; ties by tokens, then name; a missing value is "(none)".
    assert keys("model") == ["gpt-4o", "claude-opus-4", "gpt-4o-mini", "qwen-coder", "(none)"]
    assert keys("tier") == ["value", "flagship", "local"]
    assert keys("project") == ["alpha", "beta", "(none)"]
    assert keys("task") == ["refactor", "explain", "completion"]


def test_default_window_is_the_last_30_days() -> None:
    report = build_report([], SETTINGS, today=dt.date(2026, 11, 30))
    assert (report.since, report.until) == ("2026-11-01", "2026-11-30")
    assert report.groups == () and report.total.requests == 0


def test_weeks_and_months_are_shown_whole_by_default() -> None:
    today = dt.date(2026, 11, 23)  # the 30 days begin on Sunday 2026-10-25
    week = build_report([], SETTINGS, period="week", today=today)
    month = build_report([], SETTINGS, period="month", today=today)
    assert week.since == "2026-10-19" and dt.date.fromisoformat(week.since).weekday() == 0
    assert month.since == "2026-10-01"


def test_projects_sharing_a_name_are_told_apart_by_their_roots(ledger_file: Path) -> None:
    day = "2026-11-10"
    write(
        ledger_file,
        [
            cloud(day, 0.04, project="api", project_root="/home/a/api"),
            cloud(day, 0.02, project="api", project_root="/home/b/api"),
            cloud(day, 0.01, project="web", project_root="/home/a/web"),
        ],
    )
    report = build_report(rows(ledger_file), SETTINGS, by="project", since=day, until=day)
    assert [g.key for g in report.groups] == ["/home/a/api", "/home/b/api", "web"]


# -- the numbers ---------------------------------------------------------------------------


def test_saved_vs_flagship_matches_hand_computed(ledger_file: Path) -> None:
    day = "2026-11-10"
    write(
        ledger_file,
        [
            cloud(
                day, 0.01, tokens=Tokens(input=1000, cache_read=2000, cache_write=500, output=300)
            ),
            completion(day, None, tokens=Tokens(input=400, output=50)),  # local: free
        ],
    )
    report = build_report(rows(ledger_file), SETTINGS, by="tier", since=day, until=day)
    cloud_flagship = 1000 * IN + 2000 * READ + 500 * WRITE + 300 * OUT  # 0.009975
    local_flagship = 400 * IN + 50 * OUT  # 0.00195
    assert report.flagship_model == "claude-sonnet-4-5"
    by_tier = {g.key: g for g in report.groups}
    assert by_tier["value"].flagship_cost_usd == pytest.approx(cloud_flagship)
    assert by_tier["value"].saved_usd == pytest.approx(cloud_flagship - 0.01)
    assert by_tier["local"].flagship_cost_usd == pytest.approx(local_flagship)
    assert by_tier["local"].saved_usd == pytest.approx(local_flagship)
    total = report.total
    assert total.flagship_cost_usd == pytest.approx(0.011925)
    assert total.saved_usd == pytest.approx(0.001925)
    assert total.cost_usd == pytest.approx(0.01)
    assert (total.input_tokens, total.output_tokens) == (1400, 350)
    assert (total.cache_read_tokens, total.cache_write_tokens, total.total_tokens) == (
        2000,
        500,
        4250,
    )
    assert total.cache_hit_share == pytest.approx(2000 / (1400 + 2000 + 500))


def test_acceptance_rate_and_cost_per_accepted(ledger_file: Path) -> None:
    day, quiet = "2026-11-10", "2026-11-11"
    ledger = Ledger(ledger_file)
    for accepted in (True, False, False):
        ledger.record(completion(day, accepted))
    later = ledger.record(completion(day, False))
    ledger.accept(later)  # taken after it was logged
    ledger.record(completion(day, None, outcome="served-from-cache"))
    ledger.record(completion(day, None, outcome="typed-through"))
    ledger.record(cloud(day, 0.02))
    ledger.record(completion(quiet, False))
    assert ledger.flush()
    ledger.close()

    report = build_report(rows(ledger_file), SETTINGS, since=day, until=quiet)
    busy, idle = report.groups
    assert (busy.shown, busy.accepted, busy.acceptance_rate) == (4, 2, 0.5)
    assert busy.cost_per_accepted == pytest.approx(0.01)  # all the day's cost / accepted
    assert (busy.completions, busy.from_cache) == (6, 2)
    assert busy.completion_cache_share == pytest.approx(1 / 3)
    assert (idle.acceptance_rate, idle.cost_per_accepted) == (0.0, None)

    data = json.loads(to_json(report))
    assert data["groups"][0]["acceptance_rate"] == 0.5
    assert data["groups"][1]["cost_per_accepted_usd"] is None
    assert data["total"]["cost_per_accepted_usd"] == pytest.approx(0.01)


@pytest.mark.parametrize(
    ("n", "text"),
    [(0, "0"), (999, "999"), (34_500, "34.5k"), (999_960, "1.0M"), (1_234_567, "1.2M")],
)
def test_tokens_short(n: int, text: str) -> None:
    assert tokens_short(n) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [(None, "-"), (0.0123, "$0.0123"), (12.345, "$12.35"), (1234.5, "$1,234"), (-0.5, "-$0.5000")],
)
def test_usd(value: float | None, text: str) -> None:
    assert usd(value) == text


# -- anomalies -----------------------------------------------------------------------------


def test_spike_day_is_flagged_everywhere(
    ledger_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A steady $1.50 a day for a week, then $9: 6x the trailing average.
    days = [f"2026-11-{d:02d}" for d in range(1, 10)]
    write(ledger_file, [cloud(d, 9.0 if d == days[-1] else 1.5) for d in days])
    # The window starts after the history: its first day is measured against the week before.
    window = ("--since", "2026-11-08", "--until", "2026-11-09")

    data = cli_json(capsys, *window)
    assert [a["day"] for a in data["anomalies"]] == ["2026-11-09"]
    flags = {g["key"]: g["anomaly"] for g in data["groups"]}
    assert flags["2026-11-08"] is None
    assert flags["2026-11-09"].startswith("spend on 2026-11-09 is $9.00, 6.0x")

    weekly = cli_json(capsys, "--weekly", *window)
    assert [g["anomaly"] is not None for g in weekly["groups"]] == [False, True]

    by_model = cli_json(capsys, "--by", "model", *window)
    assert by_model["groups"][0]["anomaly"] is None
    assert len(by_model["anomalies"]) == 1

    _, out, _ = cli(capsys, "--csv", *window)
    csv_flags = {r["key"]: r["anomaly"] for r in csv.DictReader(io.StringIO(out))}
    assert csv_flags["2026-11-09"] == flags["2026-11-09"] and csv_flags["2026-11-08"] == ""

    code, out, _ = cli(capsys, *window)
    assert code == 0
    assert "2026-11-09 !" in out and "2026-11-08 !" not in out
    assert f"! {flags['2026-11-09']}" in out


# -- the command ---------------------------------------------------------------------------


def test_project_filter_by_name_and_path(
    ledger_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    day = "2026-11-10"
    gamma = tmp_path / "gamma"
    gamma.mkdir()
    write(
        ledger_file,
        [
            cloud(day, 0.01, project="alpha", project_root="/src/alpha"),
            cloud(day, 0.02, project="beta", project_root="/src/beta"),
            cloud(day, 0.04, project="beta", project_root="/src/beta"),
            cloud(day, 0.08, project="gamma", project_root=str(gamma.resolve())),
        ],
    )
    window = ("--since", day, "--until", day)
    assert cli_json(capsys, *window)["total"]["requests"] == 4
    alpha = cli_json(capsys, "--project", "alpha", *window)
    assert (alpha["project"], alpha["total"]["requests"]) == ("alpha", 1)
    beta = cli_json(capsys, "--project", "/src/beta", *window)
    assert beta["total"]["cost_usd"] == pytest.approx(0.06)
    monkeypatch.chdir(gamma)
    here = cli_json(capsys, "--project", ".", *window)
    assert (here["total"]["requests"], here["total"]["cost_usd"]) == (1, 0.08)
    assert cli_json(capsys, "--project", "nobody", *window)["groups"] == []


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--since", "2026-13-01"], "--since: expected a date as YYYY-MM-DD, got '2026-13-01'"),
        (["--until", "yesterday"], "--until: expected a date as YYYY-MM-DD"),
        (["--since", "20261101"], "--since: expected a date as YYYY-MM-DD"),
        (["--since", "2026-11-05", "--until", "2026-11-01"], "--since 2026-11-05 is after --until"),
    ],
)
def test_bad_dates_exit_1_with_a_clear_message(
    capsys: pytest.CaptureFixture[str], args: list[str], words: str
) -> None:
    code, out, err = cli(capsys, *args)
    assert code == 1 and out == ""
    assert err.startswith("nearline: ") and words in err


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--weekly", "--by", "model"], "--by model groups the whole window"),
        (["--html", ""], "--html needs a file name"),
    ],
)
def test_flags_that_cannot_be_honoured_are_refused(
    capsys: pytest.CaptureFixture[str], args: list[str], words: str
) -> None:
    code, out, err = cli(capsys, *args)
    assert code == 1 and out == "" and words in err


def test_a_flagship_without_a_price_is_said_not_counted_as_free(
    ledger_file: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "config.toml").write_text('[usage]\nflagship_model = "no-such-model"\n')
    day = "2026-11-10"
    write(ledger_file, [cloud(day, 0.5)])
    data = cli_json(capsys, "--since", day, "--until", day)
    assert len(data["warnings"]) == 1 and "no-such-model has no price" in data["warnings"][0]
    code, out, _ = cli(capsys, "--since", day, "--until", day)
    assert code == 0 and "! no-such-model has no price" in out


def test_a_path_inside_a_project_means_the_project(
    ledger_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = tmp_path / "proj"
    (root / "src" / "deep").mkdir(parents=True)
    (root / ".nearline.toml").write_text("")
    day = "2026-11-10"
    write(ledger_file, [cloud(day, 0.25, project="proj", project_root=str(root.resolve()))])
    monkeypatch.chdir(root / "src" / "deep")
    data = cli_json(capsys, "--project", ".", "--since", day, "--until", day)
    assert data["total"]["cost_usd"] == pytest.approx(0.25)


def test_a_ledger_path_that_is_a_folder_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEARLINE_LEDGER", str(tmp_path))
    code, _, err = cli(capsys)
    assert code == 1 and "a folder, not a ledger file" in err


def test_unreadable_ledger_is_a_clear_error(
    ledger_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junk = b"this is not a database\n" * 200
    ledger_file.write_bytes(junk)
    code, _, err = cli(capsys, "--json")
    assert code == 1
    assert err.startswith("nearline: cannot read the usage ledger") and str(ledger_file) in err
    assert ledger_file.read_bytes() == junk  # a report leaves the file where it is
    assert [p.name for p in ledger_file.parent.glob("u.db*")] == ["u.db"]


def test_empty_ledger(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    window = ("--since", "2026-11-01", "--until", "2026-11-30")
    code, out, _ = cli(capsys, *window)
    assert code == 0
    assert out.strip() == "no requests recorded between 2026-11-01 and 2026-11-30"
    data = cli_json(capsys, *window)
    assert data["groups"] == [] and data["total"]["requests"] == 0
    _, out, _ = cli(capsys, "--csv", *window)
    assert [r["key"] for r in csv.DictReader(io.StringIO(out))] == ["total"]
    assert cli(capsys, "--html", str(tmp_path / "r.html"), *window)[0] == 0
    assert "no requests recorded" in (tmp_path / "r.html").read_text()


def test_default_window_through_today(
    ledger_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(ledger_file, [completion(dt.date.today().isoformat(), True)])
    data = cli_json(capsys)
    today = dt.date.today()
    assert data["until"] == today.isoformat()
    assert data["since"] == (today - dt.timedelta(days=29)).isoformat()
    assert data["total"]["requests"] == 1


def test_a_new_ledgers_first_days_are_measured_only_against_its_history(
    ledger_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A team's first three days: $9, $8, then $30 (3.5x the $8.50 of the two days known).
    write(ledger_file, [cloud("2026-11-02", 9.0), cloud("2026-11-03", 8.0)])
    write(ledger_file, [cloud("2026-11-04", 30.0)])
    data = cli_json(capsys, "--since", "2026-11-01", "--until", "2026-11-04")
    assert [a["day"] for a in data["anomalies"]] == ["2026-11-04"]
    assert "3.5x the 2-day average of $8.50" in data["anomalies"][0]["message"]


# -- renderers -----------------------------------------------------------------------------


BUSY = ("--since", "2026-11-01", "--until", "2026-11-14")


def busy_ledger(path: Path) -> None:
    """Three weeks of mixed traffic (the last two are reported), big numbers, long names, and
    one spike on 2026-11-14."""
    entries = []
    start = dt.date(2026, 10, 25)
    for i in range(21):
        date = start + dt.timedelta(days=i)
        day, d = date.isoformat(), date.day
        big = Tokens(input=900_000_000, cache_read=2_500_000, cache_write=120_000, output=88_000)
        entries += [
            cloud(day, 1234.5 if d == 14 else 12.5, tokens=big),
            cloud(day, 0.5, tier="flagship", model="claude-opus-4-1-20250805-with-a-long-suffix"),
            completion(day, d % 2 == 0, project="a-project-with-a-rather-long-name-indeed"),
            completion(day, None, outcome="typed-through"),
        ]
    write(path, entries)


@pytest.mark.parametrize(
    "kw",
    [{}, {"period": "week"}, {"period": "month"}, {"by": "model"}, {"by": "project"}],
)
def test_table_fits_80_columns(ledger_file: Path, kw: dict[str, Any]) -> None:
    busy_ledger(ledger_file)
    report = build_report(rows(ledger_file), SETTINGS, since="2026-11-01", until="2026-11-14", **kw)
    text = text_of(report)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80, text
    assert "claude-sonnet-4-5" in text  # what "saved" compares with
    assert "12.6G" in text  # 14 x 900M tokens, abbreviated
    assert "! spend on 2026-11-14" in text
    for header in ("input", "output", "write", "read", "total", "cost", "saved", "acc", "$/acc"):
        assert header in lines[0] + lines[1]


def test_cli_table(ledger_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    busy_ledger(ledger_file)
    code, out, _ = cli(capsys, *BUSY)
    assert code == 0
    assert max(len(line) for line in out.splitlines()) <= 80, out
    assert "2026-11-14 !" in out and "total" in out and "7 of 14 suggestions (50%)" in out


def test_csv_matches_json(ledger_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    busy_ledger(ledger_file)
    window = ("--by", "task", *BUSY)
    data = cli_json(capsys, *window)
    _, out, _ = cli(capsys, "--csv", *window)
    reader = csv.DictReader(io.StringIO(out))
    assert tuple(reader.fieldnames or ()) == CSV_FIELDS
    table = list(reader)
    expected = [*data["groups"], data["total"]]
    assert [r["key"] for r in table] == [g["key"] for g in data["groups"]] + ["total"]
    for line, group in zip(table, expected, strict=True):
        for field in CSV_FIELDS:
            value = group[field]
            if value is None:
                assert line[field] == ""
            elif isinstance(value, str):
                assert line[field] == value
            else:
                assert float(line[field]) == pytest.approx(value), field


class Page(HTMLParser):
    """What a browser would load: tags, outside references, the data block, the text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.refs: list[str] = []
        self.data_block = ""
        self.rows: list[list[str]] = []
        self._in_data = False
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        found = dict(attrs)
        self.refs += [v or "" for k, v in attrs if k in ("src", "href", "xlink:href")]
        self._in_data = tag == "script" and found.get("id") == "nearline-data"
        if tag == "tr":
            self.rows.append([])
        if tag == "td":
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None:
            self.rows[-1].append("".join(self._cell))
            self._cell = None
        self._in_data = False

    def handle_data(self, data: str) -> None:
        if self._in_data:
            self.data_block += data
        if self._cell is not None:
            self._cell.append(data)


def test_html_report_is_self_contained_and_holds_the_json_numbers(
    ledger_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    busy_ledger(ledger_file)
    write(ledger_file, [cloud("2026-11-03", 0.25, model="<b>evil</b> & co")])
    window = BUSY
    target = tmp_path / "report.html"
    code, out, _ = cli(capsys, "--html", str(target), *window)
    assert code == 0 and str(target) in out
    text = target.read_text(encoding="utf-8")

    page = Page()
    page.feed(text)
    page.close()
    assert "http://" not in text and "https://" not in text
    assert page.refs == [] and "link" not in page.tags and "img" not in page.tags
    assert page.tags.count("svg") == 4  # spend by tier, tokens by model, cache hits, acceptance
    assert "<b>evil" not in text  # user data is escaped

    embedded = json.loads(page.data_block)
    assert embedded == cli_json(capsys, *window)
    assert "<b>evil</b> & co" in embedded["tokens_by_model"]

    total = embedded["total"]
    visible = {r[0]: r for r in page.rows if r}
    assert visible["total"][1:8] == [
        f"{total['requests']:,}",
        f"{total['input_tokens']:,}",
        f"{total['output_tokens']:,}",
        f"{total['cache_write_tokens']:,}",
        f"{total['cache_read_tokens']:,}",
        f"{total['total_tokens']:,}",
        usd(total["cost_usd"]),
    ]
    assert visible["total"][9] == usd(total["saved_usd"])
    for group in embedded["groups"]:
        assert visible[group["key"]][7] == usd(group["cost_usd"])
    assert 'class="anomaly"' in text and embedded["anomalies"][0]["day"] == "2026-11-14"


def test_local_kv_cache_reads_count_as_uncached_input_on_the_flagship() -> None:
    from nearline.accounting.prices import Price

    local = {
        "task": "completion",
        "tier": "local",
        "provider": "local",
        "cloud": 0,
        "input_tokens": 2,
        "cache_read_tokens": 300,
        "cache_write_tokens": 0,
        "output_tokens": 10,
        "cost_usd": 0.0,
        "outcome": "ok",
        "accepted": None,
        "day": "2026-11-23",
    }
    cloud = dict(local, provider="big", tier="flagship", cloud=1, task="refactor")
    sonnet = Price(3e-6, 1.5e-5, 3e-7, 3.75e-6)
    # The cloud has no copy of llama.cpp's KV cache: 302 uncached input tokens, 10 out.
    assert summarize("d", [local], sonnet).flagship_cost_usd == 0.001056
    # A cloud request's own cache reads stay cache reads: 2 * 3e-6 + 300 * 3e-7 + 10 * 1.5e-5
    assert summarize("d", [cloud], sonnet).flagship_cost_usd == 0.000246


def test_cache_hit_share_per_tier_and_what_provider_caching_saved(
    ledger_file: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    day = dt.date.today().isoformat()
    sonnet = dict(tier="flagship", provider="claude", model="claude-sonnet-4-5")
    write(
        ledger_file,
        [
            cloud(
                day, 0.01, tokens=Tokens(input=1000, cache_read=8000, cache_write=1000), **sonnet
            ),
            cloud(day, 0.01, tokens=Tokens(input=3000, cache_read=1000)),  # gpt-4o-mini
            completion(day, None, tokens=Tokens(input=100, cache_read=300, output=5)),
        ],
    )
    mini = PriceTable().get("gpt-4o-mini")
    assert mini is not None and mini.cache_read_input_token_cost is not None
    saved = (
        8000 * (IN - READ)
        - 1000 * (WRITE - IN)
        + 1000 * (mini.input_cost_per_token - mini.cache_read_input_token_cost)
    )
    report = build_report(rows(ledger_file), SETTINGS, by="tier", since=day, until=day)
    total = report.total
    assert total.cache_by_tier == {
        "flagship": pytest.approx(0.8),
        "local": pytest.approx(0.75),
        "value": pytest.approx(0.25),
    }
    assert total.cache_saved_usd == pytest.approx(saved)
    text = text_of(report)
    assert "cache hits by tier: flagship 80%, local 75%, value 25%" in text
    assert f"provider caching saved {usd(saved)}" in text
    capsys.readouterr()  # text_of printed the table
    data = cli_json(capsys, "--by", "tier")
    assert data["total"]["cache_hit_share_by_tier"]["flagship"] == pytest.approx(0.8)
    assert data["total"]["cache_saved_usd"] == pytest.approx(saved)
    code, _, err = cli(capsys, "--html", str(tmp_path / "u.html"))
    assert code == 0, err
    page = (tmp_path / "u.html").read_text()
    assert "caching saved" in page and "cache hits by tier: flagship 80%" in page


def test_one_hour_cache_writes_are_recorded_and_reported_apart(
    ledger_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tokens = Tokens(input=100, cache_write=3000, cache_write_1h=2000, output=50)
    write(ledger_file, [cloud("2026-11-03", 0.02, tokens=tokens, provider="anthropic")])
    (row,) = rows(ledger_file)
    assert (row["cache_write_tokens"], row["cache_write_1h_tokens"]) == (3000, 2000)
    assert main(["usage", "--json", "--since", "2026-11-01", "--until", "2026-11-30"]) == 0
    total = json.loads(capsys.readouterr().out)["total"]
    assert (total["cache_write_tokens"], total["cache_write_1h_tokens"]) == (3000, 2000)
    # the flagship's 1h writes at twice its input price, the others at 1.25x
    flagship = 100 * IN + 1000 * WRITE + 2000 * 2 * IN + 50 * OUT
    assert total["flagship_cost_usd"] == pytest.approx(flagship, abs=1e-6)
    assert main(["usage", "--since", "2026-11-01", "--until", "2026-11-30"]) == 0
    assert "cache writes kept an hour: 2,000 of 3,000" in capsys.readouterr().out
