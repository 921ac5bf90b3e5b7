"""Wheel sets like the ones that carry models on PyPI (a data file per wheel, the model being
those files joined), written as real wheels that real pip serves from a local folder."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class BuiltWheel:
    package: str
    version: str
    member: str
    path: Path
    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()

    def toml(self, entry: str, sha256: str | None = None) -> str:
        """This wheel as a ``[[ENTRY.wheels]]`` table of a catalog."""
        return (
            f'[["{entry}".wheels]]\n'
            f'package = "{self.package}"\n'
            f'version = "{self.version}"\n'
            f'member = "{self.member}"\n'
            f"size = {self.path.stat().st_size}\n"
            f'sha256 = "{sha256 or self.sha256}"\n'
        )


def _record_line(name: str, body: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(body).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(body)}"


def build_wheel(folder: Path, package: str, version: str, number: int, data: bytes) -> BuiltWheel:
    """``{package}-{version}-py3-none-any.whl`` holding ``{module}/data/partNN.bin`` (deflated),
    an ``__init__.py`` and its dist-info, like the published model wheels."""
    module = package.replace("-", "_")
    member = f"{module}/data/part{number:02d}.bin"
    info = f"{module}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n"
    files = {
        f"{module}/__init__.py": b"raise ImportError('never imported')\n",
        member: data,
        f"{info}/METADATA": metadata.encode(),
        f"{info}/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: nearline-tests\nRoot-Is-Purelib: true\n"
            b"Tag: py3-none-any\n"
        ),
        f"{info}/top_level.txt": f"{module}\n".encode(),
    }
    record = "\n".join(_record_line(name, body) for name, body in files.items())
    files[f"{info}/RECORD"] = f"{record}\n{info}/RECORD,,\n".encode()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{module}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, body in files.items():
            archive.writestr(name, body)
    return BuiltWheel(package, version, member, path, data)


def catalog_text(
    entry: str,
    wheels: list[BuiltWheel],
    *,
    url: str = "",
    size: int | None = None,
    sha256: str | None = None,
    wheel_sha256: dict[int, str] | None = None,
) -> str:
    """A catalog with one entry, ``entry``, whose file is the wheels' data joined."""
    model = b"".join(w.data for w in wheels)
    head = (
        f'["{entry}"]\n'
        'family = "Test"\n'
        f'file = "{entry}.gguf"\n'
        f"size = {len(model) if size is None else size}\n"
        f'sha256 = "{sha256 or hashlib.sha256(model).hexdigest()}"\n'
        'auto = "any"\n' + (f'url = "{url}"\n' if url else "")
    )
    pins = wheel_sha256 or {}
    return head + "\n" + "\n".join(w.toml(entry, pins.get(i)) for i, w in enumerate(wheels))
