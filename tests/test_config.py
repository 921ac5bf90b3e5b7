"""Unit tests for nearline.config: typed settings, merging and TOML reading."""

from __future__ import annotations

import pytest

from nearline.config import (
    CacheSettings,
    CompletionSettings,
    ModelSettings,
    Settings,
    as_dict,
    merge,
    parse_settings,
    read_toml,
)
from nearline.errors import ConfigError

SOURCE = "/home/me/.config/nearline/config.toml"


def config_error(data) -> str:
    with pytest.raises(ConfigError) as info:
        parse_settings(data, SOURCE)
    return str(info.value)


# -- defaults --------------------------------------------------------------------------------


def test_defaults():
    s = Settings()
    assert s.model == ModelSettings()
    assert s.model.path is None and s.model.name is None
    assert s.model.template == "auto"
    assert s.model.n_threads is None
    assert (s.model.n_ctx, s.model.n_batch, s.model.n_gpu_layers) == (2048, 16, 0)
    assert s.completion == CompletionSettings()
    assert s.completion.enable is True
    assert s.completion.time_budget_ms == 50
    assert s.completion.max_prefix_chars == 1200
    assert s.completion.max_suffix_chars == 400
    assert (s.completion.max_line_tokens, s.completion.max_block_tokens) == (32, 96)
    assert s.completion.max_block_lines == 8
    assert s.completion.max_document_bytes == 2_000_000
    assert s.completion.warmup is True
    assert s.cache == CacheSettings()
    assert (s.cache.dir, s.cache.disk_size_mb, s.cache.memory_entries) == (None, 64, 4096)
    assert s.cache.enable_disk is True
    assert s.log_level == "INFO"


def test_parse_nothing_gives_defaults():
    assert parse_settings(None) == Settings()
    assert parse_settings({}) == Settings()
    assert parse_settings({"model": {}, "completion": {}, "cache": {}}) == Settings()


def test_settings_are_frozen():
    s = Settings()
    with pytest.raises(AttributeError):
        s.log_level = "DEBUG"  # type: ignore[misc]


# -- overrides -------------------------------------------------------------------------------


def test_nested_override_keeps_other_defaults():
    s = parse_settings({"completion": {"time_budget_ms": 250}, "model": {"n_ctx": 4096}})
    assert s.completion.time_budget_ms == 250
    assert s.model.n_ctx == 4096
    assert s.completion.max_prefix_chars == 1200
    assert s.model.n_batch == 16
    assert s.cache == CacheSettings()


def test_override_every_section():
    s = parse_settings(
        {
            "model": {
                "path": "/m/x.gguf",
                "template": "starcoder",
                "n_threads": 2,
                "n_gpu_layers": -1,
            },
            "completion": {"enable": False, "warmup": False, "max_suffix_chars": 0},
            "cache": {"dir": "/tmp/c", "enable_disk": False, "memory_entries": 1},
            "log_level": "debug",
        },
        SOURCE,
    )
    assert s.model.path == "/m/x.gguf"
    assert s.model.template == "starcoder"
    assert s.model.n_threads == 2
    assert s.model.n_gpu_layers == -1
    assert s.completion.enable is False
    assert s.completion.warmup is False
    assert s.completion.max_suffix_chars == 0
    assert s.cache.dir == "/tmp/c"
    assert s.cache.enable_disk is False
    assert s.cache.memory_entries == 1
    assert s.log_level == "debug"


def test_as_dict_round_trips():
    s = parse_settings({"completion": {"time_budget_ms": 300}, "cache": {"dir": "/c"}})
    d = as_dict(s)
    assert d["completion"]["time_budget_ms"] == 300
    assert d["cache"]["dir"] == "/c"
    assert parse_settings(d) == s


# -- errors ----------------------------------------------------------------------------------


def test_wrong_type_names_source_and_key():
    message = config_error({"model": {"n_ctx": "big"}})
    assert SOURCE in message
    assert "model.n_ctx" in message
    assert "int" in message


