"""Prompt templates (FIM formats) per model family, from ``models/templates.toml``."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from nearline.config import read_toml
from nearline.errors import ConfigError
from nearline.paths import bundled_data_dir

PREFIX_ONLY = "prefix-only"
_PLACEHOLDER = re.compile(r"\{(prefix|suffix)\}")


@dataclass(frozen=True)
class FimTemplate:
    id: str
    family: str
    fim: str
    match: tuple[str, ...]
    markers: tuple[str, ...]
    stop: tuple[str, ...]

    @property
    def uses_suffix(self) -> bool:
        return "{suffix}" in self.fim

    def render(self, prefix: str, suffix: str) -> str:
        """The prompt string; substitutes in one pass so braces in code are left alone."""
        values = {"prefix": prefix, "suffix": suffix}
        return _PLACEHOLDER.sub(lambda m: values[m.group(1)], self.fim)


def _template(tid: str, raw: Mapping[str, Any]) -> FimTemplate:
    try:
        return FimTemplate(
            id=tid,
            family=str(raw["family"]),
            fim=str(raw["fim"]),
            match=tuple(str(m).lower() for m in raw.get("match", [])),
            markers=tuple(str(m) for m in raw.get("markers", [])),
            stop=tuple(str(s) for s in raw.get("stop", [])),
        )
    except KeyError as exc:
        raise ConfigError(f"templates.toml: [{tid}] lacks the key {exc.args[0]!r}") from None


@lru_cache(maxsize=1)
def registry() -> dict[str, FimTemplate]:
    """All templates by id, in file order."""
    raw = read_toml(bundled_data_dir() / "templates.toml")
    return {tid: _template(tid, body) for tid, body in raw.items()}


def get_template(template_id: str) -> FimTemplate:
    templates = registry()
    if template_id not in templates:
        allowed = ", ".join(["auto", *templates])
        raise ConfigError(f"model.template = {template_id!r} is unknown; expected one of {allowed}")
    return templates[template_id]


def detect_template(
    names: list[str],
    is_single_token: Callable[[str], bool] | None = None,
) -> FimTemplate:
    """The first template whose ``match`` fragment occurs in one of ``names`` (GGUF
    ``general.name``, ``general.basename``, the file name) and whose markers the model's
    vocabulary holds as single tokens; otherwise prefix-only."""
    haystack = " ".join(n.lower() for n in names if n)
    for template in registry().values():
        if not any(fragment in haystack for fragment in template.match):
            continue
        if is_single_token is None or all(is_single_token(m) for m in template.markers):
            return template
    return registry()[PREFIX_ONLY]
