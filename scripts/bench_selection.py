#!/usr/bin/env python3
"""Does a change request still apply when the selection is pointed at instead of sent twice?

``nearline eval --tiers value`` on a small test repository (a package of a few files, and
commits that each make one change a developer would ask for, with a message that says what),
answered by a real model (``python -m llama_cpp.server`` on 127.0.0.1 with a GGUF from the
catalog's folder), once with each tree's code: this checkout's ``server/`` and ``--base``'s
(another checkout, e.g. ``git worktree add /tmp/base HEAD~1``). Prints each tree's cases, the
share whose diff applies, the mean line similarity to the author's change, successes, and the
prompt tokens the model read.

``--long``: six changes to a 112-line module whose selections (a change's first to last
changed line) are 44 to 106 lines long, the ones pointed at (``POINT_AT_LINES``): renames and
literals replaced at sites far apart in a function or across the file.

``--priced``: the model's provider bills input tokens (``input_cost_per_token``), as a cloud
provider does; without it the local server is free, and nearline sends every selection again
(pointing saves nothing there).

    .venv/bin/python scripts/bench_selection.py --base /tmp/base [--long] [--priced]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MODELS = Path.home() / ".local" / "share" / "nearline" / "models"

sys.path.insert(0, str(ROOT / "server"))
from nearline.evaluation.cases import changed_old_lines  # noqa: E402  (the eval's selection)

BASE_FILES = {
    "shop/cart.py": '''\
        """A shopping cart: lines, totals and discounts."""

        from dataclasses import dataclass, field

        TAX_RATE = 0.2


        @dataclass
        class Line:
            sku: str
            price: float
            qty: int = 1


        @dataclass
        class Cart:
            lines: list[Line] = field(default_factory=list)

            def add(self, sku: str, price: float, qty: int = 1) -> None:
                for line in self.lines:
                    if line.sku == sku:
                        line.qty += qty
                        return
                self.lines.append(Line(sku, price, qty))

            def remove(self, sku: str) -> None:
                self.lines = [l for l in self.lines if l.sku != sku]

            def total(self) -> float:
                t = 0
                for l in self.lines:
                    t = t + l.price * l.qty
                return t

            def total_with_tax(self) -> float:
                return self.total() * (1 + 0.2)

            def discount(self, percent: float) -> float:
                return self.total() - self.total() * percent / 100
        ''',
    "shop/text.py": '''\
        """Text helpers for product pages."""

        import re


        def slugify(title):
            s = title.lower()
            s = re.sub(r"[^a-z0-9]+", "-", s)
            return s


        def truncate(text, n):
            if len(text) < n:
                return text
            return text[:n] + "..."


        def initials(name):
            parts = name.split(" ")
            return "".join(p[0].upper() for p in parts)
        ''',
    "shop/pages.py": '''\
        """Pagination of product listings."""


        def page_count(items, per_page):
            return len(items) // per_page


        def page(items, number, per_page=20):
            start = number * per_page
            return items[start:start + per_page]
        ''',
}

CHANGES: list[tuple[str, str, str, str]] = [
    (
        "shop/cart.py",
        "Rename the loop variable l to line in remove and total",
        "                self.lines = [l for l in self.lines if l.sku != sku]",
        "                self.lines = [line for line in self.lines if line.sku != sku]",
    ),
    (
        "shop/cart.py",
        "Use TAX_RATE in total_with_tax instead of the literal",
        "                return self.total() * (1 + 0.2)",
        "                return self.total() * (1 + TAX_RATE)",
    ),
    (
        "shop/text.py",
        "Fix slugify leaving dashes at the ends of the slug",
        "            return s\n\n\n        def truncate",
        '            return s.strip("-")\n\n\n        def truncate',
    ),
    (
        "shop/text.py",
        "Fix truncate: a text exactly n long must not be cut",
        "            if len(text) < n:",
        "            if len(text) <= n:",
    ),
    (
        "shop/pages.py",
        "Fix page_count: a partial last page counts as a page",
        "            return len(items) // per_page",
        "            return (len(items) + per_page - 1) // per_page",
    ),
    (
        "shop/text.py",
        "Fix initials failing on double spaces",
        '            parts = name.split(" ")',
        "            parts = name.split()",
    ),
    (
        "shop/cart.py",
        "Fix discount rejecting nothing: a percent over 100 is an error",
        "            def discount(self, percent: float) -> float:\n",
        "            def discount(self, percent: float) -> float:\n"
        "                if not 0 <= percent <= 100:\n"
        '                    raise ValueError("percent must be in [0, 100]")\n',
    ),
    (
        "shop/pages.py",
        "Add type hints to page and page_count",
        "        def page_count(items, per_page):",
        "        def page_count(items: list, per_page: int) -> int:",
    ),
    (
        "shop/cart.py",
        "Rename t to subtotal in total",
        "                t = 0\n                for l in self.lines:\n"
        "                    t = t + l.price * l.qty\n                return t",
        "                subtotal = 0\n                for l in self.lines:\n"
        "                    subtotal = subtotal + l.price * l.qty\n"
        "                return subtotal",
    ),
    (
        "shop/pages.py",
        "Fix page: a negative page number must raise ValueError",
        "            start = number * per_page",
        "            if number < 0:\n"
        '                raise ValueError("page numbers start at 0")\n'
        "            start = number * per_page",
    ),
    (
        "shop/text.py",
        "Add type hints to slugify",
        "        def slugify(title):",
        "        def slugify(title: str) -> str:",
    ),
    (
        "shop/cart.py",
        "Fix add: a quantity below 1 is an error",
        "            def add(self, sku: str, price: float, qty: int = 1) -> None:\n",
        "            def add(self, sku: str, price: float, qty: int = 1) -> None:\n"
        "                if qty < 1:\n"
        '                    raise ValueError("qty must be at least 1")\n',
    ),
    (
        "shop/text.py",
        "Rename n to limit in truncate",
        "        def truncate(text, n):\n            if len(text) <= n:\n"
        '                return text\n            return text[:n] + "..."',
        "        def truncate(text, limit):\n            if len(text) <= limit:\n"
        '                return text\n            return text[:limit] + "..."',
    ),
    (
        "shop/cart.py",
        "Simplify discount: compute the total once",
        "                return self.total() - self.total() * percent / 100",
        "                total = self.total()\n"
        "                return total - total * percent / 100",
    ),
    (
        "shop/pages.py",
        "Fix page_count: per_page must be positive",
        "        def page_count(items: list, per_page: int) -> int:\n",
        "        def page_count(items: list, per_page: int) -> int:\n"
        "            if per_page < 1:\n"
        '                raise ValueError("per_page must be positive")\n',
    ),
    (
        "shop/text.py",
        "Fix initials on an empty name",
        '            return "".join(p[0].upper() for p in parts)',
        '            return "".join(p[0].upper() for p in parts if p)',
    ),
]


LONG_FILE = "shop/report.py"
LONG_TEXT = r'''"""Sales reports: orders read from CSV rows, and a text report of them."""

from collections import defaultdict

CURRENCY = "EUR"
WIDTH = 60


def parse_orders(rows):
    """Orders from CSV rows (dicts), and the problems found in the rows left out."""
    orders = []
    errors = []
    for number, row in enumerate(rows, 1):
        sku = row.get("sku", "")
        if not sku:
            errors.append(f"row {number}: no sku")
            continue
        try:
            quantity = int(row.get("quantity", "1"))
        except ValueError:
            errors.append(f"row {number}: bad quantity {row.get('quantity')!r}")
            continue
        if quantity < 1:
            errors.append(f"row {number}: quantity below 1")
            continue
        try:
            price = float(row.get("price", ""))
        except ValueError:
            errors.append(f"row {number}: bad price {row.get('price')!r}")
            continue
        if price < 0:
            errors.append(f"row {number}: negative price")
            continue
        day = row.get("day", "")
        if len(day) != 10 or day[4] != "-" or day[7] != "-":
            errors.append(f"row {number}: bad day {day!r}")
            continue
        customer = row.get("customer", "")
        if not customer:
            customer = "anonymous"
        region = row.get("region", "")
        if not region:
            region = "unknown"
        orders.append(
            {
                "sku": sku,
                "quantity": quantity,
                "price": price,
                "amount": quantity * price,
                "day": day,
                "customer": customer,
                "region": region,
            }
        )
    return orders, errors


def render_report(orders, title):
    """The report as text: totals by day, by product and by region."""
    lines = []
    lines.append("=" * 60)
    lines.append(title.center(60))
    lines.append("=" * 60)
    total = sum(order["amount"] for order in orders)
    lines.append("Amounts in EUR")
    lines.append(f"Orders: {len(orders)}")
    lines.append(f"Total: {total:.2f}")
    lines.append("")

    by_day = defaultdict(float)
    for order in orders:
        by_day[order["day"]] += order["amount"]
    lines.append("By day")
    lines.append("-" * 20)
    for day in sorted(by_day):
        lines.append(f"{day}  {by_day[day]:>12.2f}")
    lines.append("")

    by_sku = defaultdict(int)
    for order in orders:
        by_sku[order["sku"]] += order["quantity"]
    lines.append("By product")
    lines.append("-" * 20)
    for sku, quantity in sorted(by_sku.items(), key=lambda item: -item[1]):
        lines.append(f"{sku:<20}{quantity:>8}")
    lines.append("")

    by_region = defaultdict(float)
    for order in orders:
        by_region[order["region"]] += order["amount"]
    lines.append("By region")
    lines.append("-" * 20)
    for region in sorted(by_region):
        share = by_region[region] / total * 100
        lines.append(f"{region:<20}{by_region[region]:>12.2f}{share:>7.1f}%")
    lines.append("")

    by_customer = defaultdict(float)
    for order in orders:
        by_customer[order["customer"]] += order["amount"]
    lines.append("Top customers")
    lines.append("-" * 20)
    ranked = sorted(by_customer.items(), key=lambda item: -item[1])
    for customer, amount in ranked[:5]:
        lines.append(f"{customer:<20}{amount:>12.2f}")
    lines.append("")

    lines.append(f"Customers: {len(by_customer)}")
    average = total / len(orders)
    lines.append(f"Average order: {average:.2f} EUR")
    lines.append("=" * 60)
    return "\n".join(lines)
'''

LONG_CHANGES: list[tuple[str, str, list[tuple[str, str]]]] = [
    # (message, the function the change is in ("": the whole file), regex replacements)
    (
        "Use WIDTH instead of the literal 60 in render_report",
        "render_report",
        [(r"\b60\b", "WIDTH")],
    ),
    (
        'Use CURRENCY instead of the literal "EUR" in render_report',
        "render_report",
        [(r'"Amounts in EUR"', 'f"Amounts in {CURRENCY}"'), (r"f} EUR", "f} {CURRENCY}")],
    ),
    (
        "Rename the parameter orders to sales in render_report",
        "render_report",
        [(r"\borders\b", "sales")],
    ),
    ("Rename errors to problems in parse_orders", "parse_orders", [(r"\berrors\b", "problems")]),
    ("Rename the constant WIDTH to REPORT_WIDTH", "", [(r"\bWIDTH\b", "REPORT_WIDTH")]),
    ("Rename the constant CURRENCY to CURRENCY_CODE", "", [(r"\bCURRENCY\b", "CURRENCY_CODE")]),
]


def apply_long(text: str, function: str, replacements: list[tuple[str, str]]) -> str:
    """``replacements`` made in one function of ``text`` (its ``def`` to the next), or all of it."""
    start, end = 0, len(text)
    if function:
        start = text.index(f"\ndef {function}(")
        following = text.find("\ndef ", start + 1)
        end = following if following >= 0 else len(text)
    part = text[start:end]
    for pattern, new in replacements:
        part, n = re.subn(pattern, new, part)
        assert n, (function, pattern)
    return text[:start] + part + text[end:]


def git(repo: Path, *args: str, when: int = 1_700_000_000) -> None:
    env = dict(
        os.environ,
        GIT_AUTHOR_NAME="dev",
        GIT_AUTHOR_EMAIL="dev@example.com",
        GIT_COMMITTER_NAME="dev",
        GIT_COMMITTER_EMAIL="dev@example.com",
        GIT_AUTHOR_DATE=f"@{when} +0000",
        GIT_COMMITTER_DATE=f"@{when} +0000",
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_CONFIG_NOSYSTEM="1",
    )
    subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)


def outdent(text: str, by: int = 8) -> str:
    """A change's lines as the files have them (written here indented like the files)."""
    return "\n".join(line[by:] if line.startswith(" " * by) else line for line in text.split("\n"))


