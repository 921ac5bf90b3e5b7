"""The quality, speculative-decoding and index benchmarks: their scoring rules, and a short run
of each (with the real default model where one runs), so they keep working (the figures are in
the issue notes)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import bench_quality as bq  # noqa: E402


def test_tab_writes_the_ghost_text_only_when_it_is_what_comes_next() -> None:
    assert bq.accepted_part("total += 1", "total += 1\n", 100) == "total += 1"
    assert bq.accepted_part("total -= 1", "total += 1\n", 100) == ""
    # Leading whole lines that match are taken, the rest is not.
    assert bq.accepted_part("a = 1\nb = 3\n", "a = 1\nb = 2\n", 100) == "a = 1"
    assert bq.accepted_part("a = 1\nb = 3\n", "a = 1\nb = 2\n", 100, lines=False) == ""
    assert bq.accepted_part("    ", "    x", 100) == ""  # blank: nothing to accept
    assert bq.accepted_part("abcdef", "abcdefgh", 3) == "abc"


def test_pauses_come_after_a_word_ends() -> None:
    text = "foo(bar.baz) "
    assert [i for i in range(len(text)) if bq.is_pause_after(text, i)] == [3, 7, 11]


def test_edit_similarity_and_percentiles() -> None:
    assert bq.similarity("kitten", "sitting") == 1 - 3 / 7
    assert bq.similarity("", "") == 1.0
    assert bq.percentile([1, 2, 3, 4], 0.5) == 2
    assert bq.percentile([1, 2, float("inf")], 0.95) == float("inf")


def run(script: str, *args: str, ok: tuple[int, ...] = (0,)) -> str:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / script), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, PYTHONPATH=str(ROOT / "server")),
    )
    assert done.returncode in ok, done.stderr[-2000:]
    return done.stdout


def test_bench_quality_prints_its_table(tmp_path: Path) -> None:
    out = run(
        "bench_quality.py",
        *("--split", "tune", "--regions", "1", "--lines", "2", "--cuts", "2"),
        *("--json", str(tmp_path / "q.json")),
    )
    assert "| model, template | split | accepted / shown |" in out
    assert "| tune |" in out
    assert (tmp_path / "q.json").stat().st_size > 0


def test_bench_quality_measures_a_project_without_and_with_cross_file_context(
    tmp_path: Path,
) -> None:
    project = tmp_path / "proj"
    (project / "pkg").mkdir(parents=True)
    (project / "pkg" / "__init__.py").write_text("")
    (project / "pkg" / "shapes.py").write_text(
        "class Point:\n    x: int\n    y: int\n\n\ndef distance(a: Point, b: Point) -> float:\n"
        '    """Euclidean distance."""\n    return ((a.x - b.x) ** 2 + (a.y - b.y) ** 2) ** 0.5\n'
    )
    body = "".join(f"    total{i} = distance(Point(x={i}, y=0), origin)\n" for i in range(40))
    (project / "pkg" / "use.py").write_text(
        "from .shapes import Point, distance\n\n\ndef run(origin: Point) -> None:\n" + body
    )
    out = run(
        "bench_quality.py",
        *("--project", f"proj={project}", "--ab-cross-file", "--skip", "replay"),
        *("--cuts", "2", "--json", str(tmp_path / "q.json")),
    )
    assert "| proj no-xfile |" in out and "| proj xfile |" in out
    assert "cuts naming what only another project file defines" in out


def test_bench_index_prints_its_figures() -> None:
    # Exit 1: a target missed (timings on a busy machine); the figures are printed either way.
    out = run("bench_index.py", "--files", "120", "--changes", "5", "--touched", "3", ok=(0, 1))
    assert "first build:" in out and "update of one changed file" in out
    assert "refresh" in out and "reading 0 files" in out


def test_bench_speculative_prints_both_speeds() -> None:
    out = run("bench_speculative.py", "--cuts", "2", "--max-tokens", "8")
    assert "no drafts" in out and "draft tokens" in out and "same output" in out
