"""Typed settings: built-in defaults, the user's config file, the project's ``.nearline.toml``,
then the editor's settings (``layers`` stacks and watches them).

Settings are frozen dataclasses. ``parse_settings`` structures a plain mapping (from TOML or
JSON) with cattrs, rejects unknown keys and checks ranges, and raises ``ConfigError`` whose
message names the source, the key and what is allowed.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cattrs
import cattrs.gen

from nearline.config.checks import Caps, RangeError
from nearline.config.checks import check as _check
from nearline.config.imports import ImportSettings
from nearline.config.policy import RETENTION_FACTS, ProviderPolicy, retention_days
from nearline.config.remote import RemoteSettings
from nearline.config.team import TeamCaps, TeamSettings
from nearline.errors import ConfigError
from nearline.tasks import TASK_NAMES, TaskKind
from nearline.vocab import StrEnum

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass(frozen=True)
class ModelSettings:
    path: str | None = None
    """GGUF file to load; None means the embedded default (SmolLM2-135M-Instruct Q4_1)."""
    name: str | None = None
    """A catalogued model pulled with ``nearline models pull NAME``; used when path is unset."""
    template: str = "auto"
    """Prompt template: "auto" (from the GGUF's metadata), "prefix-only", or a template id."""
    n_threads: int | None = None
    """CPU threads; None lets nearline choose (all physical cores)."""
    n_ctx: int = 2048
    n_batch: int = 16
    """Prompt tokens per evaluation step; cancellation is checked between steps, so this bounds
    how long a newer keystroke waits (16 tokens: about 130 ms on 2 CPU cores). Raise it on a
    GPU."""
    n_gpu_layers: int = 0
    """Layers to offload to the GPU (-1: all) where llama.cpp was built with GPU support."""
    flash_attn: bool = True
    """llama.cpp's flash attention: faster prompt evaluation on CPU and GPU."""
    draft_tokens: int = 0
    """Speculative decoding by prompt lookup: up to this many draft tokens, taken from where
    the last tokens occurred before in the window, checked in one batch (0: off). Off by
    default: on a CPU a batch costs nearly its tokens' decodes (scripts/bench_speculative.py:
    -2% tokens/s on a 2-core CPU); with GPU offload, try 3."""

    @property
    def threads(self) -> int:
        """``n_threads``, else all cores this process may use: a 2-core laptop needs both for
        the small model."""
        if self.n_threads is not None:
            return self.n_threads
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # pragma: no cover - macOS, Windows
            return max(1, os.cpu_count() or 1)

    def __post_init__(self) -> None:
        _check(self.n_ctx >= 256, "model.n_ctx", self.n_ctx, "an integer >= 256")
        _check(1 <= self.n_batch <= 2048, "model.n_batch", self.n_batch, "1..2048")
        _check(self.n_gpu_layers >= -1, "model.n_gpu_layers", self.n_gpu_layers, "-1 or more")
        _check(0 <= self.draft_tokens <= 16, "model.draft_tokens", self.draft_tokens, "0..16")
        if self.n_threads is not None:
            _check(self.n_threads >= 1, "model.n_threads", self.n_threads, "an integer >= 1")


@dataclass(frozen=True)
class CompletionSettings:
    enable: bool = True
    time_budget_ms: int = 50
    """Generation stops after this long and returns what it has; the rest follows in the
    background for typing-through."""
    max_prefix_chars: int = 1200
    """Text before the cursor in the prompt window. The window start moves in large steps."""
    max_suffix_chars: int = 400
    max_line_tokens: int = 32
    max_block_tokens: int = 96
    max_block_lines: int = 8
    max_document_bytes: int = 2_000_000
    """Larger documents get no completions (and one message)."""
    warmup: bool = True
    min_confidence: float = 0.0
    """A suggestion is shown only when the geometric mean of its tokens' probabilities is at
    least this (0: always)."""
    cross_file_chars: int = 1200
    """Cross-file context: up to this many characters of the definitions the document imports
    (from the project index) go before the window, for model families with a repository
    format in ``models/templates.toml``; 0: none."""
    remote: RemoteSettings | None = None
    """A completion server the team runs, asked beside the local model; None: local only."""

    def __post_init__(self) -> None:
        _check(
            10 <= self.time_budget_ms <= 10_000,
            "completion.time_budget_ms",
            self.time_budget_ms,
            "10..10000",
        )
        _check(
            self.max_prefix_chars >= 64,
            "completion.max_prefix_chars",
            self.max_prefix_chars,
            "an integer >= 64",
        )
        _check(
            self.max_suffix_chars >= 0,
            "completion.max_suffix_chars",
            self.max_suffix_chars,
            "an integer >= 0",
        )
        for key in ("max_line_tokens", "max_block_tokens", "max_block_lines"):
            value = getattr(self, key)
            _check(1 <= value <= 1024, f"completion.{key}", value, "1..1024")
        _check(
            0.0 <= self.min_confidence <= 1.0,
            "completion.min_confidence",
            self.min_confidence,
            "a number in 0..1",
        )
        _check(
            self.max_document_bytes >= 1024,
            "completion.max_document_bytes",
            self.max_document_bytes,
            "an integer >= 1024",
        )
        _check(
            0 <= self.cross_file_chars <= 20_000,
            "completion.cross_file_chars",
            self.cross_file_chars,
            "0..20000",
        )


@dataclass(frozen=True)
class IndexSettings:
    """The project index (files, symbols, imports), built in the background and kept on disk."""

    enable: bool = True
    max_files: int = 20_000
    """Files beyond this many are not indexed (a stable order: folders depth-first)."""
    max_file_kb: int = 512
    """Larger files are listed nowhere (generated code, data)."""
    workers: int = 2
    """Low-priority processes that read an in-process first build (``nearline eval``); the
    server's build is one process of its own (0: read in the building process)."""

    def __post_init__(self) -> None:
        _check(1 <= self.max_files <= 1_000_000, "index.max_files", self.max_files, "1..1000000")
        _check(1 <= self.max_file_kb <= 65_536, "index.max_file_kb", self.max_file_kb, "1..65536")
        _check(0 <= self.workers <= 64, "index.workers", self.workers, "0..64")


@dataclass(frozen=True)
class CacheSettings:
    dir: str | None = None
    """Disk cache folder; None means the user cache dir (``NEARLINE_CACHE_DIR`` overrides)."""
    disk_size_mb: int = 64
    memory_entries: int = 4096
    enable_disk: bool = True
    kv_memory_mb: int = 256
    """Evaluated prompt windows kept in memory, one per recently used document: switching back
    to a document restores its window instead of evaluating it (0: none kept)."""
    kv_disk_mb: int = 512
    """Evaluated windows kept on disk, so reopening a file or restarting restores them (0:
    none)."""

    def __post_init__(self) -> None:
        _check(self.disk_size_mb >= 1, "cache.disk_size_mb", self.disk_size_mb, "an integer >= 1")
        for key in ("kv_memory_mb", "kv_disk_mb"):
            _check(getattr(self, key) >= 0, f"cache.{key}", getattr(self, key), "an integer >= 0")
        _check(
            self.memory_entries >= 1, "cache.memory_entries", self.memory_entries, "an integer >= 1"
        )


LOCAL_PROVIDER = "local"
"""The provider name of the embedded model; always defined, and no ``[providers]`` name."""


class ProviderKind(StrEnum):
    """The APIs a ``[providers.NAME]`` table can speak. Each kind owns its default base URL, so
    a provider that leaves ``base_url`` out talks to its own vendor's host and no other."""

    OPENAI = "openai"
    """Any OpenAI-compatible chat completions API."""
    ANTHROPIC = "anthropic"
    """Anthropic's Messages API."""

    @property
    def default_base_url(self) -> str:
        return _DEFAULT_BASE_URLS[self]


_DEFAULT_BASE_URLS = {
    ProviderKind.OPENAI: "https://api.openai.com/v1",
    ProviderKind.ANTHROPIC: "https://api.anthropic.com",
}
PROVIDER_KINDS = tuple(kind.value for kind in ProviderKind)


@dataclass(frozen=True)
class ProviderSettings:
    """A cloud (or local-server) model that escalated requests can go to: one
    ``[providers.NAME]`` table. The same type configures the HTTP engine that talks to it."""

    kind: str = ""
    """"openai" or "anthropic"; required (checked on the merged settings, so one layer may
    change a provider that another defines)."""
    base_url: str = ""
    """OpenAI: up to and including ``/v1``; Anthropic: the host. Empty: the kind's own URL
    (``ProviderKind.default_base_url``), filled in here so every reader sees where a request,
    and its key, would go."""
    model: str = ""
    api_key_env: str | None = None
    """The environment variable that holds the API key; None for servers that need none."""
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 120.0
    """The longest silence between two pieces of an answer (the first one included)."""
    max_retries: int = 3
    backoff_base_s: float = 0.5
    backoff_max_s: float = 20.0
    input_cost_per_token: float | None = None
    """USD per token; None takes the price table's entry for ``model`` (see ``prices``)."""
    output_cost_per_token: float | None = None
    cache_read_input_token_cost: float | None = None
    cache_creation_input_token_cost: float | None = None
    cache_creation_input_token_cost_above_1hr: float | None = None
    extra_body: dict[str, Any] = field(default_factory=dict)
    """Merged into each request's JSON (e.g. a server's ``grammar`` or ``top_k``); a None
    value removes that key."""
    retention: str = "unknown"
    """What the team knows of how long the provider keeps what it is sent: "zero",
    "days:N", or "unknown" (which meets no ``privacy.providers.retention``)."""
    trains_on_data: bool | None = None
    """Whether the provider trains models on what it is sent; unset: unknown."""
    region: str = ""
    """Where the provider processes requests (e.g. "eu", "us"); empty: unknown."""
    name: str = ""
    """The table's key under ``[providers]``; set by ``Settings``, never written in a file."""

    def __post_init__(self) -> None:
        _check(
            self.kind in ("", *PROVIDER_KINDS),
            "providers.*.kind",
            self.kind,
            " | ".join(PROVIDER_KINDS),
        )
        if self.kind and not self.base_url:
            object.__setattr__(self, "base_url", ProviderKind(self.kind).default_base_url)
        _check(
            self.base_url.startswith(("https://", "http://")) or not self.base_url,
            "providers.*.base_url",
            self.base_url,
            "an http:// or https:// URL",
        )
        _check(0 <= self.max_retries <= 10, "providers.*.max_retries", self.max_retries, "0..10")
        for key in ("connect_timeout_s", "read_timeout_s", "backoff_base_s", "backoff_max_s"):
            value = getattr(self, key)
            _check(value > 0, f"providers.*.{key}", value, "a number > 0")
        _check(
            self.retention == "unknown" or retention_days(self.retention) is not None,
            "providers.*.retention",
            self.retention,
            RETENTION_FACTS,
        )
        _check(
            self.region == self.region.strip(),
            "providers.*.region",
            self.region,
            'a region name, e.g. "eu" (empty: unknown)',
        )


@dataclass(frozen=True)
class RuleSettings:
    """Send a request to ``tier`` when every condition given here holds."""

    tier: str
    name: str = ""
    task: tuple[str, ...] = ()
    language: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    """Globs; the rule holds when any file of the request matches one."""
    min_files: int | None = None
    max_files: int | None = None
    min_selection_lines: int | None = None
    max_selection_lines: int | None = None
    min_tokens: int | None = None
    max_tokens: int | None = None
    """Estimated prompt tokens."""

    def __post_init__(self) -> None:
        for task in self.task:
            _check(task in TASK_NAMES, "routing.rules.*.task", task, " | ".join(TASK_NAMES))


def _default_rules() -> tuple[RuleSettings, ...]:
    return (
        RuleSettings(
            tier="value",
            name="small explanations",
            task=(TaskKind.EXPLAIN.value,),
            max_files=1,
            max_selection_lines=80,
        ),
        RuleSettings(
            tier="value",
            name="small single-file changes",
            task=tuple(
                k.value for k in (TaskKind.REFACTOR, TaskKind.TESTS, TaskKind.FIX, TaskKind.ASK)
            ),
            max_files=1,
            max_selection_lines=60,
            max_tokens=4000,
        ),
    )


def _default_tiers() -> dict[str, tuple[str, ...]]:
    return {"local": (LOCAL_PROVIDER,), "value": (), "flagship": ()}


@dataclass(frozen=True)
class RoutingSettings:
    tiers: dict[str, tuple[str, ...]] = field(default_factory=_default_tiers)
    """Tier name → providers tried in order (a fallback chain)."""
    rules: tuple[RuleSettings, ...] = field(default_factory=_default_rules)
    """First matching rule wins."""
    default_tier: str = "flagship"

    def __post_init__(self) -> None:
        # Tiers a config names are added to the built-in ones, not put in their place.
        object.__setattr__(self, "tiers", {**_default_tiers(), **self.tiers})


def _default_local_only() -> tuple[str, ...]:
    return (".env", "*.env", ".env.*", "secrets/**", "*.pem", "*.key", "id_rsa*", "*.p12")


@dataclass(frozen=True)
class PrivacySettings:
    local_only: tuple[str, ...] = field(default_factory=_default_local_only)
    """Globs of files whose content never goes to the cloud."""
    scan_secrets: bool = True
    on_private: str = "refuse"
    """"refuse" the cloud with a message, or serve the request "local"ly."""
    providers: ProviderPolicy = field(default_factory=ProviderPolicy)
    """The data policy every provider a request goes to must be known to meet (retention,
    training, region); providers that do not are skipped, in the fallback chain too."""

    def __post_init__(self) -> None:
        _check(
            self.on_private in ("refuse", "local"),
            "privacy.on_private",
            self.on_private,
            "refuse | local",
        )


@dataclass(frozen=True)
class PriceSettings:
    """One model's prices in USD per token (LiteLLM's names); unset fields keep the table's."""

    input_cost_per_token: float | None = None
    output_cost_per_token: float | None = None
    cache_read_input_token_cost: float | None = None
    cache_creation_input_token_cost: float | None = None
    cache_creation_input_token_cost_above_1hr: float | None = None

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            _check(value is None or value >= 0, f"prices.*.{f.name}", value, "a number >= 0")


@dataclass(frozen=True)
class BudgetSettings:
    project: Caps = field(default_factory=Caps)
    """Caps on what this project (the folder with .nearline.toml) spends."""
    user: Caps = field(default_factory=Caps)
    """Caps on what this user spends over every project."""
    soft_threshold: float = 0.8
    """Share of a cap at which the editor is warned (once per budget and period)."""
    on_exceeded: str = "refuse"
    """At a cap: "refuse" escalations with a message, or "downgrade" to ``downgrade_to``."""
    downgrade_to: str = "local"
    """The tier a request goes to instead when a budget is spent and on_exceeded = "downgrade"."""
    team: TeamCaps = field(default_factory=TeamCaps)
    """Caps over the whole team (read from the team database; needs ``[team]``)."""

    def __post_init__(self) -> None:
        _check(
            0 < self.soft_threshold <= 1,
            "budget.soft_threshold",
            self.soft_threshold,
            "a number in (0, 1]",
        )
        _check(
            self.on_exceeded in ("refuse", "downgrade"),
            "budget.on_exceeded",
            self.on_exceeded,
            "refuse | downgrade",
        )


@dataclass(frozen=True)
class AlertSettings:
    spike_factor: float = 3.0
    """Warn when today's spend (or tokens) passes this many times the trailing 7-day average."""
    spike_min_usd: float = 1.0
    """... and is at least this much (so a quiet week's first request is no anomaly)."""
    spike_min_tokens: int = 200_000
    loop_max_requests: int = 6
    """The same task on the same code more often than this within ``loop_window_minutes`` is a
    runaway loop and is stopped."""
    loop_window_minutes: float = 10.0

    def __post_init__(self) -> None:
        _check(self.spike_factor > 1, "alerts.spike_factor", self.spike_factor, "a number > 1")
        _check(self.spike_min_usd >= 0, "alerts.spike_min_usd", self.spike_min_usd, "a number >= 0")
        _check(
            self.spike_min_tokens >= 0,
            "alerts.spike_min_tokens",
            self.spike_min_tokens,
            "an integer >= 0",
        )
        _check(
            self.loop_max_requests >= 1,
            "alerts.loop_max_requests",
            self.loop_max_requests,
            "an integer >= 1",
        )
        _check(
            self.loop_window_minutes > 0,
            "alerts.loop_window_minutes",
            self.loop_window_minutes,
            "a number > 0",
        )


@dataclass(frozen=True)
class UsageSettings:
    flagship_model: str = ""
    """The model "saved vs all-flagship" prices every request at; empty: the first provider of
    the flagship tier, else ``DEFAULT_FLAGSHIP_MODEL``."""
    project_name: str = ""
    """This project's name in the ledger; empty: its folder's name."""
    dashboard_port: int = 8760
    """Where ``nearline dashboard`` listens (``--port``); 0: any free port."""
    import_: ImportSettings = field(default_factory=ImportSettings)
    """``[usage.import]`` (``import`` is Python's word)."""

    def __post_init__(self) -> None:
        _check(
            0 <= self.dashboard_port <= 65535,
            "usage.dashboard_port",
            self.dashboard_port,
            "0..65535",
        )


CACHE_TTLS = ("5m", "1h")


@dataclass(frozen=True)
class ProjectMapSettings:
    """The project map at the head of cloud prompts (``escalation.project_map``)."""

    enable: bool = True
    max_tokens: int = 8000
    """Its size (estimated tokens). Over 4096 with the system prompt, so it is cacheable on
    every current Anthropic model (Haiku 4.5's and Opus 4.5's minimum); read from the cache
    at 0.1x, 8000 tokens cost what 800 uncached ones do: about a tenth of a flagship request
    with a few files. Room for every path of a few thousand files, or a few hundred with
    their signatures."""
    refresh_minutes: float = 60.0
    """Rebuilt at most once per period of this length (periods aligned to the clock)."""
    rebuild_changed_share: float = 0.2
    """... or sooner, when more than this share of the files was added, removed or changed."""
    tiers: tuple[str, ...] = ("flagship",)
    """The tiers whose prompts carry the map. The flagship's only by default: on the cost
    benchmark the map on every cloud tier made the team's bill ~19% higher (its reads and
    writes), and the complex, multi-file requests it helps most go to the flagship."""
    cache_ttl: str = "1h"
    """How long Anthropic keeps the cached prefix up to the map (``cache_control``'s
    ``ttl``): "1h" (a write costs 2x the input price, not 1.25x, and lasts an hour from each
    use) or "5m". 1h by measurement: on the cost benchmark's 50-person month a team's flagship
    requests on one map often come more than 5 minutes apart (see the README)."""

    def __post_init__(self) -> None:
        _check(
            1000 <= self.max_tokens <= 100_000,
            "project_map.max_tokens",
            self.max_tokens,
            "1000..100000",
        )
        _check(
            1 <= self.refresh_minutes <= 1440,
            "project_map.refresh_minutes",
            self.refresh_minutes,
            "1..1440",
        )
        _check(
            0 < self.rebuild_changed_share <= 1,
            "project_map.rebuild_changed_share",
            self.rebuild_changed_share,
            "a number in (0, 1]",
        )
        _check(self.cache_ttl in CACHE_TTLS, "project_map.cache_ttl", self.cache_ttl, "5m | 1h")


@dataclass(frozen=True)
class EvalSettings:
    """``nearline eval``: how a change an escalation proposes is tested."""

    test_command: str = ""
    """A shell command run in a checkout of the commit's parent with the answer's change
    applied; exit status 0 means the tests pass. Empty: changes are not tested."""
    test_timeout_s: int = 300

    def __post_init__(self) -> None:
        _check(
            1 <= self.test_timeout_s <= 3600,
            "eval.test_timeout_s",
            self.test_timeout_s,
            "1..3600",
        )


DEFAULT_FLAGSHIP_MODEL = "claude-sonnet-4-5"


@dataclass(frozen=True)
class Settings:
    model: ModelSettings = field(default_factory=ModelSettings)
    completion: CompletionSettings = field(default_factory=CompletionSettings)
    cache: CacheSettings = field(default_factory=CacheSettings)
    index: IndexSettings = field(default_factory=IndexSettings)
    cloud: bool = True
    """False keeps every request on this machine."""
    providers: dict[str, ProviderSettings] = field(default_factory=dict)
    routing: RoutingSettings = field(default_factory=RoutingSettings)
    privacy: PrivacySettings = field(default_factory=PrivacySettings)
    prices: dict[str, PriceSettings] = field(default_factory=dict)
    """Model name → prices over the bundled table (``models/prices.json``)."""
    budget: BudgetSettings = field(default_factory=BudgetSettings)
    alerts: AlertSettings = field(default_factory=AlertSettings)
    usage: UsageSettings = field(default_factory=UsageSettings)
    project_map: ProjectMapSettings = field(default_factory=ProjectMapSettings)
    eval: EvalSettings = field(default_factory=EvalSettings)
    team: TeamSettings | None = None
    """The team ledger on PostgreSQL; None (no ``[team]`` table): this machine only."""
    log_level: str = "INFO"

    def __post_init__(self) -> None:
        allowed = ("DEBUG", "INFO", "WARNING", "ERROR")
        _check(self.log_level.upper() in allowed, "log_level", self.log_level, " | ".join(allowed))
        _check(
            LOCAL_PROVIDER not in self.providers,
            f"providers.{LOCAL_PROVIDER}",
            "a table",
            f'another name: "{LOCAL_PROVIDER}" is the embedded model',
        )
        named = {}
        for key, provider in self.providers.items():
            _check(
                provider.name in ("", key),
                f"providers.{key}.name",
                provider.name,
                "no name key (the table's key is the name)",
            )
            named[key] = dataclasses.replace(provider, name=key)
        object.__setattr__(self, "providers", named)

    def check_references(self) -> None:
        """Tiers name known providers; rules and the default name known tiers."""
        for name, provider in self.providers.items():
            _check(
                bool(provider.kind),
                f"providers.{name}.kind",
                provider.kind,
                " | ".join(PROVIDER_KINDS) + " (every provider says which API it speaks)",
            )
        known = {*self.providers, LOCAL_PROVIDER}
        tiers = self.routing.tiers
        for tier, chain in tiers.items():
            for name in chain:
                _check(
                    name in known,
                    f"routing.tiers.{tier}",
                    name,
                    'a provider defined under [providers] or "local"',
                )
        for i, rule in enumerate(self.routing.rules):
            _check(rule.tier in tiers, f"routing.rules[{i}].tier", rule.tier, " | ".join(tiers))
        _check(
            self.routing.default_tier in tiers,
            "routing.default_tier",
            self.routing.default_tier,
            " | ".join(tiers),
        )
        _check(
            self.budget.downgrade_to in tiers,
            "budget.downgrade_to",
            self.budget.downgrade_to,
            " | ".join(tiers),
        )


class _TypeMismatch(TypeError):
    pass


def _strict(kind: type) -> Any:
    """cattrs converts "no" to True and 3 to "3"; settings must have the declared type."""
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}

    def hook(value: Any, _type: Any) -> Any:
        ok = isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if not ok:
            raise _TypeMismatch(f"expected {names[kind]}, got {value!r}")
        return value

    return hook


