"""The data policy: what a provider is known to do with code (``retention``, ``trains_on_data``,
``region``), what a project requires of it (``privacy.providers``), and which providers of a
chain meet it. Plain settings in, plain answers out; the routing and the servers are tested in
``test_router`` and ``test_lsp_data_policy``."""

from __future__ import annotations

import re
import sys
from typing import Any

import pytest

from nearline.config import ProviderPolicy, ProviderSettings, parse_settings
from nearline.config.policy import retention_days
from nearline.errors import ConfigError
from nearline.escalation.policy import describe, split_chain, why_not
from nearline.escalation.router import RouteRequest, route_for, title_for
from support import ROOT

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SOURCE = "/work/proj/.nearline.toml"


def provider(**facts: Any) -> ProviderSettings:
    return ProviderSettings(kind="openai", model="m", name="p", **facts)


def config_error(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        parse_settings(data, SOURCE)
    return str(info.value)


# -- what the settings allow -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "days"),
    [
        ("zero", 0),
        ("days:0", 0),
        ("days:30", 30),
        ("unknown", None),
        ("days:", None),
        ("days:-1", None),
        ("days:3.5", None),
        ("days:٣", None),  # an Arabic-Indic three: a digit, but not one a TOML file means
        ("30", None),
    ],
)
def test_retention_values(text: str, days: int | None) -> None:
    assert retention_days(text) == days


def test_a_provider_s_facts_and_a_project_s_policy_are_read_from_toml_tables() -> None:
    s = parse_settings(
        {
            "providers": {
                "eu": {
                    "kind": "openai",
                    "retention": "zero",
                    "trains_on_data": False,
                    "region": "eu",
                }
            },
            "privacy": {"providers": {"retention": "days:7", "region": ["eu", "ch"]}},
        }
    )
    eu = s.providers["eu"]
    assert (eu.retention, eu.trains_on_data, eu.region) == ("zero", False, "eu")
    assert s.privacy.providers == ProviderPolicy(retention="days:7", region=("eu", "ch"))
    assert s.privacy.providers.max_days == 7


def test_by_default_facts_are_unknown_and_nothing_is_required() -> None:
    s = parse_settings({"providers": {"p": {"kind": "openai"}}})
    p = s.providers["p"]
    assert (p.retention, p.trains_on_data, p.region) == ("unknown", None, "")
    assert s.privacy.providers == ProviderPolicy()
    assert not s.privacy.providers.requires_anything


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            {"providers": {"p": {"kind": "openai", "retention": "30 days"}}},
            "providers.p.retention = '30 days' is not allowed; "
            "expected zero | days:N (N >= 0) | unknown",
        ),
        (
            {"providers": {"p": {"kind": "openai", "retention": "any"}}},
            "providers.p.retention = 'any' is not allowed",
        ),
        (
            {"providers": {"p": {"kind": "openai", "trains_on_data": "no"}}},
            "providers.p.trains_on_data: expected true or false, got 'no'",
        ),
        (
            {"providers": {"p": {"kind": "openai", "region": " eu"}}},
            "providers.p.region = ' eu' is not allowed",
        ),
        (
            {"privacy": {"providers": {"retention": "none"}}},
            "privacy.providers.retention = 'none' is not allowed; "
            "expected any | zero | days:N (N >= 0, at most N days)",
        ),
        (
            {"privacy": {"providers": {"retention": "unknown"}}},
            "privacy.providers.retention = 'unknown' is not allowed",
        ),
        (
            {"privacy": {"providers": {"trains_on_data": True}}},
            "privacy.providers.trains_on_data = True is not allowed; expected false",
        ),
        (
            {"privacy": {"providers": {"region": "eu"}}},
            "privacy.providers.region: expected a list of strings, got 'eu'",
        ),
        (
            {"privacy": {"providers": {"region": [""]}}},
            "privacy.providers.region = '' is not allowed",
        ),
        (
            {"privacy": {"providers": {"zdr": True}}},
            "privacy.providers: unknown key(s) zdr",
        ),
    ],
)
def test_bad_values_name_the_key_and_what_is_allowed(data: dict[str, Any], expected: str) -> None:
    message = config_error(data)
    assert message.startswith(f"{SOURCE}: ") and expected in message, message


