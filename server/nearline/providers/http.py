"""Chat engines for remote models: the shared types, and the HTTP streaming both providers use.

::

    ChatRequest ──▶ ProviderChain.chat()            reliability.py: order, breaker, summary error
                      └─▶ ChatEngine.chat()          one provider (make_engine picks the class)
                            ├── api_key()            the key, from the variable named in settings
                            ├── with_retries()       reliability.py: backoff, Retry-After
                            └── HttpChatEngine._attempt()   one streamed POST with httpx
                                  ├── openai.py      /chat/completions, SSE chunks, [DONE]
                                  └── anthropic.py   /v1/messages, SSE events, message_stop
    ChatResult ◀── text, Usage (uncached input, cache reads and writes, output), tries, latency

What can go wrong is always a ``nearline.errors.ProviderError`` (see reliability.py for the
subclasses added there); a partial answer is never returned. Keys are read from the
environment on every call and never logged or put into a message (provider text is redacted).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random as _random
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

import httpx

from nearline import __version__
from nearline.config import ProviderSettings
from nearline.errors import OfflineError, ProviderError, ProviderKeyError
from nearline.providers.reliability import (
    RETRYABLE_STATUSES,
    MalformedResponseError,
    ProviderHTTPError,
    RetryPolicy,
    Sleep,
    parse_retry_after,
    with_retries,
)
from nearline.providers.types import ChatRequest, ChatResult, Usage, estimate_usage

log = logging.getLogger(__name__)
_NO_USAGE: set[str] = set()
"""Providers already warned about for sending no usage."""

WRITE_TIMEOUT_S = 10.0
POOL_TIMEOUT_S = 10.0
USER_AGENT = f"nearline/{__version__}"
PROVIDER_TEXT_CHARS = 300
"""How much of a provider's own error text goes into a message."""


def api_key(settings: ProviderSettings) -> str | None:
    """The key from ``settings.api_key_env``; None when the provider needs none."""
    if settings.api_key_env is None:
        return None
    value = os.environ.get(settings.api_key_env, "").strip()
    if not value:
        raise ProviderKeyError(
            f"{settings.name}: the environment variable {settings.api_key_env} is not set; "
            f"set it to an API key for {settings.base_url}",
            provider=settings.name,
        )
    return value


@dataclass(frozen=True)
class SseEvent:
    event: str
    data: str


async def iter_sse(lines: AsyncIterator[str]) -> AsyncGenerator[SseEvent, None]:
    """Server-sent events from decoded lines. An event not ended by a blank line (a cut
    stream) is dropped, as the SSE specification says."""
    event = ""
    data: list[str] = []
    async for line in lines:
        if not line:
            if data:
                yield SseEvent(event or "message", "\n".join(data))
            event, data = "", []
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "event":
                event = value
            elif name == "data":
                data.append(value)


def provider_error_text(raw: bytes) -> str:
    """The provider's own explanation from an error body (OpenAI, Anthropic, FastAPI shapes)."""
    text = raw.decode("utf-8", "replace").strip()
    try:
        body = json.loads(text)
    except ValueError:
        return text
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict):
            message = error.get("message") or error.get("detail")
            kind = error.get("type") or error.get("code")
            if isinstance(message, str):
                return f"{kind}: {message}" if isinstance(kind, str) else message
        elif isinstance(error, str):
            return error
        detail = body.get("detail")
        if detail is not None:
            return detail if isinstance(detail, str) else json.dumps(detail)
    return text


