"""Settings layers: precedence, errors that name the file and key, reload on change."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nearline.config import ConfigStack, find_project_file
from nearline.errors import ConfigError


@pytest.fixture
def user_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "user" / "config.toml"
    path.parent.mkdir()
    monkeypatch.setenv("NEARLINE_CONFIG", str(path))
    return path


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    (root / "src" / "pkg").mkdir(parents=True)
    return root


def test_precedence_user_then_project_then_flags_then_editor(
    user_config: Path, project: Path
) -> None:
    user_config.write_text(
        "[completion]\ntime_budget_ms = 111\nmax_line_tokens = 11\nmax_block_tokens = 11\n"
        "max_block_lines = 5\n"
    )
    (project / ".nearline.toml").write_text(
        "[completion]\ntime_budget_ms = 222\nmax_line_tokens = 22\nmax_block_tokens = 22\n"
    )
    stack = ConfigStack(
        root=project / "src" / "pkg",
        flags={"completion": {"time_budget_ms": 333, "max_line_tokens": 33}},
        editor={"completion": {"time_budget_ms": 444}},
    )
    c = stack.load().completion
    assert (c.time_budget_ms, c.max_line_tokens, c.max_block_tokens, c.max_block_lines) == (
        444,
        33,
        22,
        5,
    )
    assert stack.project_file == project / ".nearline.toml"


def test_project_file_is_found_upward(project: Path) -> None:
    (project / ".nearline.toml").write_text("cloud = false\n")
    assert find_project_file(project / "src" / "pkg") == project / ".nearline.toml"
    assert find_project_file(project / "src" / "pkg" / "mod.py") == project / ".nearline.toml"


def test_a_tier_may_name_a_provider_from_another_layer(user_config: Path, project: Path) -> None:
    user_config.write_text('[providers.mine]\nkind = "openai"\nmodel = "gpt-4.1"\n')
    (project / ".nearline.toml").write_text('[routing.tiers]\nflagship = ["mine"]\n')
    s = ConfigStack(root=project).load()
    assert s.routing.tiers["flagship"] == ("mine",) and s.routing.tiers["local"] == ("local",)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[model]\nn_ctx = 12\n", "model.n_ctx = 12 is not allowed"),
        ("[completion]\nfast = true\n", "completion: unknown key(s) fast"),
        ('[routing.tiers]\nflagship = ["nobody"]\n', "routing.tiers.flagship = 'nobody'"),
        ("cloud = maybe\n", "Invalid value"),
    ],
)
def test_a_broken_project_file_is_named_with_its_key(
    user_config: Path, project: Path, text: str, expected: str
) -> None:
    (project / ".nearline.toml").write_text(text)
    stack = ConfigStack(root=project)
    settings, error = stack.try_load()
    assert error is not None and expected in str(error)
    if "nobody" not in text:  # a reference error is found on the merged layers
        assert str(project / ".nearline.toml") in str(error)
    assert settings == stack.settings  # the last good (here: the defaults)


def test_last_good_settings_survive_a_broken_edit_and_reload_follows_changes(
    user_config: Path, project: Path
) -> None:
    config = project / ".nearline.toml"
    config.write_text("cloud = false\n")
    stack = ConfigStack(root=project)
    assert stack.load().cloud is False
    assert not stack.changed()

    config.write_text("cloud = [\n")
    os.utime(config, ns=(1, 1))  # a different mtime even on coarse clocks
    assert stack.changed()
    settings, error = stack.try_load()
    assert error is not None and settings.cloud is False
    assert not stack.changed()  # reported once

    config.write_text("cloud = true\n")
    os.utime(config, ns=(2, 2))
    assert stack.changed()
    assert stack.load().cloud is True

    config.unlink()
    assert stack.changed()


def test_missing_files_mean_defaults(user_config: Path, project: Path) -> None:
    stack = ConfigStack(root=project)
    assert stack.load() == stack.settings and stack.project_file is None


def test_editor_settings_errors_name_their_source(user_config: Path, project: Path) -> None:
    stack = ConfigStack(root=project, editor={"model": {"n_gpu_layers": "all"}})
    with pytest.raises(ConfigError, match="editor settings: model.n_gpu_layers"):
        stack.load()
