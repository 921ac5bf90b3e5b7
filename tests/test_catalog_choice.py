"""Which GGUF serves, and why: model.path, model.name, the best pulled catalog model this
machine runs at keystroke speed, else the embedded SmolLM2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nearline.catalog import DEFAULT_MODEL, choose_model, default_model_path, resolve_model_path
from nearline.config import ModelSettings

SMALL = ModelSettings(n_threads=2)
MANY_CORES = ModelSettings(n_threads=8)
GPU = ModelSettings(n_threads=2, n_gpu_layers=-1)
FILES = {
    "qwen2.5-coder-0.5b": "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    "qwen2.5-coder-0.5b-q8": "qwen2.5-coder-0.5b-instruct-q8_0.gguf",
    "qwen2.5-coder-1.5b": "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    "starcoder2-3b": "starcoder2-3b-Q4_K_M.gguf",
}


def models_dir() -> Path:
    return Path(os.environ["NEARLINE_DATA_DIR"]) / "models"


def pulled(*names: str) -> None:
    """Fake pulled files: only a verified file is ever put in the models folder."""
    folder = models_dir()
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / FILES[name]).write_bytes(b"GGUF")


def test_nothing_pulled_the_embedded_model_serves_and_says_how_to_get_a_better_one() -> None:
    chosen = choose_model(SMALL)
    assert chosen.path == default_model_path() and chosen.name == DEFAULT_MODEL
    assert chosen.reason.startswith("it is the embedded default")
    assert "`nearline models pull qwen2.5-coder-0.5b`" in chosen.reason
    assert resolve_model_path(SMALL) == default_model_path()


def test_the_small_coder_serves_once_pulled_on_a_small_machine() -> None:
    pulled("qwen2.5-coder-0.5b", "qwen2.5-coder-0.5b-q8")
    chosen = choose_model(SMALL)
    assert chosen.name == "qwen2.5-coder-0.5b"
    assert chosen.path == models_dir() / FILES["qwen2.5-coder-0.5b"]
    assert chosen.reason == (
        "it is the best model pulled for this machine (2 CPU threads, no GPU offload)"
    )


def test_a_small_machine_does_not_get_the_1_5b_and_is_told_why() -> None:
    pulled("qwen2.5-coder-1.5b", "starcoder2-3b")
    alone = choose_model(SMALL)
    assert alone.name == DEFAULT_MODEL
    assert "also pulled: qwen2.5-coder-1.5b, which needs GPU offload" in alone.reason
    assert "set model.name to use it anyway" in alone.reason
    assert "starcoder2" not in alone.reason  # never chosen without model.name

    pulled("qwen2.5-coder-0.5b")
    assert choose_model(SMALL).name == "qwen2.5-coder-0.5b"


@pytest.mark.parametrize(
    ("model", "words"),
    [(MANY_CORES, "8 CPU threads, no GPU offload"), (GPU, "2 CPU threads, GPU offload on")],
    ids=["8-cores", "gpu"],
)
def test_a_strong_machine_prefers_the_1_5b(model: ModelSettings, words: str) -> None:
    pulled("qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b")
    chosen = choose_model(model)
    assert chosen.name == "qwen2.5-coder-1.5b"
    assert chosen.reason == f"it is the best model pulled for this machine ({words})"


def test_model_path_then_model_name_come_first(tmp_path: Path) -> None:
    pulled("qwen2.5-coder-0.5b")
    mine = tmp_path / "mine.gguf"
    by_path = choose_model(ModelSettings(path=str(mine), name="qwen2.5-coder-1.5b"))
    assert (by_path.path, by_path.name, by_path.reason) == (mine, None, "model.path is set")
    by_name = choose_model(ModelSettings(name="qwen2.5-coder-1.5b"))
    assert by_name.path == models_dir() / FILES["qwen2.5-coder-1.5b"]  # even if not pulled
    assert (by_name.name, by_name.reason) == ("qwen2.5-coder-1.5b", "model.name is set")


def test_a_broken_catalog_leaves_the_embedded_model_serving(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "catalog.toml"
    broken.write_text("[m\n")
    monkeypatch.setenv("NEARLINE_CATALOG", str(broken))
    chosen = choose_model(SMALL)
    assert chosen.name == DEFAULT_MODEL and str(broken) in chosen.reason


def test_nearline_models_marks_the_serving_model_and_says_why(
    nearline_env: dict[str, str],
) -> None:
    folder = Path(nearline_env["NEARLINE_DATA_DIR"]) / "models"
    folder.mkdir(parents=True)
    (folder / FILES["qwen2.5-coder-0.5b"]).write_bytes(b"GGUF")
    r = subprocess.run(
        [sys.executable, "-m", "nearline", "models", "--threads", "2"],
        env=nearline_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    marked = [line for line in r.stdout.splitlines() if line.startswith("* ")]
    assert len(marked) == 2, r.stdout
    assert marked[0].startswith("* qwen2.5-coder-0.5b ") and str(folder) in marked[0]
    assert marked[1] == (
        "* serves: qwen2.5-coder-0.5b, because it is the best model pulled for this machine "
        "(2 CPU threads, no GPU offload)"
    )
    assert "url, 6 wheels" in r.stdout
