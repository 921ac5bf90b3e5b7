#!/usr/bin/env python3
"""Does a change request still apply when the selection is pointed at instead of sent twice?

``nearline eval --tiers value`` on a small test repository (a package of a few files, and
commits that each make one change a developer would ask for, with a message that says what),
answered by a real model (``python -m llama_cpp.server`` on 127.0.0.1 with a GGUF from the
catalog's folder), once with each tree's code: this checkout's ``server/`` and ``--base``'s
(another checkout, e.g. ``git worktree add /tmp/base HEAD~1``). Prints each tree's cases, the
share whose diff applies, the mean line similarity to the author's change, successes, and the
prompt tokens the model read.

    .venv/bin/python scripts/bench_selection.py --base /tmp/base
"""

from __future__ import annotations

import argparse
import json
import os
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


def make_repo(repo: Path) -> None:
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    for rel, text in BASE_FILES.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(textwrap.dedent(text))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "A shop package: cart, text helpers, pages")
    for i, (rel, message, old, new) in enumerate(CHANGES, 1):
        path = repo / rel
        text = path.read_text()
        old, new = outdent(old), outdent(new)
        assert old in text, (rel, old)
        path.write_text(text.replace(old, new, 1))
        git(repo, "commit", "-q", "-am", message, when=1_700_000_000 + 3600 * i)


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
        make_repo(repo)
        (repo / ".nearline.toml").write_text(
            f'[providers.value-model]\nkind = "openai"\nbase_url = "{url}"\n'
            f'model = "{model.stem}"\nread_timeout_s = 600.0\n'
            '[routing.tiers]\nvalue = ["value-model"]\n[project_map]\ntiers = []\n'
        )
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "nearline settings", when=1_800_000_000)
        print(f"model {model.name}; {len(CHANGES)} changes in a test repository")
        for name, tree in (("base", args.base / "server"), ("this", ROOT / "server")):
            t0 = time.perf_counter()
            report = run_eval(tree, repo, work / name, len(CHANGES) + 1)
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
