"""The registry names one engine class for every provider kind a config may use."""

from __future__ import annotations

from nearline.config import PROVIDER_KINDS, ProviderKind, ProviderSettings
from nearline.providers import ENGINES, make_engine
from nearline.providers.anthropic import AnthropicEngine
from nearline.providers.openai import OpenAIEngine


def test_every_kind_has_an_engine() -> None:
    assert set(ENGINES) == set(ProviderKind)
    assert {kind.value for kind in ENGINES} == set(PROVIDER_KINDS)


async def test_make_engine_picks_the_kind_s_class() -> None:
    for kind, cls in (("openai", OpenAIEngine), ("anthropic", AnthropicEngine)):
        engine = make_engine(ProviderSettings(name="p", kind=kind, model="m"))
        assert type(engine) is cls and engine.name == "p"
        await engine.aclose()
