"""The ``url`` source: one HTTP download with httpx into a ``.part`` file, resumed with a Range
request after a cut, verified against the catalog's sha256 before it is put in place."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx

from nearline.catalog.entries import CatalogEntry, sha256_of
from nearline.catalog.progress import PullProgress
from nearline.errors import ChecksumMismatchError, DownloadError

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 30.0
CHUNK = 1 << 16


def host_of(entry: CatalogEntry) -> str:
    return httpx.URL(entry.url).host or entry.url


def partial_file(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def fetch_url(entry: CatalogEntry, dest: Path, progress: PullProgress) -> None:
    """Download ``entry.url`` to ``dest``. ``DownloadError`` keeps the ``.part`` file for the
    next try, except on a checksum mismatch, which deletes it."""
    part = partial_file(dest)
    _download(entry, part, progress)
    digest = sha256_of(part)
    if digest != entry.sha256:
        part.unlink(missing_ok=True)
        raise ChecksumMismatchError(
            f"{entry.file}: sha256 {digest} does not match the catalog's {entry.sha256}; "
            "the file was deleted (a wrong mirror, or a corrupted transfer)"
        )
    part.replace(dest)


def _download(entry: CatalogEntry, part: Path, progress: PullProgress) -> None:
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
            bar = progress.add(entry.file, total, offset)
            with part.open("ab" if offset else "wb") as out:
                for chunk in response.iter_bytes(CHUNK):
                    out.write(chunk)
                    written += len(chunk)
                    progress.update(bar, advance=len(chunk))
    except httpx.ConnectError as exc:
        raise DownloadError(
            f"cannot reach {host_of(entry)} ({exc}); are you offline? "
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
