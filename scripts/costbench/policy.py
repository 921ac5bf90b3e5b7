"""The project's policy, as a team would write it in ``.nearline.toml``, and the mix of
request classes."""

from __future__ import annotations

import argparse
import json
from typing import Any

from costbench.workload import DEFAULT_MIX, PROJECT


def policy(
    base_url: str, flagship_model: str, value_model: str, anthropic: bool = True
) -> dict[str, Any]:
    """What a team would put in ``.nearline.toml``: small, single-file questions, names and
        boilerplate on the cheap model; anything multi-file, large or a debugging session on the
        flagship; autocomplete stays local (it never goes through the router). ``anthropic``: Claude
    models speak Anthropic's API (False: every provider is OpenAI-compatible, as llama.cpp's
    server is)."""
    return {
        "providers": {
            "flagship-model": provider(base_url, flagship_model, anthropic),
            "value-model": provider(base_url, value_model, anthropic),
        },
        "routing": {
            "tiers": {
                "local": ["local"],
                "value": ["value-model"],
                "flagship": ["flagship-model"],
            },
            "rules": [
                {"name": "work across files", "tier": "flagship", "min_files": 2},
                {"name": "large selections", "tier": "flagship", "min_selection_lines": 100},
                {"name": "debugging", "tier": "flagship", "task": ["fix"]},
                {
                    "name": "small single-file requests",
                    "tier": "value",
                    "task": ["ask", "explain", "tests", "refactor"],
                    "max_files": 1,
                    "max_selection_lines": 60,
                },
            ],
            "default_tier": "flagship",
        },
        "usage": {"project_name": PROJECT},
    }


def provider(base_url: str, model: str, anthropic: bool = True) -> dict[str, Any]:
    """A provider of the model's own API: Anthropic's Messages API for Claude models (at the
    server's root), OpenAI's chat completions for the others (``base_url`` ends in /v1)."""
    common = {"max_retries": 2, "read_timeout_s": 300.0, "model": model}
    if anthropic and "claude" in model:
        return {"kind": "anthropic", "base_url": base_url.removesuffix("/v1"), **common}
    return {"kind": "openai", "base_url": base_url, **common}


def toml_lines(data: dict[str, Any], prefix: str = "") -> list[str]:
    """Enough TOML to print the policy (tables, arrays of tables, scalars, lists)."""
    plain, tables = [], []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            tables.extend(["", *toml_lines(value, f"{name}.")])
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            for item in value:
                tables.extend(["", f"[[{name}]]"])
                tables.extend(f"{k} = {json.dumps(v)}" for k, v in item.items())
        else:
            plain.append(f"{key} = {json.dumps(value)}")
    head = [f"[{prefix.rstrip('.')}]"] if prefix and plain else []
    return head + plain + tables


def parse_mix(text: str) -> dict[str, float]:
    mix = dict(DEFAULT_MIX)
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        if name not in mix:
            raise argparse.ArgumentTypeError(f"unknown class {name!r}; known: {', '.join(mix)}")
        try:
            mix[name] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{part!r}: expected CLASS=PERCENT") from None
    if any(v < 0 for v in mix.values()) or not sum(mix.values()):
        raise argparse.ArgumentTypeError("the mix needs non-negative shares, not all 0")
    return mix
