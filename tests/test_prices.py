"""Prices: the bundled table, lookups, overrides, LiteLLM import, exact cost math."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nearline.accounting.prices import (
    Price,
    PriceTable,
    Tokens,
    candidates,
    flagship,
    import_litellm,
    provider_price,
    table_for,
)
from nearline.cli import main
from nearline.config import parse_settings
from nearline.errors import ConfigError


def test_cost_is_exact_for_cached_and_uncached_parts() -> None:
    sonnet = PriceTable().get("claude-sonnet-4-5")
    assert sonnet is not None
    tokens = Tokens(input=1000, cache_read=2000, cache_write=500, output=300)
    # 1000 * 3e-6 + 2000 * 3e-7 + 500 * 3.75e-6 + 300 * 1.5e-5, by hand:
    # 0.003 + 0.0006 + 0.001875 + 0.0045
    assert sonnet.cost(tokens) == 0.009975
    assert sonnet.cost(Tokens(cache_read=1_000_000)) == 0.3
    assert sonnet.cost(Tokens()) == 0.0


def test_cache_parts_without_their_own_price_cost_what_input_costs() -> None:
    price = Price(input_cost_per_token=2e-6, output_cost_per_token=8e-6)
    assert price.cost(Tokens(input=10, cache_read=10, cache_write=10, output=10)) == 0.00014
    mini = PriceTable().get("gpt-4.1-mini")
    assert mini is not None and mini.cache_creation_input_token_cost is None
    # OpenAI: 100 uncached at 4e-7, 900 cached at 1e-7, 50 out at 1.6e-6
    assert mini.cost(Tokens(input=100, cache_read=900, output=50)) == 0.00021


def test_the_local_model_is_free_but_its_tokens_count() -> None:
    tokens = Tokens(input=300, cache_read=900, output=20)
    assert Price().cost(tokens) == 0.0
    assert tokens.total == 1220


@pytest.mark.parametrize(
    "name",
    [
        "claude-sonnet-4-5",
        "anthropic/claude-sonnet-4-5",
        "claude-sonnet-4-5-20250929",
        "Claude-Sonnet-4-5@20250929",
    ],
)
def test_names_with_provider_prefixes_and_dates_are_found(name: str) -> None:
    assert PriceTable().get(name) == PriceTable().get("claude-sonnet-4-5")


def test_an_unknown_model_has_no_price() -> None:
    assert PriceTable().get("my-own-finetune") is None
    assert "my-own-finetune" in candidates("vendor/my-own-finetune-latest")


def test_config_overrides_go_over_the_table() -> None:
    settings = parse_settings(
        {
            "prices": {
                "claude-sonnet-4-5": {"input_cost_per_token": 2e-6},
                "in-house": {"input_cost_per_token": 1e-7, "output_cost_per_token": 2e-7},
            }
        }
    )
    table = table_for(settings)
    sonnet = table.get("claude-sonnet-4-5")
    assert sonnet is not None
    assert sonnet.input_cost_per_token == 2e-6 and sonnet.output_cost_per_token == 1.5e-5
    assert table.get("in-house") == Price(1e-7, 2e-7)


def test_a_negative_price_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"prices.x.input_cost_per_token"):
        parse_settings({"prices": {"x": {"input_cost_per_token": -1.0}}})


def test_a_provider_price_goes_over_its_model_s_entry() -> None:
    settings = parse_settings(
        {
            "providers": {
                "big": {
                    "kind": "anthropic",
                    "model": "claude-sonnet-4-5",
                    "output_cost_per_token": 1e-5,
                },
                "odd": {"kind": "openai", "model": "unknown-model"},
            },
            "routing": {"tiers": {"flagship": ["big"]}},
        }
    )
    table = table_for(settings)
    big = provider_price(settings.providers["big"], table)
    assert (big.input_cost_per_token, big.output_cost_per_token) == (3e-6, 1e-5)
    assert provider_price(settings.providers["odd"], table) == Price()
    assert flagship(settings, table)[0] == "claude-sonnet-4-5"
    assert flagship(parse_settings({}), table)[0] == "claude-sonnet-4-5"
    named = parse_settings({"usage": {"flagship_model": "claude-opus-4-5"}})
    assert flagship(named, table)[1].input_cost_per_token == 5e-6


LITELLM = {
    "sample_spec": {"input_cost_per_token": 0, "output_cost_per_token": 0},
    "new-flagship-9": {
        "litellm_provider": "anthropic",
        "mode": "chat",
        "input_cost_per_token": 4e-6,
        "output_cost_per_token": 2e-5,
        "cache_read_input_token_cost": 4e-7,
        "cache_creation_input_token_cost": 5e-6,
        "max_input_tokens": 200000,
    },
    "dall-e-3": {
        "litellm_provider": "openai",
        "mode": "image_generation",
        "output_cost_per_image": 0.04,
    },
    "claude-sonnet-4-5": {"input_cost_per_token": 2.5e-6, "output_cost_per_token": 1.5e-5},
}


def test_a_litellm_file_is_imported_over_the_bundled_table(tmp_path: Path) -> None:
    source = tmp_path / "model_prices_and_context_window.json"
    source.write_text(json.dumps(LITELLM))
    target = tmp_path / "data" / "prices.json"
    assert import_litellm(source, target) == 2
    table = PriceTable(imported=target)
    assert table.get("new-flagship-9") == Price(4e-6, 2e-5, 4e-7, 5e-6)
    sonnet = table.get("claude-sonnet-4-5")
    assert sonnet is not None and sonnet.input_cost_per_token == 2.5e-6
    assert table.get("gpt-4o") is not None  # the bundled ones stay
    kept = json.loads(target.read_text())
    assert "max_input_tokens" not in kept["new-flagship-9"]


def test_a_broken_import_is_refused_and_keeps_the_previous_one(tmp_path: Path) -> None:
    target = tmp_path / "prices.json"
    good = tmp_path / "good.json"
    good.write_text(json.dumps(LITELLM))
    import_litellm(good, target)
    before = target.read_text()
    broken = tmp_path / "broken.json"
    broken.write_text("{ not json")
    with pytest.raises(ConfigError, match="not a readable JSON price table"):
        import_litellm(broken, target)
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"dall-e-3": LITELLM["dall-e-3"]}))
    with pytest.raises(ConfigError, match="no model in it"):
        import_litellm(empty, target)
    with pytest.raises(ConfigError, match="no such file"):
        import_litellm(tmp_path / "missing.json", target)
    assert target.read_text() == before


def test_the_prices_command_imports_and_lists(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "litellm.json"
    source.write_text(json.dumps(LITELLM))
    assert main(["prices", "import", str(source)]) == 0
    assert "imported prices of 2 models" in capsys.readouterr().out
    assert main(["prices"]) == 0
    listing = capsys.readouterr().out
    assert "new-flagship-9" in listing and "claude-haiku-4-5" in listing
    assert max(len(line) for line in listing.splitlines()) <= 80
    assert main(["prices", "list", "extra"]) == 1
    assert "unexpected 'extra'" in capsys.readouterr().err
    assert main(["prices", "import", str(tmp_path / "missing.json")]) == 1
    assert "no such file" in capsys.readouterr().err
