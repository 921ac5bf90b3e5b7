"""The architecture's invariants (README, "Architecture"), as import-linter contracts in
pyproject.toml: no import cycles, the layers, only ``nearline.lsp`` knows pygls and lsprotocol,
the hot path imports no HTTP client and no SQLite."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from support import ROOT

PACKAGE = ROOT / "server" / "nearline"


def test_the_import_contracts_are_kept() -> None:
    lint = Path(sys.executable).parent / "lint-imports"
    r = subprocess.run(
        [str(lint), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=ROOT / "server",
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 broken" in r.stdout and "BROKEN" not in r.stdout


def test_only_the_lsp_package_names_pygls_or_lsprotocol() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in PACKAGE.rglob("*.py")
        if "lsp" not in path.relative_to(PACKAGE).parts[:1]
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if "pygls" in line or "lsprotocol" in line
    ]
    assert not found, found


def test_no_lsp_module_is_over_250_lines() -> None:
    long = {
        str(path.relative_to(ROOT)): n
        for path in (PACKAGE / "lsp").rglob("*.py")
        if (n := len(path.read_text().splitlines())) > 250
    }
    assert not long, long
