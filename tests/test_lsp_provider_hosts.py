"""A provider's API key goes to its own provider's host and nowhere else: from a
``.nearline.toml`` text, through the real server over stdio, to the host a request is sent to.

Every HTTPS request leaves through a proxy on 127.0.0.1 that records each ``CONNECT`` and refuses
the tunnel, so nothing leaves the machine and the key (sent only inside a tunnel) never reaches
the proxy either."""

from __future__ import annotations

import re
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types

from support import ROOT
from support.lsp_client import Client, plain

ANTHROPIC_KEY = "sk-ant-test-0123456789-never-leaves"
OPENAI_KEY = "sk-openai-test-9876543210-never-leaves"
CALC = "def f(a, b):\n    return a+b\n"


REFUSAL = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class RefusingProxy(socketserver.ThreadingTCPServer):
    """Records the first line of every request (``CONNECT host:port HTTP/1.1``) and all the
    bytes it was sent, and answers 403."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.lines: list[str] = []
        self.received = b""
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def connected_hosts(self) -> list[str]:
        return [line.split()[1] for line in self.lines if line.startswith("CONNECT ")]


class _ProxyHandler(socketserver.StreamRequestHandler):
    server: RefusingProxy

    def handle(self) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.request.recv(4096)
            if not chunk:
                break
            head += chunk
        with self.server.lock:
            self.server.received += head
            self.server.lines.append(head.split(b"\r\n", 1)[0].decode("latin-1"))
        self.wfile.write(REFUSAL)


@pytest.fixture
def proxy() -> Iterator[RefusingProxy]:
    server = RefusingProxy()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def readme_escalation_example() -> str:
    """The ``.nearline.toml`` example in the README, as a user would copy it."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Escalation to cloud models", 1)[1]
    found = re.search(r"```toml\n(.*?)```", section, re.S)
    assert found, "the README's escalation section has no TOML example"
    return found.group(1)


def proxied_env(env: dict[str, str], proxy: RefusingProxy, **keys: str) -> dict[str, str]:
    env = {k: v for k, v in env.items() if k.upper() not in _PROXY_AND_KEY_VARIABLES}
    env.update(HTTPS_PROXY=proxy.url, HTTP_PROXY=proxy.url, **keys)
    return env


_PROXY_AND_KEY_VARIABLES = {
    "HTTPS_PROXY",
    "HTTP_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "ANTHROPIC_API_KEY",
    "OPENAI_API_KEY",
}


async def refactor(env: dict[str, str], root: Path) -> dict[str, Any]:
    """``nearline.refactor`` of calc.py through the real server; returns its result."""
    client = Client()
    await client.start(env, root=root)
    try:
        uri = (root / "calc.py").as_uri()
        client.open(uri, CALC)
        arguments = [
            {
                "uri": uri,
                "range": {"start": {"line": 0, "character": 0}, "end": {"line": 1, "character": 0}},
                "instruction": "rename f to add",
            }
        ]
        result = await client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="nearline.refactor", arguments=arguments)
        )
        return dict(plain(result))
    finally:
        await client.finish()


def project(tmp_path: Path, config: str) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "calc.py").write_text(CALC)
    (root / ".nearline.toml").write_text(config)
    return root


@pytest.mark.slow
async def test_the_readme_example_sends_the_anthropic_key_to_anthropic_only(
    nearline_env: dict[str, str], tmp_path: Path, proxy: RefusingProxy
) -> None:
    root = project(tmp_path, readme_escalation_example())
    env = proxied_env(nearline_env, proxy, ANTHROPIC_API_KEY=ANTHROPIC_KEY)
    result = await refactor(env, root)
    # Refused by the proxy: claude fails, then mini has no key and is never tried on the wire.
    assert result["ok"] is False and "OPENAI_API_KEY" in result["message"], result
    assert set(proxy.connected_hosts()) == {"api.anthropic.com:443"}, proxy.lines
    assert ANTHROPIC_KEY.encode() not in proxy.received


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kind", "base_url", "host"),
    [
        ("anthropic", None, "api.anthropic.com:443"),
        ("openai", None, "api.openai.com:443"),
        ("anthropic", "https://claude-gateway.example.test", "claude-gateway.example.test:443"),
        ("openai", "https://llm.example.test:8443/v1", "llm.example.test:8443"),
    ],
)
async def test_a_key_goes_to_its_provider_s_host(
    nearline_env: dict[str, str],
    tmp_path: Path,
    proxy: RefusingProxy,
    kind: str,
    base_url: str | None,
    host: str,
) -> None:
    variable = "ANTHROPIC_API_KEY" if kind == "anthropic" else "OPENAI_API_KEY"
    key = ANTHROPIC_KEY if kind == "anthropic" else OPENAI_KEY
    url_line = f'base_url = "{base_url}"\n' if base_url else ""
    config = (
        f'[providers.cloud]\nkind = "{kind}"\nmodel = "some-model"\n'
        f'api_key_env = "{variable}"\n{url_line}'
        '[routing]\nrules = []\ndefault_tier = "flagship"\n'
        '[routing.tiers]\nflagship = ["cloud"]\n'
    )
    env = proxied_env(nearline_env, proxy, **{variable: key})
    result = await refactor(env, project(tmp_path, config))
    assert result["ok"] is False, result
    assert set(proxy.connected_hosts()) == {host}, proxy.lines
    assert key.encode() not in proxy.received