def make_repo(repo: Path, *, long: bool = False) -> int:
    """The test repository; the number of changes in it."""
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    for rel, text in BASE_FILES.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(textwrap.dedent(text))
    if long:
        (repo / LONG_FILE).write_text(LONG_TEXT)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "A shop package: cart, text helpers, pages")
    if long:
        spans = []
        for i, (message, function, replacements) in enumerate(LONG_CHANGES, 1):
            path = repo / LONG_FILE
            old = path.read_text()
            new = apply_long(old, function, replacements)
            spans.append(len(changed_old_lines(old, new)[0]))  # the case's selection
            path.write_text(new)
            git(repo, "commit", "-q", "-am", message, when=1_700_000_000 + 3600 * i)
        print(f"selections of {', '.join(map(str, spans))} lines")
        return len(LONG_CHANGES)
    for i, (rel, message, old, new) in enumerate(CHANGES, 1):
        path = repo / rel
        text = path.read_text()
        old, new = outdent(old), outdent(new)
        assert old in text, (rel, old)
        path.write_text(text.replace(old, new, 1))
        git(repo, "commit", "-q", "-am", message, when=1_700_000_000 + 3600 * i)
    return len(CHANGES)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_model(model: Path, n_ctx: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1"]
        + ["--port", str(port), "--n_ctx", str(n_ctx), "--verbose", "False"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit("llama_cpp.server did not start")


def run_eval(tree: Path, repo: Path, work: Path, commits: int) -> dict[str, Any]:
    env = dict(
        os.environ,
        PYTHONPATH=str(tree),
        NEARLINE_CACHE_DIR=str(work / "cache"),
        NEARLINE_DATA_DIR=str(work / "data"),
        NEARLINE_LEDGER=str(work / "usage.db"),
        NEARLINE_CONFIG=str(work / "none.toml"),
    )
    argv = [sys.executable, "-m", "nearline", "eval", str(repo), "--tiers", "value"]
    argv += ["--cases-per-commit", "0", "--commits", str(commits), "--json"]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=7200)
    if done.returncode not in (0, 1):
        raise SystemExit(f"nearline eval failed ({done.returncode}): {done.stderr[-2000:]}")
    return dict(json.loads(done.stdout))


def prompt_tokens(ledger: Path) -> int:
    """The prompt tokens the eval's requests sent (the ledger's rows of client ``eval``)."""
    with sqlite3.connect(ledger) as conn:
        found = conn.execute(
            "SELECT SUM(input_tokens + cache_read_tokens + cache_write_tokens) FROM requests "
            "WHERE client = 'eval'"
        ).fetchone()[0]
    return int(found or 0)


def row_of(report: dict[str, Any]) -> dict[str, Any]:
    rows = [r for r in report.get("tiers", []) if r.get("tier") == "value"]
    return rows[0] if rows else {}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--base", type=Path, required=True, help="another checkout to compare with")
    ap.add_argument("--model", type=Path, help="GGUF (default: Qwen2.5-Coder 1.5B, else 0.5B)")
    ap.add_argument("--n-ctx", type=int, default=8192)
    ap.add_argument("--long", action="store_true", help="the long selections' changes")
    ap.add_argument("--priced", action="store_true", help="the provider bills input tokens")
    args = ap.parse_args()
    model = args.model or next(
        (
            p
            for p in (
                MODELS / "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
                MODELS / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            )
            if p.exists()
        ),
        None,
    )
    if model is None:
        raise SystemExit("no model: pull one (nearline models pull qwen2.5-coder-1.5b)")
    work = Path(tempfile.mkdtemp(prefix="nearline-bench-selection-"))
    proc, url = start_model(model, args.n_ctx)
    try:
        repo = work / "shop"
        changes = make_repo(repo, long=args.long)
        (repo / ".nearline.toml").write_text(
            f'[providers.value-model]\nkind = "openai"\nbase_url = "{url}"\n'
            f'model = "{model.stem}"\nread_timeout_s = 600.0\n'
            + ("input_cost_per_token = 1e-6\n" if args.priced else "")
            + '[routing.tiers]\nvalue = ["value-model"]\n[project_map]\ntiers = []\n'
        )
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "nearline settings", when=1_800_000_000)
        print(f"model {model.name}; {changes} changes in a test repository")
        for name, tree in (("base", args.base / "server"), ("this", ROOT / "server")):
            t0 = time.perf_counter()
            report = run_eval(tree, repo, work / name, changes + 1)
            row = row_of(report)
            print(
                f"{name}: {row.get('cases', 0)} cases, applies {row.get('applies') or 0:.0%}, "
                f"line similarity {row.get('line_similarity') or 0:.3f}, "
                f"success {row.get('success') or 0:.0%}, "
                f"prompt tokens {prompt_tokens(work / name / 'usage.db'):,}, "
                f"{time.perf_counter() - t0:.0f} s"
            )
            for results in report.get("results", {}).values():
                for r in results:
                    print(
                        f"  {r.get('kind', '?'):8} {r.get('outcome', '?'):16} "
                        f"line similarity {r.get('line_similarity', 0):.2f}  "
                        f"{str(r.get('instruction') or r.get('case') or '')[:60]}"
                    )
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