# -- one provider against one policy ---------------------------------------------------------


@pytest.mark.parametrize(
    ("facts", "policy", "expected"),
    [
        ({}, ProviderPolicy(), None),
        ({"retention": "zero"}, ProviderPolicy(retention="zero"), None),
        ({"retention": "days:0"}, ProviderPolicy(retention="zero"), None),
        ({"retention": "days:30"}, ProviderPolicy(retention="days:30"), None),
        ({"retention": "zero"}, ProviderPolicy(retention="days:30"), None),
        (
            {"retention": "days:31"},
            ProviderPolicy(retention="days:30"),
            'it keeps data (days:31), the policy needs "days:30"',
        ),
        (
            {},
            ProviderPolicy(retention="zero"),
            'its retention is unknown, the policy needs "zero"',
        ),
        ({"trains_on_data": False}, ProviderPolicy(trains_on_data=False), None),
        ({"trains_on_data": True}, ProviderPolicy(trains_on_data=False), "it trains on data"),
        ({}, ProviderPolicy(trains_on_data=False), "whether it trains on data is unknown"),
        ({"region": "eu"}, ProviderPolicy(region=("eu",)), None),
        ({"region": "EU"}, ProviderPolicy(region=("eu", "ch")), None),
        (
            {"region": "us"},
            ProviderPolicy(region=("eu", "ch")),
            "region us, the policy needs eu or ch",
        ),
        ({}, ProviderPolicy(region=("eu",)), "its region is unknown, the policy needs eu"),
        ({"region": "us", "trains_on_data": True}, ProviderPolicy(), None),
    ],
)
def test_why_a_provider_does_not_meet_a_policy(
    facts: dict[str, Any], policy: ProviderPolicy, expected: str | None
) -> None:
    assert why_not(provider(**facts), policy) == expected


def test_every_requirement_missed_is_said() -> None:
    policy = ProviderPolicy(retention="zero", trains_on_data=False, region=("eu",))
    assert why_not(provider(retention="days:30", region="us"), policy) == (
        'it keeps data (days:30), the policy needs "zero"; '
        "whether it trains on data is unknown; region us, the policy needs eu"
    )
    assert describe(policy) == 'retention "zero", trains_on_data = false, region eu'
    assert describe(ProviderPolicy()) == "no requirement"


# -- a chain -----------------------------------------------------------------------------------


def test_a_chain_keeps_its_order_less_the_providers_that_do_not_qualify() -> None:
    s = parse_settings(
        {
            "providers": {
                "cheap": {"kind": "openai", "retention": "days:30", "region": "us"},
                "eu": {"kind": "openai", "retention": "zero", "region": "eu"},
                "vague": {"kind": "anthropic"},
                "eu2": {"kind": "anthropic", "retention": "zero", "region": "eu"},
            },
            "privacy": {"providers": {"retention": "zero"}},
        }
    )
    allowed, skipped = split_chain(("cheap", "eu", "vague", "local", "eu2"), s)
    assert allowed == ("eu", "local", "eu2")  # the embedded model always qualifies
    assert skipped == (
        ("cheap", 'it keeps data (days:30), the policy needs "zero"'),
        ("vague", 'its retention is unknown, the policy needs "zero"'),
    )


def test_without_a_policy_every_provider_qualifies_whatever_is_known_of_it() -> None:
    s = parse_settings({"providers": {"vague": {"kind": "openai"}}})
    assert split_chain(("vague", "local"), s) == (("vague", "local"), ())


def test_the_readme_example_skips_the_provider_that_states_nothing() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Data policy: which providers may see the code", 1)[1]
    found = re.search(r"```toml\n(.*?)```", section, re.S)
    assert found, "the README's data policy section has no TOML example"
    s = parse_settings(tomllib.loads(found.group(1)), "README.md")
    decision = route_for(RouteRequest("explain", ("a.py",), 10, 1000, "python"), s)
    assert decision.tier == "value" and decision.providers == ("mistral-eu",)
    assert [name for name, _ in decision.skipped] == ["mini"]
    title = title_for(decision, s, "explain")
    assert re.fullmatch(
        r"nearline: explain → value \(codestral-latest, ~\$0\.\d{3}; mini skipped: "
        r"privacy\.providers\)",
        title,
    ), title
