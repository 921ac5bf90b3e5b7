"""The dashboard in a real browser: Debian's Chromium, driven by Playwright, on
``nearline dashboard --team`` over a real PostgreSQL. The charts render, a filter changes the
figures to the database's sums, a bar leads to its day's requests, the CSV is the table, and a
browser without the token is refused."""

from __future__ import annotations

import csv
import io
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from test_dashboard import Dashboard
from test_team_report import FIRST, LAST, Conn, db, team  # noqa: F401

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
INSTALL = (
    "apt-get install -y chromium; .venv/bin/pip install playwright (scripts/test.sh does both)"
)
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"]

playwright = pytest.importorskip("playwright.sync_api", reason=f"needs Playwright: {INSTALL}")
pytestmark = pytest.mark.skipif(
    not os.access(CHROMIUM, os.X_OK), reason=f"needs Chromium: {INSTALL}"
)


@pytest.fixture
def browser() -> Iterator[Any]:
    with playwright.sync_playwright() as p:
        found = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield found
        found.close()


def only_loopback(route: Any) -> None:
    """Nothing but the dashboard's own address leaves the browser."""
    if route.request.url.startswith("http://127.0.0.1:"):
        route.continue_()
    else:
        route.abort()


def db_cost(conn: Conn, **where: str) -> float:
    """The window's spend from the database's rows, as a person would sum it."""
    clause = "".join(f" AND {k} = %({k})s" for k in where)
    params = {"first": FIRST, "last": LAST, **where}
    total = 0.0
    for table in ("nearline_requests", "nearline_completions"):
        row = conn.execute(
            f"SELECT coalesce(sum(cost_usd), 0) FROM {table} "
            f"WHERE day BETWEEN %(first)s AND %(last)s{clause}",
            params,
        ).fetchone()
        total += float(row[0]) if row else 0.0
    return round(total, 2)


def table_rows(page: Any) -> list[list[str]]:
    rows: list[list[str]] = page.eval_on_selector_all(
        "#requests-table tbody tr",
        "rows => rows.map(r => [...r.cells].map(c => c.textContent))",
    )
    return rows


def test_the_page_in_chromium(team: Conn, browser: Any, tmp_path: Path) -> None:  # noqa: F811
    server = Dashboard("--team", "--token")
    try:
        context = browser.new_context(
            viewport={"width": 1280, "height": 900}, accept_downloads=True
        )
        context.route("**/*", only_loopback)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{server.url}&since={FIRST}&until={LAST}")
        assert "token" not in page.url  # the token became a cookie
        assert page.locator("svg.chart").count() == 2
        assert page.locator("svg.chart rect[fill^='#']").count() > 0
        assert page.locator("#total-cost").inner_text() == f"${db_cost(team):.2f}"

        page.select_option("select[name=developer]", "bob")  # submits the form
        page.wait_for_url("**developer=bob**")
        assert f"since={FIRST}" in page.url  # the filters are in the URL
        assert page.locator("#total-cost").inner_text() == f"${db_cost(team, developer='bob'):.2f}"
        assert {r[1] for r in table_rows(page)} == {"bob"}

        page.select_option("select[name=model]", "claude-sonnet")
        page.wait_for_url("**model=claude-sonnet**")
        cost = db_cost(team, developer="bob", model="claude-sonnet")
        assert page.locator("#total-cost").inner_text() == f"${cost:.2f}"

        shown = table_rows(page)
        with page.expect_download() as download:
            page.click("#csv")
        text = Path(download.value.path()).read_text()
        assert list(csv.reader(io.StringIO(text)))[1:] == shown

        page.goto(server.base + f"?since={FIRST}&until={LAST}")
        page.click("svg.chart[data-value=cost_usd] a[data-day='2026-05-05']")
        page.wait_for_url("**until=2026-05-05**")
        assert {r[0][:10] for r in table_rows(page)} == {"2026-05-05"}
        page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
        assert not errors

        stranger = browser.new_context()
        stranger.route("**/*", only_loopback)
        response = stranger.new_page().goto(server.base)
        assert response is not None and response.status == 401
    finally:
        assert server.stop() == 0
