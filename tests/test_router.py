"""The routing table: every rule type, the default tier, cloud = false, privacy, titles."""

from __future__ import annotations

from pathlib import Path

import pytest

from nearline.config import Settings, parse_settings
from nearline.documents import language_of
from nearline.escalation.router import (
    RouteRequest,
    choose_tier,
    describe_rule,
    estimate_tokens,
    route_for,
    rule_matches,
    title_for,
)

PROVIDERS = {
    "big": {
        "kind": "anthropic",
        "model": "claude-sonnet-4-5",
        "api_key_env": "ANTHROPIC_API_KEY",
        "input_cost_per_token": 3e-6,
        "output_cost_per_token": 15e-6,
    },
    "small": {
        "kind": "openai",
        "model": "gpt-4.1-mini",
        "api_key_env": "OPENAI_API_KEY",
        "input_cost_per_token": 4e-7,
        "output_cost_per_token": 1.6e-6,
    },
}


def settings(rules: list[dict], **extra: object) -> Settings:
    data = {
        "providers": PROVIDERS,
        "routing": {
            "tiers": {"value": ["small"], "flagship": ["big", "small"]},
            "rules": rules,
            "default_tier": "value",
        },
    }
    data.update(extra)
    return parse_settings(data)


def req(
    task: str = "refactor", files: tuple[str, ...] = ("a.py",), lines: int = 10, tokens: int = 1000
) -> RouteRequest:
    return RouteRequest(task, files, lines, tokens, language_of(files[0]))


@pytest.mark.parametrize(
    ("rule", "matching", "other"),
    [
        ({"task": ["tests"]}, req("tests"), req("explain")),
        ({"language": ["rust"]}, req(files=("src/lib.rs",)), req(files=("a.py",))),
        (
            {"paths": ["migrations/**"]},
            req(files=("a.py", "db/migrations/0001.py")),
            req(files=("a.py", "db/models.py")),
        ),
        ({"min_files": 2}, req(files=("a.py", "b.py")), req(files=("a.py",))),
        ({"max_files": 1}, req(files=("a.py",)), req(files=("a.py", "b.py"))),
        ({"min_selection_lines": 50}, req(lines=50), req(lines=49)),
        ({"max_selection_lines": 20}, req(lines=20), req(lines=21)),
        ({"min_tokens": 8000}, req(tokens=8000), req(tokens=7999)),
        ({"max_tokens": 2000}, req(tokens=2000), req(tokens=2001)),
    ],
)
def test_each_rule_type(rule: dict, matching: RouteRequest, other: RouteRequest) -> None:
    s = settings([{"tier": "flagship", **rule}])
    assert rule_matches(s.routing.rules[0], matching)
    assert not rule_matches(s.routing.rules[0], other)
    assert route_for(matching, s).tier == "flagship"
    assert route_for(other, s).tier == "value"


def test_first_matching_rule_wins_and_is_named() -> None:
    s = settings(
        [
            {"tier": "local", "name": "tiny", "max_selection_lines": 5},
            {"tier": "flagship", "name": "multi-file", "min_files": 2},
        ]
    )
    d = route_for(req(files=("a.py", "b.py"), lines=3), s)
    assert d.tier == "local" and d.providers == ("local",)
    assert d.reason == 'rule 1 "tiny": selection_lines <= 5'
    assert not d.cloud and d.est_cost_usd == 0.0
    d = route_for(req(files=("a.py", "b.py"), lines=30), s)
    assert (
        d.tier == "flagship"
        and d.providers == ("big", "small")
        and d.reason.startswith('rule 2 "multi-file"')
    )


def test_default_tier_when_no_rule_matches() -> None:
    tier, reason = choose_tier(req(), settings([]))
    assert tier == "value" and "default_tier" in reason


def test_cost_estimate_uses_the_first_provider_of_the_chain() -> None:
    s = settings([{"tier": "flagship"}])
    d = route_for(req(tokens=1000, lines=10), s)
    assert d.est_output_tokens == 200
    assert d.est_cost_usd == pytest.approx(1000 * 3e-6 + 200 * 15e-6)


def test_the_project_map_is_estimated_as_cache_reads_on_its_tiers_only() -> None:
    mapped = RouteRequest("refactor", ("a.py",), 10, 1000, "python", map_tokens=8000)
    flagship = route_for(mapped, settings([{"tier": "flagship"}]))
    value = route_for(mapped, settings([{"tier": "value"}]))
    read = flagship.est_cost_usd - route_for(req(), settings([{"tier": "flagship"}])).est_cost_usd
    assert read == pytest.approx(8000 * 3e-7)  # the cache-read price, a tenth of input's
    assert value.est_cost_usd == route_for(req(), settings([{"tier": "value"}])).est_cost_usd


def test_cloud_false_routes_to_the_local_tier_visibly() -> None:
    d = route_for(req(), settings([{"tier": "flagship"}], cloud=False))
    assert d.tier == "local" and d.providers == ("local",) and d.refused is None
    assert d.reason.startswith("cloud = false")


def test_private_content_is_refused_or_kept_local() -> None:
    s = settings([{"tier": "flagship"}])
    d = route_for(req(), s, private="a.py holds an AWS access key id (line 1)")
    assert d.refused == "a.py holds an AWS access key id (line 1)" and d.private
    s = settings([{"tier": "flagship"}], privacy={"on_private": "local"})
    d = route_for(req(), s, private="a.py holds an AWS access key id (line 1)")
    assert d.refused is None and d.tier == "local" and "privacy: kept local" in d.reason


