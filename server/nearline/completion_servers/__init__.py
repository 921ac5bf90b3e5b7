"""Completion servers a team runs (``[completion.remote]``): adapters of the
``completion.remote.RemoteEngine`` port over HTTP (``llama_server``, ``openai_fim``,
``ollama``; ``base`` is what they share, ``address`` whether a host is on the local
network). The completion service is handed one by ``app/`` and never imports httpx."""

from __future__ import annotations

import httpx

from nearline.completion.engine.templates import FimTemplate, fim_template_for, get_template
from nearline.completion.remote import RemoteEngine
from nearline.completion_servers.address import origin, public_refusal
from nearline.completion_servers.base import HttpRemote
from nearline.completion_servers.llama_server import LlamaServer
from nearline.completion_servers.ollama import Ollama
from nearline.completion_servers.openai_fim import OpenAICompletions
from nearline.config.remote import RemoteSettings
from nearline.errors import ConfigError

KINDS: dict[str, type[HttpRemote]] = {
    LlamaServer.kind: LlamaServer,
    OpenAICompletions.kind: OpenAICompletions,
    Ollama.kind: Ollama,
}


def template_of(settings: RemoteSettings) -> FimTemplate:
    if settings.template == "auto":
        return fim_template_for(settings.model)
    return get_template(settings.template)


def make_remote(
    settings: RemoteSettings,
    transport: httpx.AsyncBaseTransport | None = None,
    *,
    cloud: bool = True,
) -> RemoteEngine:
    """The adapter for ``settings``; ``ConfigError`` when its host is public and
    ``allow_public`` is not set, or ``cloud`` is off (a project that keeps its code off the
    internet). It may resolve the host's name: call it off the event loop."""
    refused = public_refusal(settings.url, settings.allow_public and cloud)
    if refused is not None:
        if settings.allow_public and not cloud:
            refused = (
                f"the completion server {origin(settings.url)} is on a "
                "public address and this project has cloud = false: its code stays off the "
                "internet"
            )
        raise ConfigError(refused)
    return KINDS[settings.kind](settings, template_of(settings), transport)


__all__ = ["KINDS", "make_remote", "template_of"]
