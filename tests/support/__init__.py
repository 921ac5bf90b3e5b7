"""Helpers the tests share: an LSP client for the real server, fake providers, editors' set-up.

Test modules import them as ``support.NAME``; ``conftest.py`` holds only fixtures."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEST_DATA = ROOT / "tests" / "test_data"
