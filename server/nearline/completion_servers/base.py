"""What the HTTP completion servers share: one ``httpx`` client per server (its connections
kept), the key sent only to that server, a streamed request whose cancellation closes the
connection, and failures as ``RemoteEngineError`` (503 and 429: busy)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from nearline.completion.engine.templates import FimTemplate
from nearline.completion.remote import Probe, RemoteAnswer, RemotePrompt
from nearline.completion_servers.address import origin
from nearline.config.remote import RemoteSettings
from nearline.errors import RemoteEngineError

BUSY = (429, 503)


@dataclass
class Stream:
    """An answer as it arrives."""

    parts: list[str] = field(default_factory=list)
    prompt_tokens: int = 0
    cached_tokens: int = 0
    generated_tokens: int = 0
    first_token_ms: float | None = None


class HttpRemote:
    """A completion server over HTTP; subclasses say where to POST, what, and how to read
    the streamed answer."""

    kind = ""
    path = ""
    probe_path = ""

    def __init__(
        self,
        settings: RemoteSettings,
        template: FimTemplate,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self.template = template
        self.base = settings.url.rstrip("/")
        self.model_id = settings.model or self.kind
        self.where = origin(settings.url)
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(settings.read_timeout_s, connect=settings.connect_timeout_s),
            transport=transport,
            follow_redirects=False,  # the key goes to this host only
        )

    def headers(self) -> dict[str, str]:
        env = self.settings.api_key_env
        if not env:
            return {}
        key = os.environ.get(env, "").strip()
        if not key:
            raise RemoteEngineError(
                f"the completion server {self.where} needs a key: ${env} is not set"
            )
        return {"Authorization": f"Bearer {key}"}

    # -- what subclasses give ----------------------------------------------------------------
    def body(self, prompt: RemotePrompt) -> dict[str, Any]:
        raise NotImplementedError

    def read(self, event: dict[str, Any], stream: Stream) -> bool:
        """Take one streamed event into ``stream``; True when it was the last."""
        raise NotImplementedError

    def events(self, response: httpx.Response) -> AsyncIterator[str]:
        """The streamed events' JSON texts (SSE ``data:`` lines by default)."""
        return _sse_data(response)

    def raw_prompt(self, prompt: RemotePrompt) -> str:
        """The family's FIM prompt (cross-file blocks in its repository format first)."""
        repo = prompt.blocks if self.template.repo else ()
        suffix = prompt.suffix if self.template.uses_suffix else ""
        return self.template.render(
            prompt.prefix, suffix, path=prompt.path, repo=repo, repo_path=prompt.path
        )

    def stops(self, prompt: RemotePrompt) -> list[str]:
        return list(dict.fromkeys((*self.template.stop, *prompt.stop)))

    # -- the request ---------------------------------------------------------------------
    async def complete(self, prompt: RemotePrompt) -> RemoteAnswer:
        t0 = time.perf_counter()
        stream = Stream()
        try:
            async with self._client.stream(
                "POST", self.base + self.path, json=self.body(prompt), headers=self.headers()
            ) as response:
                if not response.is_success:  # a redirect too: the key stays with this host
                    raw = (await response.aread())[:300].decode("utf-8", "replace")
                    raise RemoteEngineError(
                        f"the completion server {self.where} answered {response.status_code}: "
                        f"{raw.strip() or response.reason_phrase}",
                        busy=response.status_code in BUSY,
                    )
                async for data in self.events(response):
                    before = len(stream.parts)
                    done = self.read(json.loads(data), stream)
                    if stream.first_token_ms is None and len(stream.parts) > before:
                        stream.first_token_ms = (time.perf_counter() - t0) * 1000
                    if done:
                        break
        except httpx.TimeoutException:
            raise RemoteEngineError(f"the completion server {self.where} timed out") from None
        except httpx.HTTPError as exc:
            raise RemoteEngineError(
                f"cannot reach the completion server {self.where}: {exc}"
            ) from None
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise RemoteEngineError(
                f"the completion server {self.where} answered something unreadable: {exc}"
            ) from None
        return RemoteAnswer(
            text="".join(stream.parts),
            model=self.model_id,
            prompt_tokens=stream.prompt_tokens,
            cached_tokens=stream.cached_tokens,
            generated_tokens=stream.generated_tokens,
            latency_ms=(time.perf_counter() - t0) * 1000,
            first_token_ms=stream.first_token_ms,
        )

    async def probe(self) -> Probe:
        t0 = time.perf_counter()
        try:
            response = await self._client.get(self.base + self.probe_path, headers=self.headers())
        except httpx.HTTPError as exc:
            return Probe(False, f"cannot reach {self.where}: {exc or type(exc).__name__}")
        except RemoteEngineError as exc:
            return Probe(False, str(exc))
        rtt = (time.perf_counter() - t0) * 1000
        if response.status_code in BUSY:
            return Probe(False, f"{self.where} is busy ({response.status_code})", rtt, busy=True)
        if not response.is_success:
            return Probe(False, f"{self.where} answered {response.status_code}", rtt)
        try:
            return self.check_probe(response.json(), rtt)
        except ValueError:
            return Probe(False, f"{self.where}{self.probe_path} is not JSON", rtt)

    def check_probe(self, found: Any, rtt_ms: float) -> Probe:
        return Probe(True, f"{self.where} is up", rtt_ms)

    async def aclose(self) -> None:
        await self._client.aclose()


async def _sse_data(response: httpx.Response) -> AsyncIterator[str]:
    async for line in response.aiter_lines():
        if line.startswith("data:"):
            data = line[5:].strip()
            if data == "[DONE]":
                return
            if data:
                yield data


async def ndjson(response: httpx.Response) -> AsyncIterator[str]:
    async for line in response.aiter_lines():
        if line.strip():
            yield line