def test_wrong_type_for_a_section():
    message = config_error({"model": 5})
    assert SOURCE in message
    assert "model" in message


def test_not_a_mapping():
    message = config_error(["model"])
    assert SOURCE in message
    assert "list" in message


@pytest.mark.parametrize(
    "data, key",
    [
        ({"completion": {"enable": "no"}}, "completion.enable"),
        ({"completion": {"time_budget_ms": 150.5}}, "completion.time_budget_ms"),
        ({"model": {"path": 3}}, "model.path"),
    ],
)
def test_wrong_primitive_type_is_rejected(data, key):
    message = config_error(data)
    assert SOURCE in message
    assert key in message


def test_unknown_key_names_source_section_and_key():
    message = config_error({"completion": {"max_prefix": 10}})
    assert SOURCE in message
    assert "completion" in message
    assert "max_prefix" in message
    assert "unknown" in message


def test_unknown_top_level_key():
    message = config_error({"modle": {}})
    assert SOURCE in message
    assert "modle" in message
    assert "unknown" in message


def test_out_of_range_rejected():
    for data in (
        {"model": {"n_ctx": 10}},
        {"model": {"n_batch": 0}},
        {"model": {"n_gpu_layers": -2}},
        {"model": {"n_threads": 0}},
        {"completion": {"time_budget_ms": 5}},
        {"completion": {"max_prefix_chars": 10}},
        {"completion": {"max_suffix_chars": -1}},
        {"completion": {"max_block_lines": 0}},
        {"completion": {"max_line_tokens": 2000}},
        {"completion": {"max_document_bytes": 10}},
        {"cache": {"disk_size_mb": 0}},
        {"cache": {"memory_entries": 0}},
        {"log_level": "verbose"},
    ):
        assert SOURCE in config_error(data)


def test_out_of_range_on_the_dataclass_names_key_and_allowed():
    with pytest.raises(ValueError) as info:
        ModelSettings(n_ctx=10)
    assert str(info.value) == "model.n_ctx = 10 is not allowed; expected an integer >= 256"


@pytest.mark.parametrize(
    "data, expected",
    [
        ({"model": {"n_ctx": 10}}, ("model.n_ctx", "10", "256")),
        ({"completion": {"time_budget_ms": 5}}, ("completion.time_budget_ms", "10..10000")),
        ({"cache": {"memory_entries": 0}}, ("cache.memory_entries", ">= 1")),
        ({"log_level": "verbose"}, ("log_level", "verbose", "DEBUG")),
    ],
)
def test_out_of_range_message_names_key_and_allowed(data, expected):
    message = config_error(data)
    assert SOURCE in message
    for part in expected:
        assert part in message


def test_boundaries_are_allowed():
    s = parse_settings(
        {
            "model": {"n_ctx": 256, "n_batch": 2048, "n_gpu_layers": -1, "n_threads": 1},
            "completion": {
                "time_budget_ms": 10,
                "max_prefix_chars": 64,
                "max_block_lines": 1024,
                "max_document_bytes": 1024,
            },
            "cache": {"disk_size_mb": 1, "memory_entries": 1},
            "log_level": "ERROR",
        }
    )
    assert s.model.n_ctx == 256
    assert s.completion.time_budget_ms == 10


def test_default_source_name():
    with pytest.raises(ConfigError) as info:
        parse_settings({"bogus": 1})
    assert str(info.value).startswith("settings: ")


# -- merge -----------------------------------------------------------------------------------


def test_merge_is_deep_and_override_wins():
    base = {"model": {"n_ctx": 1024, "n_batch": 32}, "log_level": "INFO"}
    override = {"model": {"n_ctx": 4096}, "cache": {"dir": "/c"}}
    assert merge(base, override) == {
        "model": {"n_ctx": 4096, "n_batch": 32},
        "log_level": "INFO",
        "cache": {"dir": "/c"},
    }


