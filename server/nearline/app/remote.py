"""The completion service with the team's completion server (``[completion.remote]``) beside
the local model: the server's adapter is made on its own thread, and a document
``privacy.local_only`` keeps never goes to it."""

from __future__ import annotations

from pathlib import Path

from nearline.completion import CompletionService, build_service
from nearline.completion.hedge import Hedge, RemoteLane
from nearline.completion.remote import RemoteEngine
from nearline.completion_servers import make_remote
from nearline.config import Settings
from nearline.documents import path_of_uri
from nearline.escalation.privacy import local_only_match


def make_service(settings: Settings, root: Path | None = None) -> CompletionService:
    """The service for ``settings``: the local model, and the completion server if one is
    set up. ``root``: the project's folder (``privacy.local_only`` globs anchored there)."""
    return build_service(settings, hedge_for(settings, root))


def hedge_for(settings: Settings, root: Path | None = None) -> Hedge | None:
    remote = settings.completion.remote
    if remote is None:
        return None
    globs = settings.privacy.local_only
    base = str(root) if root is not None else None

    def allowed(uri: str) -> bool:
        path = path_of_uri(uri)
        return local_only_match(str(path) if path else uri, globs, base) is None

    def factory() -> RemoteEngine:
        return make_remote(remote, cloud=settings.cloud)

    return Hedge(remote, RemoteLane(factory), allowed=allowed)


def service_key(settings: Settings) -> tuple[object, ...]:
    """The settings a completion service is built from: a change to any makes a new one (the
    others it takes as they change, ``CompletionService.reconfigure``)."""
    return (
        settings.model,
        settings.cache,
        settings.completion.remote,
        settings.privacy.local_only,
        settings.cloud,
    )
