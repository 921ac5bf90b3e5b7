"""Where nearline keeps its files. Each location can be moved with an environment variable."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import platformdirs

APP = "nearline"


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value).expanduser() if value else None


def cache_dir(configured: str | None = None) -> Path:
    """The caches' folder (completions, KV states, the index, eval): ``configured`` (the
    ``cache.dir`` setting) when given, else ``NEARLINE_CACHE_DIR``, else the user cache dir."""
    if configured:
        return Path(configured).expanduser()
    return _env_path("NEARLINE_CACHE_DIR") or Path(platformdirs.user_cache_dir(APP))


def project_store(cache: Path, kind: str, root: Path) -> Path:
    """The folder of a project's ``kind`` of store ("index", "eval") in ``cache``, named by the
    project folder's resolved path, hashed."""
    return cache / kind / hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:16]


def data_dir() -> Path:
    """Pulled models and the usage ledger. ``NEARLINE_DATA_DIR`` overrides."""
    return _env_path("NEARLINE_DATA_DIR") or Path(platformdirs.user_data_dir(APP))


def models_download_dir() -> Path:
    return data_dir() / "models"


def user_config_file() -> Path:
    """The user's config. ``NEARLINE_CONFIG`` overrides."""
    return _env_path("NEARLINE_CONFIG") or Path(platformdirs.user_config_dir(APP)) / "config.toml"


def bundled_data_dir() -> Path:
    """The data files under the repository's ``models/``: inside the wheel, or in a checkout."""
    packaged = Path(__file__).resolve().parent / "_models"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "models"
