"""``nearline dashboard --team`` timed over the year's database: each view's time at the server
(its ``Server-Timing``) and over HTTP on 127.0.0.1, and, in headless Chromium (Playwright),
the time from asking for the page to its first chart drawn."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from teambench import log
from teambench.year import YEAR_ENV, percentile

VIEW_GOAL_MS = 500.0
CHART_GOAL_MS = 1500.0
CONFIG = """
[team]
url_env = "NEARLINE_BENCH_YEAR_URL"
[budget.team.total]
monthly_usd = 5000.0
[budget.team.developer]
monthly_usd = 100.0
[budget.team.project]
monthly_usd = 1000.0
"""


def views(first: dt.date, last: dt.date, developer: str, project: str) -> dict[str, dict[str, str]]:
    """The views timed: what a lead clicks through (filters as the page's query)."""
    month = (last - dt.timedelta(days=29)).isoformat()
    year = {"since": first.isoformat(), "until": last.isoformat()}
    return {
        "last 30 days": {"until": last.isoformat()},
        "the year, by day": year,
        "the year, by week": {**year, "period": "week"},
        "the year, by month, per tool": {**year, "period": "month", "stack": "client"},
        "a developer's year": {**year, "developer": developer},
        "a project's month": {"since": month, "until": last.isoformat(), "project": project},
        "a model's year": {**year, "model": "qwen2.5-coder-0.5b"},
        "the cloud tiers' month": {"since": month, "until": last.isoformat(), "tier": "value"},
        "one day's requests": {"since": last.isoformat(), "until": last.isoformat()},
    }


def start(year_url: str, tmp: Path) -> tuple[subprocess.Popen[str], str]:
    config = tmp / "dashboard.toml"
    config.write_text(CONFIG)
    env = {**os.environ, YEAR_ENV: year_url, "NEARLINE_CONFIG": str(config)}
    env["NEARLINE_DATA_DIR"] = str(tmp / "dashboard-data")
    proc = subprocess.Popen(
        [sys.executable, "-m", "nearline", "dashboard", "--team", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if " at http" not in line:
        proc.kill()
        raise RuntimeError(f"nearline dashboard did not start: {line!r}")
    return proc, line.split(" at ", 1)[1].strip()


def server_ms(response: httpx.Response) -> float:
    """The ``app;dur=`` of ``Server-Timing``."""
    for part in response.headers.get("server-timing", "").split(","):
        name, _, rest = part.strip().partition(";dur=")
        if name == "app":
            return float(rest)
    raise RuntimeError("no Server-Timing")


def time_views(url: str, named: dict[str, dict[str, str]], runs: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with httpx.Client(timeout=60) as client:
        for label, query in named.items():
            assert client.get(url, params=query).status_code == 200  # warm-up
            at_server, over_http = [], []
            for _ in range(runs):
                t0 = time.perf_counter()
                response = client.get(url, params=query)
                over_http.append((time.perf_counter() - t0) * 1000)
                response.raise_for_status()
                at_server.append(server_ms(response))
            out[label] = {
                "server": (percentile(at_server, 0.5), percentile(at_server, 0.95)),
                "http": (percentile(over_http, 0.5), percentile(over_http, 0.95)),
                "bytes": len(response.content),
            }
    return out


def time_browser(url: str, named: dict[str, dict[str, str]], runs: int) -> dict[str, Any]:
    """Per view: from ``goto`` to the first ``svg.chart`` in the DOM and painted (a frame
    after it), in a fresh page each run; p50/p95. ``{"skipped": why}`` without a browser."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return {"skipped": "no Playwright (.venv/bin/pip install playwright)"}
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not os.access(chromium, os.X_OK):
        return {"skipped": "no Chromium (apt-get install chromium)"}
    out: dict[str, Any] = {}
    args = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=args)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        for label, query in named.items():
            times = []
            for _ in range(runs + 1):
                page = context.new_page()
                target = str(httpx.URL(url, params=query))
                t0 = time.perf_counter()
                page.goto(target, wait_until="commit")
                page.wait_for_selector("svg.chart")
                page.evaluate("() => new Promise(r => requestAnimationFrame(() => r(0)))")
                times.append((time.perf_counter() - t0) * 1000)
                page.close()
            times = times[1:]  # the first warms the browser's cache of nothing but itself
            out[label] = (percentile(times, 0.5), percentile(times, 0.95))
        browser.close()
    return out


def time_dashboard(
    year_url: str,
    first: dt.date,
    last: dt.date,
    args: argparse.Namespace,
    developer: str,
    project: str,
) -> dict[str, Any]:
    log("timing nearline dashboard --team over the year")
    tmp = Path(tempfile.mkdtemp(prefix="nearline-bench-dashboard-"))
    proc, url = start(year_url, tmp)
    try:
        named = views(first, last, developer, project)
        found = {"views": time_views(url, named, args.report_runs)}
        pick = {k: named[k] for k in ("last 30 days", "the year, by day", "a developer's year")}
        found["browser"] = time_browser(url, pick, max(3, args.report_runs // 2))
        return found
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)


def lines(found: dict[str, Any], runs: int) -> list[str]:
    out = [
        f"nearline dashboard --team over that year, {runs} runs a view "
        f"(goal p95 <= {VIEW_GOAL_MS:.0f} ms at the server):"
    ]
    for label, v in found["views"].items():
        (s50, s95), (h50, h95) = v["server"], v["http"]
        out.append(
            f"  {label:<30} server p50 {s50:6.1f} p95 {s95:6.1f} ms   "
            f"http p50 {h50:6.1f} p95 {h95:6.1f} ms   {v['bytes'] / 1024:6.0f} kB"
        )
    browser = found["browser"]
    if "skipped" in browser:
        out.append(f"  headless Chromium: skipped ({browser['skipped']})")
    else:
        out.append(
            f"  headless Chromium, asked to first chart drawn (goal p95 <= {CHART_GOAL_MS:.0f} ms):"
        )
        for label, (p50, p95) in browser.items():
            out.append(f"  {label:<30} p50 {p50:6.1f} ms  p95 {p95:6.1f} ms")
    return out


def slowest(found: dict[str, Any]) -> tuple[float, float | None]:
    """The slowest view's p95 at the server, and the slowest first chart's p95 (None: not
    measured)."""
    view = max(v["server"][1] for v in found["views"].values())
    browser = found["browser"]
    chart = None if "skipped" in browser else max(p95 for _, p95 in browser.values())
    return view, chart
