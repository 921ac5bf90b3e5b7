"""Real git repositories for the evaluation tests, made with the ``git`` command: commits with
known changes, a fixed author, committer and dates (the same commit ids on every run), and no
user or system git configuration in the way."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

T0 = 1_700_000_000
"""The first commit's time (Unix seconds); each next one is an hour later."""

GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@t",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@t",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_TERMINAL_PROMPT": "0",
    "LC_ALL": "C",
}


def git(root: Path, *args: str, when: int | None = None) -> str:
    env = dict(os.environ, **GIT_ENV)
    if when is not None:
        env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = f"@{when} +0000"
    proc = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, f"git {' '.join(args)}: {proc.stderr}"
    return proc.stdout


@dataclass
class Repo:
    """A repository in ``root`` on branch ``main``; ``shas`` names each commit made here."""

    root: Path
    shas: dict[str, str] = field(default_factory=dict)
    clock: int = T0

    @classmethod
    def init(cls, root: Path) -> Repo:
        root.mkdir(parents=True, exist_ok=True)
        git(root, "init", "-q", "-b", "main")
        return cls(root)

    def git(self, *args: str) -> str:
        return git(self.root, *args, when=self.clock)

    def write(self, files: dict[str, str | bytes | None]) -> None:
        """Each path's new content (bytes: as they are); None deletes the file."""
        for rel, content in files.items():
            path = self.root / rel
            if content is None:
                path.unlink()
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_bytes(content.encode())

    def commit(self, name: str, message: str, files: dict[str, str | bytes | None]) -> str:
        self.write(files)
        self.clock += 3600
        self.git("add", "-A")
        self.git("commit", "-q", "--no-verify", "--no-gpg-sign", "-m", message)
        sha = self.git("rev-parse", "HEAD").strip()
        self.shas[name] = sha
        return sha

    def show(self, sha: str, path: str) -> str:
        return self.git("show", f"{sha}:{path}")

    def diff(self, sha: str) -> str:
        """The commit's change as a unified diff against its first parent (a/ and b/ paths)."""
        return self.git("diff", "--no-color", "--no-ext-diff", f"{sha}^", sha)


# -- the shop: one history with known changes ------------------------------------------------

CART = '''\
"""A shopping cart."""

from util import money


def total(prices):
    amount = 0
    for i in range(len(prices) - 1):
        amount += prices[i]
    return amount


def receipt(prices):
    return money(total(prices))
'''

DISCOUNT = '''\


def discount(amount, percent):
    """The amount after a discount.

    Percent is from 0 to 100.
    """
    # never a negative discount
    rate = max(percent, 0) / 100
    return amount - amount * rate
'''
DISCOUNT_CODE = (
    "def discount(amount, percent):",
    "    rate = max(percent, 0) / 100",
    "    return amount - amount * rate",
)
"""The code lines (not the blank ones, the docstring's or the comment) the discount commit
added to cart.py."""

OFF_BY_ONE = "    for i in range(len(prices) - 1):\n"
FIXED = "    for i in range(len(prices)):\n"
FIX_MESSAGE = "fix: off-by-one in total()\n\nThe last price was never added."

UTIL = """\
def money(amount):
    return f"${amount:.2f}"
"""

CONFIG = 'CURRENCY = "USD"\n'
SHIPPING = "def shipping(weight):\n    return 5 + weight * 2\n"
README = "# shop\n\nA tiny shop.\n"
TAX = """\
RATE = 0.2


def with_tax(amount):
    return amount * (1 + RATE)
"""
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x00\x00\x00\x00"

STEPS = (
    "start",
    "discount",
    "fix",
    "rename",
    "logo",
    "wip",
    "tax",
    "six",
    "merge",
    "readme",
)


def shop(root: Path, upto: str = STEPS[-1]) -> Repo:
    """The shop's history, up to the step ``upto`` (one of ``STEPS``), on ``main``:

    - start     (root) cart.py, util.py, config.py, shipping.py, README.md
    - discount  adds ``discount`` to cart.py (``DISCOUNT``): code, a docstring, a comment
    - fix       "fix: off-by-one in total()": one line of cart.py (``OFF_BY_ONE`` → ``FIXED``)
    - rename    "rename money to as_money": util.py and cart.py (a refactor of 2 files)
    - logo      a binary logo.png and a new function in util.py
    - wip       "wip": a line more in shipping.py
    - tax       "add the tax module": only a new file, tax.py
    - six       "set the version in six files": 6 files modified
    - merge     a side branch's commit ("side") merged with --no-ff ("merge")
    - readme    "describe the cart in the readme": README.md only (not code)
    """
    repo = Repo.init(root)
    cart = CART
    util = UTIL
    shipping = SHIPPING
    for step in STEPS:
        if step == "start":
            repo.commit(
                step,
                "start the shop",
                {
                    "cart.py": cart,
                    "util.py": util,
                    "config.py": CONFIG,
                    "shipping.py": shipping,
                    "README.md": README,
                },
            )
        elif step == "discount":
            cart += DISCOUNT
            repo.commit(step, "add a discount function", {"cart.py": cart})
        elif step == "fix":
            cart = cart.replace(OFF_BY_ONE, FIXED)
            repo.commit(step, FIX_MESSAGE, {"cart.py": cart})
        elif step == "rename":
            cart = cart.replace("money", "as_money")
            util = util.replace("def money", "def as_money")
            repo.commit(
                step,
                "rename money to as_money in util and cart",
                {"cart.py": cart, "util.py": util},
            )
        elif step == "logo":
            util += "\n\ndef cents(amount):\n    return round(amount * 100)\n"
            repo.commit(step, "add the logo and a cents helper", {"logo.png": PNG, "util.py": util})
        elif step == "wip":
            shipping += "\n\ndef free_shipping(total):\n    return total >= 100\n"
            repo.commit(step, "wip", {"shipping.py": shipping})
        elif step == "tax":
            repo.commit(step, "add the tax module", {"tax.py": TAX})
        elif step == "six":
            files: dict[str, str | bytes | None] = {}
            for rel in ("cart.py", "util.py", "config.py", "shipping.py", "tax.py", "README.md"):
                text = (root / rel).read_text()
                files[rel] = text + (
                    "\nversion 2\n" if rel.endswith(".md") else '\nVERSION = "2"\n'
                )
            cart = str(files["cart.py"])
            util = str(files["util.py"])
            shipping = str(files["shipping.py"])
            repo.commit(step, "set the version in six files", files)
        elif step == "merge":
            repo.git("checkout", "-q", "-b", "side")
            note = (root / "config.py").read_text() + "NOTE = 1\n"
            repo.commit("side", "add a side note to the config", {"config.py": note})
            repo.git("checkout", "-q", "main")
            repo.clock += 3600
            repo.git("merge", "-q", "--no-ff", "--no-edit", "-m", "merge side", "side")
            repo.shas["merge"] = repo.git("rev-parse", "HEAD").strip()
        elif step == "readme":
            text = (root / "README.md").read_text() + "\nThe cart adds prices up.\n"
            repo.commit(step, "describe the cart in the readme", {"README.md": text})
        if step == upto:
            break
    return repo
