"""What tokens cost: the price table (``models/prices.json``, LiteLLM's field names), prices
imported from a LiteLLM ``model_prices_and_context_window.json``, the user's overrides in
config, and the cost of one request computed exactly from its cached and uncached parts."""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, fields
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

from nearline.errors import ConfigError
from nearline.paths import bundled_data_dir, data_dir

log = logging.getLogger(__name__)

PRICE_FIELDS = (
    "input_cost_per_token",
    "output_cost_per_token",
    "cache_read_input_token_cost",
    "cache_creation_input_token_cost",
    "cache_creation_input_token_cost_above_1hr",
)
"""USD per token, with LiteLLM's names."""

KEPT_FIELDS = (*PRICE_FIELDS, "litellm_provider", "mode")


@dataclass(frozen=True)
class Tokens:
    input: int = 0
    """Uncached input tokens (neither read from nor written to the provider's cache)."""
    cache_read: int = 0
    cache_write: int = 0
    """Written to the cache, with any lifetime."""
    output: int = 0
    cache_write_1h: int = 0
    """The part of ``cache_write`` kept an hour (Anthropic's ``ttl: "1h"``), priced apart."""

    @property
    def total(self) -> int:
        return self.input + self.cache_read + self.cache_write + self.output


@dataclass(frozen=True)
class Price:
    input_cost_per_token: float = 0.0
    output_cost_per_token: float = 0.0
    cache_read_input_token_cost: float | None = None
    """None: cache reads cost what input costs (providers without a cache discount)."""
    cache_creation_input_token_cost: float | None = None
    """None: cache writes cost what input costs."""
    cache_creation_input_token_cost_above_1hr: float | None = None
    """A write kept an hour; None: twice the input price (Anthropic's)."""

    def cost(self, tokens: Tokens) -> float:
        """USD for ``tokens``, summed in decimal so each part is exact."""
        read = self.cache_read_input_token_cost
        write = self.cache_creation_input_token_cost
        hour = self.cache_creation_input_token_cost_above_1hr
        parts = (
            (tokens.input, self.input_cost_per_token),
            (tokens.cache_read, self.input_cost_per_token if read is None else read),
            (
                tokens.cache_write - tokens.cache_write_1h,
                self.input_cost_per_token if write is None else write,
            ),
            (tokens.cache_write_1h, 2 * self.input_cost_per_token if hour is None else hour),
            (tokens.output, self.output_cost_per_token),
        )
        return float(sum((Decimal(str(p)) * n for n, p in parts), Decimal(0)))

    def over(self, override: Mapping[str, Any]) -> Price:
        """This price with the fields ``override`` sets (None leaves one as it is)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update({k: float(v) for k, v in override.items() if k in values and v is not None})
        return Price(**values)


FREE = Price()


def _price_of(name: str, entry: Any) -> Price | None:
    if not isinstance(entry, Mapping):
        return None
    values: dict[str, float] = {}
    for key in PRICE_FIELDS:
        value = entry.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if value < 0:
                raise ConfigError(f"price of {name}: {key} = {value} is negative")
            values[key] = float(value)
    if "input_cost_per_token" not in values and "output_cost_per_token" not in values:
        return None
    return Price(**values)


def parse_table(data: Any, source: str) -> dict[str, Price]:
    """Model name → price, from a LiteLLM-style mapping; entries without token prices (images,
    audio, ``sample_spec``) are skipped."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: expected a JSON object of model → prices")
    table: dict[str, Price] = {}
    for name, entry in data.items():
        if name == "sample_spec":
            continue
        price = _price_of(f"{name} in {source}", entry)
        if price is not None:
            table[str(name)] = price
    return table


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not a readable JSON price table ({exc})") from None


def bundled_path() -> Path:
    return bundled_data_dir() / "prices.json"


def imported_path() -> Path:
    """Prices imported with ``nearline prices import``; they go over the bundled table."""
    return data_dir() / "prices.json"


@lru_cache(maxsize=4)
def _load_files(bundled: Path, imported: Path, _mtime: float) -> dict[str, Price]:
    table = parse_table(_read_json(bundled), str(bundled))
    try:
        table.update(parse_table(_read_json(imported), str(imported)))
    except ConfigError as exc:
        log.warning("ignoring imported prices: %s", exc)
    return table


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


_DATE = re.compile(r"(-\d{8}|@\d{8}|-\d{4}-\d{2}-\d{2})$")


def candidates(model: str) -> list[str]:
    """Names to look ``model`` up by: as given, lower-cased, without a ``provider/`` prefix,
    without a date suffix or ``-latest``."""
    names = [model, model.lower()]
    base = model.lower().rsplit("/", 1)[-1]
    names.append(base)
    undated = _DATE.sub("", base)
    names.append(undated)
    names.append(undated.removesuffix("-latest"))
    seen: list[str] = []
    for n in names:
        if n and n not in seen:
            seen.append(n)
    return seen