def _strings(value: Any, _type: Any) -> tuple[str, ...]:
    """A list of strings; one string is not read as a list of its letters."""
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise _TypeMismatch(f"expected a list of strings, got {value!r}")
    return tuple(_converter.structure(item, str) for item in value)


_converter = cattrs.Converter(forbid_extra_keys=True)
for _kind in (bool, int, float, str):
    _converter.register_structure_hook(_kind, _strict(_kind))
_converter.register_structure_hook_func(lambda t: t == tuple[str, ...], _strings)
_converter.register_structure_hook(
    UsageSettings,
    cattrs.gen.make_dict_structure_fn(
        UsageSettings,
        _converter,
        _cattrs_forbid_extra_keys=True,
        import_=cattrs.gen.override(rename="import"),
    ),
)


def _format(exc: BaseException, kind: type | None) -> str:
    if isinstance(exc, (RangeError, _TypeMismatch)):
        return str(exc)
    if isinstance(exc, cattrs.ForbiddenExtraKeysError):
        return f"unknown key(s) {', '.join(sorted(exc.extra_fields))}"
    return cattrs.v.format_exception(exc, kind)


def parse_settings(
    data: Mapping[str, Any] | None, source: str = "settings", *, check_references: bool = True
) -> Settings:
    """Structure ``data`` into ``Settings``; ``ConfigError`` names ``source``, each bad key and
    what it allows. One layer of several is checked with ``check_references=False``: its
    tiers may name providers that another layer defines."""
    if data is None:
        return Settings()
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: expected a table of settings, got {type(data).__name__}")
    try:
        settings = _converter.structure(dict(data), Settings)
        if check_references:
            settings.check_references()
        return settings
    except RangeError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    except cattrs.BaseValidationError as exc:
        messages = []
        for line in cattrs.transform_error(exc, path="$", format_exception=_format):
            text, _, where = line.rpartition(" @ ")
            key = where.removeprefix("$").lstrip(".").replace("['", ".").replace("']", "")
            if ".*." in text:  # a check inside a table or list item: name the item
                head = text.split(".*.", 1)[0]
                text = key + text[len(head) + 2 :] if key.startswith(head) else text
            # A range error names its key itself; a value nested in a section names the section.
            messages.append(
                text
                if text.startswith(f"{key}.") or " = " in text
                else f"{key or 'settings'}: {text}"
            )
        said = "; ".join(messages).replace("usage.import_", "usage.import")  # the TOML name
        raise ConfigError(f"{source}: {said}") from None


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge two settings mappings; ``override`` wins."""
    result: dict[str, Any] = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(result.get(key), Mapping):
            result[key] = merge(result[key], value)
        else:
            result[key] = value
    return result


def read_toml(path: Path) -> dict[str, Any]:
    """Read a TOML config file; a missing file is empty, a broken one a ``ConfigError``."""
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from None


def as_dict(settings: Settings) -> dict[str, Any]:
    """The settings as the TOML would say them."""
    found = dataclasses.asdict(settings)
    found["usage"]["import"] = found["usage"].pop("import_")
    return found
