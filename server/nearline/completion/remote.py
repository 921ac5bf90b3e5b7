"""The port of a completion server the team runs (``[completion.remote]``): text in, text out,
over the network. The adapters live in ``nearline.completion_servers`` (they know HTTP); the
completion service sees them only through ``RemoteEngine``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class RemotePrompt:
    """What to complete, laid out so the server's prompt cache survives typing: the
    cross-file ``blocks`` first and stable, the prefix window anchored to fixed line blocks
    (its start does not slide per keystroke), then the suffix."""

    prefix: str
    suffix: str = ""
    blocks: tuple[tuple[str, str], ...] = ()
    """(path, text) of other files' code, in a stable order."""
    path: str = ""
    """The document's path in the project (FIM templates with a file header use it)."""
    max_tokens: int = 64
    stop: tuple[str, ...] = ()
    indent: int = 0
    """The cursor line's indentation (llama-server's ``n_indent``)."""
    time_limit_ms: int = 0
    """Ask the server to stop generating after this long (0: no limit)."""


@dataclass(frozen=True)
class RemoteAnswer:
    text: str
    model: str
    prompt_tokens: int = 0
    cached_tokens: int = 0
    """Prompt tokens the server took from its cache (0 when it does not say)."""
    generated_tokens: int = 0
    latency_ms: float = 0.0
    first_token_ms: float | None = None


@dataclass(frozen=True)
class Probe:
    """What a health probe found."""

    ok: bool
    detail: str
    rtt_ms: float = 0.0
    busy: bool = False
    """Up, but no free slot (503 / "loading" / "no slot available")."""


class RemoteEngine(Protocol):
    kind: str
    model_id: str
    where: str
    """The server's address for messages (scheme, host and port; never a key)."""

    async def complete(self, prompt: RemotePrompt) -> RemoteAnswer:
        """The server's completion, streamed; cancelling the task closes the connection
        (the server stops generating). ``RemoteEngineError`` when it fails."""
        ...

    async def probe(self) -> Probe:
        """Is the server up and serving this model (``/health``, ``/props``, ``/v1/models``)."""
        ...

    async def aclose(self) -> None: ...
