"""``python -m llama_cpp.server`` (llama-cpp-python's OpenAI-compatible server) on 127.0.0.1 with
the default model, for the tests that need a real completion server (and kill it)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from support.net import free_port


@contextlib.contextmanager
def llama_cpp_server(
    folder: Path, *, threads: int | None = 1, n_ctx: int = 4096
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """The server's process and its base URL (``.../v1``); killed on the way out.
    ``threads``: its CPU threads (None: all)."""
    from nearline.catalog import default_model_path

    port = free_port()
    log_path = folder / "llama_server.log"
    command = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(default_model_path()),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        str(n_ctx),
        *(["--n_threads", str(threads)] if threads else []),
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                tail = log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"llama_cpp.server exited with {process.returncode}: {tail}")
            try:
                if httpx.get(f"{url}/models", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("llama_cpp.server did not answer /v1/models within 120 s")
            time.sleep(0.2)
        yield process, url
    finally:
        process.kill()
        process.wait(timeout=30)


def served_model(url: str) -> str:
    """The id the server gives its model (the GGUF's path)."""
    return str(httpx.get(f"{url}/models", timeout=5.0).json()["data"][0]["id"])