class PriceTable:
    """The bundled prices, under imported ones, under the config's ``[prices."MODEL"]``."""

    def __init__(
        self,
        overrides: Mapping[str, Mapping[str, Any]] | None = None,
        *,
        bundled: Path | None = None,
        imported: Path | None = None,
    ) -> None:
        imported = imported or imported_path()
        base = dict(_load_files(bundled or bundled_path(), imported, _mtime(imported)))
        for name, override in (overrides or {}).items():
            base[name] = self._find(base, name, FREE).over(override)
        self.prices = base

    @staticmethod
    def _find(table: Mapping[str, Price], model: str, default: Price) -> Price:
        for name in candidates(model):
            if name in table:
                return table[name]
        return default

    def get(self, model: str) -> Price | None:
        """The price of ``model``, or None when the table does not know it."""
        for name in candidates(model):
            if name in self.prices:
                return self.prices[name]
        return None

    def knows(self, model: str) -> bool:
        return self.get(model) is not None


def import_litellm(source: Path, target: Path | None = None) -> int:
    """Read a LiteLLM ``model_prices_and_context_window.json`` and keep its token prices over
    the ones imported before; returns how many models it priced. The file is replaced
    atomically, so a failed import leaves the previous one."""
    data = _read_json(source)
    if not data and not source.is_file():
        raise ConfigError(f"{source}: no such file")
    table = parse_table(data, str(source))
    if not table:
        raise ConfigError(f"{source}: no model in it has input_cost_per_token")
    target = target or imported_path()
    kept = _read_json(target) if target.exists() else {}
    if not isinstance(kept, dict):
        kept = {}
    for name in table:
        entry = data[name]
        kept[name] = {k: entry[k] for k in KEPT_FIELDS if k in entry}
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".prices-", suffix=".json", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(kept, f, indent=1, sort_keys=True)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _load_files.cache_clear()
    return len(table)


def provider_price(settings: Any, table: PriceTable) -> Price:
    """A provider's price: the table's entry for its model, under the prices set on the
    provider itself (``providers.NAME.input_cost_per_token``, ...). Unknown models cost 0."""
    base = table.get(settings.model) if settings.model else None
    override = {k: getattr(settings, k, None) for k in PRICE_FIELDS}
    return (base or FREE).over(override)


def provider_cost(settings: Any, provider: str, tokens: Tokens) -> float:
    """USD for ``tokens`` at ``provider``'s price (the table under its settings); 0 for the
    embedded model and for a provider the settings do not name."""
    p = settings.providers.get(provider)
    return provider_price(p, table_for(settings)).cost(tokens) if p else 0.0


def flagship(settings: Any, table: PriceTable) -> tuple[str, Price]:
    """The model "saved vs all-flagship" compares with, and its price: ``usage.flagship_model``,
    else the flagship tier's first provider's model, else ``DEFAULT_FLAGSHIP_MODEL``."""
    from nearline.config import DEFAULT_FLAGSHIP_MODEL

    if settings.usage.flagship_model:
        model = settings.usage.flagship_model
        return model, table.get(model) or FREE
    for name in settings.routing.tiers.get("flagship", ()):
        provider = settings.providers.get(name)
        if provider is not None and provider.model:
            return provider.model, provider_price(provider, table)
    return DEFAULT_FLAGSHIP_MODEL, table.get(DEFAULT_FLAGSHIP_MODEL) or FREE


def table_for(settings: Any) -> PriceTable:
    """The price table with the config's ``[prices."MODEL"]`` overrides."""
    return PriceTable(
        {name: {k: getattr(p, k) for k in PRICE_FIELDS} for name, p in settings.prices.items()}
    )


def as_cloud_request(row: Mapping[str, Any]) -> Tokens:
    """A ledger row's tokens as a cloud model would bill the same request (for "saved vs
    all-flagship"). A local request's cache reads are llama.cpp's KV cache, which no provider
    has: the cloud would bill them as uncached input."""
    tokens = Tokens(
        input=int(row.get("input_tokens") or 0),
        cache_read=int(row.get("cache_read_tokens") or 0),
        cache_write=int(row.get("cache_write_tokens") or 0),
        cache_write_1h=int(row.get("cache_write_1h_tokens") or 0),
        output=int(row.get("output_tokens") or 0),
    )
    if row.get("provider") not in ("local", "") or row.get("cloud"):
        return tokens
    return Tokens(input=tokens.input + tokens.cache_read + tokens.cache_write, output=tokens.output)
