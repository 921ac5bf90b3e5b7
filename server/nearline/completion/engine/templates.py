"""Prompt templates (FIM formats) per model family, from ``models/templates.toml``."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

from nearline.config import read_toml
from nearline.errors import ConfigError
from nearline.paths import bundled_data_dir

PREFIX_ONLY = "prefix-only"
_PLACEHOLDER = re.compile(r"\{(prefix|suffix|path|text|name)\}")
SUFFIX_LAYOUTS = ("window", "line")


@dataclass(frozen=True)
class FimTemplate:
    id: str
    family: str
    fim: str
    match: tuple[str, ...]
    markers: tuple[str, ...]
    stop: tuple[str, ...]
    context: str = ""
    """A block placed before the hole, with ``{path}`` and ``{text}``: code the model should
    see that does not change while the person types (the code below the cursor, other
    files). Empty: no blocks."""
    suffix: str = "window"
    """What goes into the hole after the cursor: the whole suffix ``window``, or only the
    rest of the cursor's ``line`` (the code below it then goes into a context block, where
    a keystroke does not make the model evaluate it again)."""
    repo: str = ""
    """A block of another file of the project (cross-file context), with ``{path}`` and
    ``{text}``, in the family's repository format. Empty: no cross-file context."""
    repo_file: str = ""
    """After the cross-file blocks, before the hole: the current file's header (``{path}``)."""
    repo_head: str = ""
    """Before the cross-file blocks: the repository's header (``{name}``)."""
    auto: str = ""
    """The template that serves a model this one's ``match`` detects (the family's measured
    choice, e.g. prefix-only); empty: this one."""

    @property
    def uses_suffix(self) -> bool:
        return "{suffix}" in self.fim

    def render(
        self,
        prefix: str,
        suffix: str,
        blocks: Sequence[tuple[str, str]] = (),
        path: str = "",
        repo: Sequence[tuple[str, str]] = (),
        repo_path: str = "",
        repo_name: str = "",
    ) -> str:
        """The prompt: the ``repo`` blocks (other files) between the repository's and the
        current file's headers, the context ``blocks`` ((path, text) each), then the hole
        (``path``: the document's file name; ``repo_path``: its path in the project;
        ``repo_name``: the project's). Substitutes in one pass so braces in code are left
        alone."""
        head = _fill(self.repo_head, {"name": repo_name}) if repo else ""
        head += "".join(_fill(self.repo, {"path": p, "text": text}) for p, text in repo)
        if repo:
            head += _fill(self.repo_file, {"path": repo_path or path})
        head += "".join(_fill(self.context, {"path": p, "text": text}) for p, text in blocks)
        return head + _fill(self.fim, {"prefix": prefix, "suffix": suffix, "path": path})


def _fill(pattern: str, values: Mapping[str, str]) -> str:
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), pattern)


def _template(tid: str, raw: Mapping[str, Any]) -> FimTemplate:
    try:
        return FimTemplate(
            id=tid,
            family=str(raw["family"]),
            fim=str(raw["fim"]),
            match=tuple(str(m).lower() for m in raw.get("match", [])),
            markers=tuple(str(m) for m in raw.get("markers", [])),
            stop=tuple(str(s) for s in raw.get("stop", [])),
            context=str(raw.get("context", "")),
            suffix=_suffix_layout(tid, raw.get("suffix", "window")),
            repo=str(raw.get("repo", "")),
            repo_file=str(raw.get("repo_file", "")),
            repo_head=str(raw.get("repo_head", "")),
            auto=str(raw.get("auto", "")),
        )
    except KeyError as exc:
        raise ConfigError(f"templates.toml: [{tid}] lacks the key {exc.args[0]!r}") from None


def _suffix_layout(tid: str, value: Any) -> str:
    if value not in SUFFIX_LAYOUTS:
        allowed = " | ".join(SUFFIX_LAYOUTS)
        raise ConfigError(f"templates.toml: [{tid}] suffix = {value!r}; expected {allowed}")
    return str(value)


@lru_cache(maxsize=1)
def registry() -> dict[str, FimTemplate]:
    """All templates by id, in file order."""
    raw = read_toml(bundled_data_dir() / "templates.toml")
    templates = {tid: _template(tid, body) for tid, body in raw.items()}
    for template in templates.values():
        if template.auto and template.auto not in templates:
            raise ConfigError(
                f"templates.toml: [{template.id}] auto = {template.auto!r} is unknown"
            )
    return templates


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
    vocabulary holds as single tokens, or the template its ``auto`` names; otherwise
    prefix-only."""
    haystack = " ".join(n.lower() for n in names if n)
    for template in registry().values():
        if not any(fragment in haystack for fragment in template.match):
            continue
        if is_single_token is None or all(is_single_token(m) for m in template.markers):
            return _served(template)
    return registry()[PREFIX_ONLY]


def fim_template_for(model: str) -> FimTemplate:
    """The fill-in-the-middle template of the family ``model`` names (a server's model: its
    markers cannot be checked here), else prefix-only."""
    name = model.lower()
    for template in registry().values():
        if template.uses_suffix and any(fragment in name for fragment in template.match):
            return template
    return registry()[PREFIX_ONLY]


def _served(detected: FimTemplate) -> FimTemplate:
    """The template ``detected``'s ``auto`` names, stopping at the family's stop tokens too,
    and with the family's repository format for cross-file blocks when it has none."""
    if not detected.auto:
        return detected
    auto = registry()[detected.auto]
    return replace(
        auto,
        family=f"{detected.family}'s measured choice (models/templates.toml)",
        stop=tuple(dict.fromkeys(auto.stop + detected.stop)),
        repo=auto.repo or detected.repo,
        repo_file=auto.repo_file if auto.repo else detected.repo_file,
        repo_head=auto.repo_head if auto.repo else detected.repo_head,
    )
