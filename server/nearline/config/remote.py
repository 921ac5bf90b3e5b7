"""``[completion.remote]``: a completion server the team runs (llama-server, vLLM, Ollama)."""

from __future__ import annotations

from dataclasses import dataclass

from nearline.config.checks import check

REMOTE_KINDS = ("llama-server", "openai", "ollama")


@dataclass(frozen=True)
class RemoteSettings:
    kind: str = ""
    """``llama-server`` (its ``/infill``), ``openai`` (a raw FIM prompt to ``/v1/completions``:
    vLLM, llama-cpp-python's server, llama-server, LiteLLM) or ``ollama`` (``/api/generate``,
    ``raw``)."""
    url: str = ""
    """The server's base URL; for ``openai`` with its ``/v1``, as a provider's ``base_url``."""
    model: str = ""
    """The model's name (``openai``, ``ollama``; also picks the FIM template)."""
    template: str = "auto"
    """The prompt layout from ``models/templates.toml``; ``auto``: the FIM template of the
    family ``model`` names (prefix-only when none matches)."""
    api_key_env: str | None = None
    """An environment variable holding a key, sent only to ``url``'s host."""
    connect_timeout_s: float = 0.5
    read_timeout_s: float = 10.0
    allow_public: bool = False
    """A server on a public address (not loopback or private) is used only when this is set:
    the code around the cursor goes there."""

    def __post_init__(self) -> None:
        check(
            self.kind in REMOTE_KINDS,
            "completion.remote.kind",
            self.kind,
            " | ".join(REMOTE_KINDS),
        )
        check(
            self.url.startswith(("http://", "https://")),
            "completion.remote.url",
            self.url,
            "an http:// or https:// URL",
        )
        for key in ("connect_timeout_s", "read_timeout_s"):
            value = getattr(self, key)
            check(0 < value <= 300, f"completion.remote.{key}", value, "a number in (0, 300]")
