"""The quality, speculative-decoding and index benchmarks: their scoring rules, and a short run
of each (with the real default model where one runs), so they keep working (the figures are in
the issue notes); the big-workspace mode's pieces (the workspace, the arms, the options)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import bench_latency as bl  # noqa: E402
import bench_quality as bq  # noqa: E402
import bench_workspace as bw  # noqa: E402


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
    # Drafts change the speed, never the text: both cuts give the same output.
    assert "no drafts" in out and "draft tokens" in out and "same output 2/2" in out


def test_the_big_workspace_copies_text_source_files_again_until_there_are_enough(
    tmp_path: Path,
) -> None:
    lib = tmp_path / "lib"
    (lib / "pkg").mkdir(parents=True)
    (lib / "pkg" / "a.py").write_text("import os\n")
    (lib / "pkg" / "b.c").write_text("int b;\n")
    (lib / "z.py").write_text("x = 1\n")
    (lib / "empty.py").write_text("")
    (lib / "latin1.py").write_bytes(b"s = '\xe9'\n")
    (lib / "data.json").write_text("{}")
    (lib / "site-packages").mkdir()
    (lib / "site-packages" / "other.py").write_text("y = 2\n")  # not the venv's
    (lib / "pkg" / "__pycache__").mkdir()
    (lib / "pkg" / "__pycache__" / "a.py").write_text("stale\n")
    venv = tmp_path / "venv"
    venv.mkdir()
    (venv / "lib.py").write_text("def f(): ...\n")

    ws = bw.build_workspace(tmp_path / "ws", 9, [("stdlib", lib), ("site-packages", venv)])
    files = sorted(p.relative_to(ws.root).as_posix() for p in ws.root.rglob("*") if p.is_file())
    assert ws.files == len(files) == 9
    assert files == [
        *("copy1/site-packages/lib.py", "copy1/stdlib/pkg/a.py", "copy1/stdlib/pkg/b.c"),
        *("copy1/stdlib/z.py", "copy2/stdlib/z.py", "site-packages/lib.py"),
        *("stdlib/pkg/a.py", "stdlib/pkg/b.c", "stdlib/z.py"),
    ]
    assert (ws.root / "stdlib" / "z.py").read_text() == "x = 1\n"
    assert [(p.folder, p.files) for p in ws.parts] == [
        ("stdlib", 3),
        ("site-packages", 1),
        ("copy1/stdlib", 3),
        ("copy1/site-packages", 1),
        ("copy2/stdlib", 1),
    ]
    assert ws.describe().startswith(f"9 source files in {ws.root}: stdlib/ 3 from {lib}")
    assert ws.describe().endswith("copied again under copyN/: 5")
    typed = ws.add(lib / "z.py", "typed.py")
    assert typed == ws.root / "typed.py" and typed.read_text() == "x = 1\n"


def test_the_big_workspace_takes_this_python_s_library_first(tmp_path: Path) -> None:
    ws = bw.build_workspace(tmp_path / "ws", 30)
    assert ws.files == 30 and [p.folder for p in ws.parts] == ["stdlib"]
    assert all(p.suffix in bw.SOURCE_SUFFIXES for p in ws.root.rglob("*") if p.is_file())


def test_the_arms_alternate_and_turn_the_index_off_by_the_editor_s_options() -> None:
    assert [name for name, _ in bw.arm_order(0)] == ["index on", "index off"]
    assert [name for name, _ in bw.arm_order(1)] == ["index off", "index on"]
    assert bw.merge_options({"completion": {"time_budget_ms": 50}}, bw.index_options(False)) == {
        "completion": {"time_budget_ms": 50},
        "index": {"enable": False},
    }
    assert bw.merge_options(None, None) == {}


def test_the_big_workspace_options_of_both_scripts(tmp_path: Path) -> None:
    args = bl.parse_args(["--workspace", "big", "--workspace-files", "500", "--rounds", "2"])
    assert (args.workspace, args.workspace_files, args.rounds) == ("big", 500, 2)
    assert bl.parse_args([]).workspace == "small"
    with pytest.raises(SystemExit):
        bl.parse_args(["--workspace", "big", "--files"])

    args = bq.parse_args(["--workspace", "big", "--split", "tune"])
    args.workspace_root = tmp_path
    sets = bq.file_sets(args)
    assert all(s.path.parent == tmp_path / bq.BIG_FOLDER for s in sets["tune"])
    assert bq.row_names(args, sets) == ["tune index-on", "tune index-off"]
    (group, root, options), _ = bq.groups_of(args, sets)
    assert root == tmp_path and options == {"index": {"enable": True}}
    assert bq.base_name("held-out index-off") == "held-out"
    with pytest.raises(SystemExit):
        bq.parse_args(["--workspace", "big", "--ab-cross-file"])


def test_the_full_window_is_this_rest_s_once_it_is_done() -> None:
    before = {"uri": "file:///a.py", "short_ms": 20, "full_ms": 300}
    assert bl.full_ms_of(before, before, "file:///b.py") is None  # the last rest's
    assert bl.full_ms_of({"uri": "file:///b.py", "full_ms": None}, before, "file:///b.py") is None
    assert bl.full_ms_of({"uri": "file:///b.py", "full_ms": 812}, before, "file:///b.py") == 812
    assert bl.full_ms_of({"full_ms": 90}, None, "file:///b.py") == 90  # no uri reported
    assert bl.full_ms_of(None, None, "file:///b.py") is None  # no rest reported (yet)


def test_bench_usage_import_prints_its_figures() -> None:
    out = run(
        "bench_usage_import.py",
        "--days",
        "2",
        "--sessions-per-day",
        "2",
        "--answers",
        "5",
        "--big-gb",
        "0.001",
    )
    assert "generated 4 session logs" in out and "20 answers" in out
    assert "claude-code: 20 records in 4 files read (0 unchanged), 20 rows added" in out
    assert "claude-code: 0 records in 0 files read (4 unchanged), 0 rows added" in out
    assert "records/s" in out and "peak RSS" in out and "one 0.00 GB log" in out