class HttpChatEngine:
    """One provider over HTTP: key, retries, one streamed POST per try, errors mapped.

    Subclasses say what to send (``_url``, ``_headers``, ``_body``) and how to read the answer
    (``_read_stream`` for SSE, ``_read_json`` for a provider that answers with plain JSON). One
    engine holds one connection pool and belongs to one event loop; ``aclose`` it when done.
    """

    def __init__(
        self,
        settings: ProviderSettings,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        sleep: Sleep = asyncio.sleep,
        random: Callable[[], float] = _random.random,
    ) -> None:
        self.settings = settings
        self._transport = transport
        self._sleep = sleep
        self._random = random
        self._policy = RetryPolicy(
            settings.max_retries, settings.backoff_base_s, settings.backoff_max_s
        )
        self._client: httpx.AsyncClient | None = None
        self._secrets: set[str] = set()

    @property
    def name(self) -> str:
        return self.settings.name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.settings.name!r}, model={self.settings.model!r})"

    # -- what subclasses provide --------------------------------------------------------------

    def _url(self) -> str:
        raise NotImplementedError

    def _headers(self, key: str | None) -> dict[str, str]:
        raise NotImplementedError

    def _body(self, request: ChatRequest) -> dict[str, Any]:
        raise NotImplementedError

    async def _read_stream(
        self, events: AsyncIterator[SseEvent], on_text: Callable[[str], None] | None
    ) -> tuple[str, Usage]:
        raise NotImplementedError

    def _read_json(self, body: Any) -> tuple[str, Usage]:
        raise NotImplementedError

    # -- shared ---------------------------------------------------------------------------------

    async def chat(
        self, request: ChatRequest, on_text: Callable[[str], None] | None = None
    ) -> ChatResult:
        key = api_key(self.settings)
        if key:
            self._secrets.add(key)
        started = time.perf_counter()
        (text, usage), tries = await with_retries(
            lambda: self._attempt(request, key, on_text),
            self._policy,
            sleep=self._sleep,
            random=self._random,
            provider=self.settings.name,
        )
        if usage == Usage():
            if self.settings.name not in _NO_USAGE:
                _NO_USAGE.add(self.settings.name)
                log.warning(
                    "%s reported no token usage; the ledger gets an estimate from text lengths",
                    self.settings.name,
                )
            usage = estimate_usage(request, text)
        return ChatResult(
            text=text,
            usage=usage,
            provider=self.settings.name,
            model=self.settings.model,
            latency_ms=(time.perf_counter() - started) * 1000.0,
            attempts=tries,
        )

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            timeout = httpx.Timeout(
                connect=self.settings.connect_timeout_s,
                read=self.settings.read_timeout_s,
                write=WRITE_TIMEOUT_S,
                pool=POOL_TIMEOUT_S,
            )
            self._client = httpx.AsyncClient(
                transport=self._transport, timeout=timeout, headers={"user-agent": USER_AGENT}
            )
        return self._client

    def _merged_body(self, request: ChatRequest) -> dict[str, Any]:
        body = self._body(request)
        for name, value in self.settings.extra_body.items():
            if value is None:
                body.pop(name, None)
            else:
                body[name] = value
        return body

    async def _attempt(
        self, request: ChatRequest, key: str | None, on_text: Callable[[str], None] | None
    ) -> tuple[str, Usage]:
        """One try. Text gathered before a failure is dropped with the exception."""
        name, url = self.settings.name, self._url()
        body = self._merged_body(request)
        try:
            async with self._http().stream(
                "POST", url, headers=self._headers(key), json=body
            ) as response:
                if response.status_code >= 300:
                    raise self._status_error(response, await response.aread())
                if "json" in response.headers.get("content-type", ""):
                    text, usage = self._read_json(self._parse_json(await response.aread()))
                    if on_text is not None and text:
                        on_text(text)
                    return text, usage
                async with aclosing(iter_sse(response.aiter_lines())) as events:
                    return await self._read_stream(events, on_text)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise OfflineError(
                f"{name}: cannot connect to {url} ({_describe(exc)})",
                provider=name,
                retryable=True,
            ) from exc
        except httpx.ReadTimeout as exc:
            raise ProviderError(
                f"{name}: no answer from {url} within {self.settings.read_timeout_s:g}s",
                provider=name,
                retryable=True,
            ) from exc
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
            raise ProviderError(
                f"{name}: the connection was cut before the answer was complete ({_describe(exc)})",
                provider=name,
                retryable=True,
            ) from exc
        except httpx.DecodingError as exc:
            raise self._malformed(f"undecodable body ({_describe(exc)})") from exc
        except httpx.TimeoutException as exc:  # write or pool
            raise ProviderError(f"{name}: {_describe(exc)}", provider=name, retryable=True) from exc
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise ProviderError(
                f"{name}: request to {url} failed ({_describe(exc)})", provider=name
            ) from exc

    def _status_error(self, response: httpx.Response, raw: bytes) -> ProviderHTTPError:
        status = response.status_code
        message = f"{self.settings.name}: HTTP {status} {response.reason_phrase}".rstrip()
        detail = self._provider_text(provider_error_text(raw))
        if detail:
            message += f": {detail}"
        if status in (401, 403) and self.settings.api_key_env:
            message += f" (check the key in {self.settings.api_key_env})"
        retry_after = None
        if "retry-after-ms" in response.headers:
            ms = parse_retry_after(response.headers["retry-after-ms"])
            retry_after = None if ms is None else ms / 1000.0
        if retry_after is None:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
        return ProviderHTTPError(
            message,
            provider=self.settings.name,
            status=status,
            retryable=status in RETRYABLE_STATUSES,
            retry_after_s=retry_after,
        )

    def _parse_json(self, raw: bytes) -> Any:
        if not raw.strip():
            raise self._malformed("empty body")
        try:
            return json.loads(raw)
        except ValueError:
            preview = self._provider_text(raw.decode("utf-8", "replace"), limit=80)
            raise self._malformed(f"invalid JSON: {preview!r}") from None

    def _event_json(self, data: str) -> dict[str, Any]:
        """One SSE event's JSON object; anything else is a malformed answer."""
        try:
            body = json.loads(data)
        except ValueError:
            preview = self._provider_text(data, limit=80)
            raise self._malformed(f"invalid JSON in the stream: {preview!r}") from None
        if not isinstance(body, dict):
            raise self._malformed(f"unexpected event {self._provider_text(data, limit=80)!r}")
        return body

    def _malformed(self, what: str) -> MalformedResponseError:
        return MalformedResponseError(
            f"{self.settings.name}: malformed answer: {what}",
            provider=self.settings.name,
            retryable=True,
        )

    def _stream_error(self, what: str, *, retryable: bool) -> ProviderError:
        """An error the provider reported inside a stream that began well."""
        return ProviderError(
            f"{self.settings.name}: error in the stream: {self._provider_text(what)}",
            provider=self.settings.name,
            retryable=retryable,
        )

    def _cut(self, what: str) -> ProviderError:
        return ProviderError(
            f"{self.settings.name}: the stream ended before {what}",
            provider=self.settings.name,
            retryable=True,
        )

    def _provider_text(self, text: str, limit: int = PROVIDER_TEXT_CHARS) -> str:
        """Provider-controlled text, shortened and with any key we sent blanked out."""
        for secret in self._secrets:
            text = text.replace(secret, "[redacted]")
        text = " ".join(text.split())
        return text if len(text) <= limit else text[: limit - 1] + "…"


def token_count(value: object) -> int:
    """A token count from a usage object; missing, null or odd values count as 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0
    return max(0, int(value))


def _describe(exc: Exception) -> str:
    return str(exc) or type(exc).__name__