def test_merge_does_not_modify_its_inputs():
    base = {"model": {"n_ctx": 1024}}
    override = {"model": {"n_batch": 8}}
    merge(base, override)
    assert base == {"model": {"n_ctx": 1024}}
    assert override == {"model": {"n_batch": 8}}


def test_merge_scalar_replaces_table_and_table_replaces_scalar():
    assert merge({"a": {"b": 1}}, {"a": 2}) == {"a": 2}
    assert merge({"a": 2}, {"a": {"b": 1}}) == {"a": {"b": 1}}


def test_merge_then_parse():
    user = {"completion": {"time_budget_ms": 200, "max_prefix_chars": 800}}
    editor = {"completion": {"time_budget_ms": 90}}
    s = parse_settings(merge(user, editor))
    assert s.completion.time_budget_ms == 90
    assert s.completion.max_prefix_chars == 800


# -- read_toml -------------------------------------------------------------------------------


def test_read_toml(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('log_level = "DEBUG"\n[completion]\ntime_budget_ms = 200\n', "utf-8")
    assert read_toml(path) == {"log_level": "DEBUG", "completion": {"time_budget_ms": 200}}
    assert parse_settings(read_toml(path), str(path)).completion.time_budget_ms == 200


def test_read_toml_missing_file_is_empty(tmp_path):
    assert read_toml(tmp_path / "nope.toml") == {}


def test_read_toml_broken_file_names_the_file(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text("[completion\ntime_budget_ms = \n", "utf-8")
    with pytest.raises(ConfigError) as info:
        read_toml(path)
    assert str(path) in str(info.value)


def test_read_toml_directory_is_config_error(tmp_path):
    with pytest.raises(ConfigError) as info:
        read_toml(tmp_path)
    assert str(tmp_path) in str(info.value)


# -- providers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "url"),
    [("anthropic", "https://api.anthropic.com"), ("openai", "https://api.openai.com/v1")],
)
def test_a_provider_without_base_url_gets_its_own_kind_s_url(kind, url):
    s = parse_settings({"providers": {"p": {"kind": kind, "model": "m"}}})
    assert s.providers["p"].base_url == url
    assert s.providers["p"].name == "p"


def test_a_provider_s_base_url_is_kept():
    s = parse_settings(
        {"providers": {"p": {"kind": "anthropic", "base_url": "https://gw.example/x"}}}
    )
    assert s.providers["p"].base_url == "https://gw.example/x"


def test_a_provider_must_say_which_api_it_speaks():
    message = config_error({"providers": {"claude": {"model": "claude-sonnet-4-5"}}})
    assert "providers.claude.kind" in message and "openai | anthropic" in message


def test_one_layer_may_change_a_provider_another_defines():
    # Each layer is checked on its own without references; the kind is required of the merge.
    parse_settings({"providers": {"claude": {"model": "x"}}}, check_references=False)


@pytest.mark.parametrize(
    ("provider", "expected"),
    [
        ({"kind": "local"}, "providers.p.kind = 'local' is not allowed"),
        ({"kind": "openai", "base_url": "api.openai.com"}, "providers.p.base_url"),
        ({"kind": "openai", "name": "other"}, "providers.p.name"),
        ({"kind": "openai", "backoff_max_s": 0}, "providers.p.backoff_max_s"),
    ],
)
def test_bad_provider_settings_are_named(provider, expected):
    assert expected in config_error({"providers": {"p": provider}})


def test_local_is_not_a_provider_name():
    message = config_error({"providers": {"local": {"kind": "openai"}}})
    assert "providers.local" in message and "embedded model" in message


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"privacy": {"local_only": ".env"}}, "privacy.local_only: expected a list of strings"),
        ({"routing": {"tiers": {"value": "mini"}}}, "routing.tiers.value: expected a list"),
        ({"privacy": {"local_only": [".env", 3]}}, "privacy.local_only: expected a string, got 3"),
    ],
)
def test_a_list_of_strings_is_not_one_string_read_letter_by_letter(data, expected):
    assert expected in config_error(data)