def test_private_content_may_go_to_a_local_tier_anyway() -> None:
    d = route_for(req(), settings([{"tier": "local"}]), private="secret")
    assert d.refused is None and d.providers == ("local",)


def test_a_tier_without_providers_is_refused_with_the_fix() -> None:
    d = route_for(req(), parse_settings({}))
    assert d.tier == "value" and d.refused is not None
    assert "routing.tiers.value" in d.refused and "[providers]" in d.refused


def test_titles_say_who_answers_and_the_cost() -> None:
    s = settings([{"tier": "flagship"}])
    d = route_for(req(tokens=1000), s)
    assert (
        title_for(d, s, "refactor") == "nearline: refactor → flagship (claude-sonnet-4-5, ~$0.006)"
    )
    local = route_for(req(), settings([{"tier": "local"}]))
    assert title_for(local, s, "explain") == "nearline: explain → local (the local model, free)"
    refused = route_for(req(), parse_settings({}))
    assert title_for(refused, s, "fix").startswith("nearline: fix (unavailable: tier 'value'")


def test_describe_rule_lists_every_condition() -> None:
    s = settings(
        [
            {
                "tier": "flagship",
                "task": ["fix"],
                "language": ["go"],
                "paths": ["cmd/**"],
                "min_files": 1,
                "max_files": 3,
                "min_tokens": 10,
            }
        ]
    )
    assert describe_rule(0, s.routing.rules[0]) == (
        "rule 1: task in [fix], language in [go], paths in [cmd/**], files >= 1, "
        "files <= 3, tokens >= 10"
    )


def test_estimates() -> None:
    assert estimate_tokens(["x" * 350]) == 350 + 100
    assert language_of("src/App.TSX") == "typescript" and language_of("README") == ""


# -- the data policy (privacy.providers) -------------------------------------------------------

KNOWN = {
    "big": {**PROVIDERS["big"], "retention": "days:30", "region": "us"},
    "small": {**PROVIDERS["small"], "retention": "zero", "region": "eu"},
}
ZERO_EU = {"providers": {"retention": "zero", "region": ["eu"]}}


def test_providers_the_data_policy_excludes_are_skipped_and_said() -> None:
    s = settings([{"tier": "flagship"}], providers=KNOWN, privacy=ZERO_EU)
    d = route_for(req(tokens=1000, lines=10), s)
    assert d.tier == "flagship" and d.providers == ("small",) and d.refused is None
    assert d.skipped == (
        ("big", 'it keeps data (days:30), the policy needs "zero"; region us, the policy needs eu'),
    )
    # The estimate is the provider that will answer, not the one skipped.
    assert d.est_cost_usd == pytest.approx(1000 * 4e-7 + 200 * 1.6e-6)
    assert title_for(d, s, "refactor") == (
        "nearline: refactor → flagship (gpt-4.1-mini, ~$0.001; big skipped: privacy.providers)"
    )


def test_a_tier_with_no_provider_that_qualifies_is_refused_not_sent_elsewhere() -> None:
    s = settings(
        [{"tier": "flagship"}],
        providers=KNOWN,
        routing={
            "tiers": {"flagship": ["big"], "value": ["small"]},
            "rules": [{"tier": "flagship"}],
        },
        privacy=ZERO_EU,
    )
    d = route_for(req(), s)
    assert d.tier == "flagship" and d.providers == () and d.excluded and not d.private
    assert d.refused == (
        "no provider of tier 'flagship' meets privacy.providers (retention \"zero\", region eu): "
        'big: it keeps data (days:30), the policy needs "zero"; region us, the policy needs eu. '
        "Nothing was sent; add a provider that meets it to the tier, or state what is known of "
        "one under [providers.NAME] (retention, trains_on_data, region)"
    )
    assert title_for(d, s, "fix").startswith(
        "nearline: fix (unavailable: no provider of tier 'flagship' meets privacy.providers"
    )


def test_unknown_facts_never_qualify_but_the_local_model_always_does() -> None:
    s = settings(
        [{"tier": "flagship"}],
        routing={"tiers": {"flagship": ["big", "local"]}, "rules": [{"tier": "flagship"}]},
        privacy={"providers": {"trains_on_data": False}},
    )
    d = route_for(req(), s)
    assert d.providers == ("local",) and not d.cloud and d.est_cost_usd == 0.0
    assert d.skipped == (("big", "whether it trains on data is unknown"),)


def test_a_budget_downgrade_keeps_to_the_data_policy(tmp_path: Path) -> None:
    from nearline.accounting.budget import Spend, Spending
    from nearline.escalation.escalator import Document, Escalator, Task

    s = settings(
        [{"tier": "flagship"}],
        providers=KNOWN,
        routing={
            "tiers": {"flagship": ["small"], "value": ["big"]},
            "rules": [{"tier": "flagship"}],
        },
        privacy=ZERO_EU,
        budget={"project": {"daily_usd": 5.0}, "on_exceeded": "downgrade", "downgrade_to": "value"},
    )
    day = Spend(5.0, 0)
    spending = Spending(project_day=day, project_month=day, user_day=day, user_month=day)
    esc = Escalator(s, tmp_path, lambda: Path("m.gguf"), lambda: spending)
    doc = Document((tmp_path / "a.py").as_uri(), str(tmp_path / "a.py"), "x = 1\n" * 10)
    d = esc.decide(Task("refactor", doc.uri, 0, 5), [doc])
    assert d.tier == "value" and d.providers == () and d.excluded
    assert d.reason.startswith("budget: this project's daily budget")
    assert d.refused is not None and "big: it keeps data (days:30)" in d.refused
