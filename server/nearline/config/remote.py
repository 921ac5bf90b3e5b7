"""``[completion.remote]``: a completion server the team runs (llama-server, vLLM, Ollama)."""

from __future__ import annotations

from dataclasses import dataclass

from nearline.config.checks import check

REMOTE_KINDS = ("llama-server", "openai", "ollama")
REMOTE_MODES = ("hedge", "only")


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
    mode: str = "hedge"
    """``hedge``: ask it and the local model at once, show the better answer in time;
    ``only``: ask it alone (no local model: nothing is shown while it is away)."""
    max_prefix_chars: int = 3000
    """Its window before the cursor (a GPU takes more than the local model's)."""
    max_suffix_chars: int = 1000
    slow_ms: int = 300
    """An answer later than this is of no use (the person has moved on): the breaker opens
    when most recent answers are."""
    max_predict_ms: int = 250
    """llama-server stops generating after this long (``t_max_predict_ms``; 0: no limit)."""
    failures: int = 3
    """Errors in a row that set the server aside (only the local model answers)."""
    cooldown_s: float = 10.0
    """How long it is set aside before one probe may bring it back."""

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
        check(self.mode in REMOTE_MODES, "completion.remote.mode", self.mode, "hedge | only")
        check(
            self.max_prefix_chars >= 64,
            "completion.remote.max_prefix_chars",
            self.max_prefix_chars,
            "at least 64",
        )
        for key in ("max_suffix_chars", "max_predict_ms"):
            value = getattr(self, key)
            check(value >= 0, f"completion.remote.{key}", value, "0 or more")
        check(
            10 <= self.slow_ms <= 60_000,
            "completion.remote.slow_ms",
            self.slow_ms,
            "a number of ms in [10, 60000]",
        )
        check(self.failures >= 1, "completion.remote.failures", self.failures, "1 or more")
        check(
            0 <= self.cooldown_s <= 3600,
            "completion.remote.cooldown_s",
            self.cooldown_s,
            "seconds in [0, 3600]",
        )
        for key in ("connect_timeout_s", "read_timeout_s"):
            value = getattr(self, key)
            check(0 < value <= 300, f"completion.remote.{key}", value, "a number in (0, 300]")
