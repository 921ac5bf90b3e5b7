"""Anthropic's Messages API: ``POST {base_url}/v1/messages`` with ``"stream": true``.

The system prompt goes as a list of text blocks; a ``ChatMessage`` with ``cache`` set ends a
stable prefix and gets ``cache_control: {"type": "ephemeral"}`` (Anthropic allows four such
breakpoints per request), with ``"ttl": "1h"`` when the message says so (a longer lifetime
must not follow a shorter one). ``message_start``'s ``cache_creation`` tells the 1-hour writes
apart. The answer is SSE events::

    message_start         usage: input_tokens, cache_read_input_tokens, cache_creation_input_tokens
    content_block_start / content_block_delta (text_delta) / content_block_stop
    message_delta         usage: output_tokens so far (cumulative; the last one counts)
    message_stop          the end; without it the stream was cut
    ping                  keep-alive;  error: e.g. overloaded_error, even after a 200

Anthropic's ``input_tokens`` already excludes cache reads and writes, so usage maps directly.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from nearline.providers.http import HttpChatEngine, SseEvent, token_count
from nearline.providers.types import ChatMessage, ChatRequest, Usage

ANTHROPIC_VERSION = "2023-06-01"
RETRYABLE_ERROR_TYPES = frozenset(
    {"overloaded_error", "api_error", "rate_limit_error", "timeout_error"}
)
_USAGE_FIELDS = {
    "input_tokens": "input_tokens",
    "cache_read_input_tokens": "cache_read_tokens",
    "cache_creation_input_tokens": "cache_write_tokens",
    "output_tokens": "output_tokens",
}


def anthropic_usage(usage: Any, base: Usage | None = None) -> Usage:
    """``base`` with the counts that ``usage`` carries (message_delta repeats only some)."""
    counts = dict(vars(base or Usage()))
    if isinstance(usage, dict):
        for theirs, ours in _USAGE_FIELDS.items():
            if usage.get(theirs) is not None:
                counts[ours] = token_count(usage[theirs])
        written = usage.get("cache_creation")
        if isinstance(written, dict) and written.get("ephemeral_1h_input_tokens") is not None:
            hour = token_count(written["ephemeral_1h_input_tokens"])
            counts["cache_write_1h_tokens"] = min(hour, counts["cache_write_tokens"])
    return Usage(**counts)


MAX_BREAKPOINTS = 4
"""Anthropic refuses a request with more ``cache_control`` blocks than this."""


def text_block(message: ChatMessage, cache: bool = False) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "text", "text": message.content}
    if cache:
        block["cache_control"] = {"type": "ephemeral"}
        if message.ttl:
            block["cache_control"]["ttl"] = message.ttl
    return block


def breakpoints(messages: tuple[ChatMessage, ...]) -> set[int]:
    """The messages that get a breakpoint: the first ``MAX_BREAKPOINTS`` marked ``cache``
    (the stable prefix comes first), system ones first, as Anthropic reads them."""
    order = sorted(range(len(messages)), key=lambda i: messages[i].role != "system")
    return set([i for i in order if messages[i].cache][:MAX_BREAKPOINTS])


class AnthropicEngine(HttpChatEngine):
    def _url(self) -> str:
        return self.settings.base_url.rstrip("/") + "/v1/messages"

    def _headers(self, key: str | None) -> dict[str, str]:
        headers = {"accept": "text/event-stream", "anthropic-version": ANTHROPIC_VERSION}
        if key is not None:
            headers["x-api-key"] = key
        return headers

    def _body(self, request: ChatRequest) -> dict[str, Any]:
        marked = breakpoints(request.messages)
        system = [
            text_block(m, i in marked) for i, m in enumerate(request.messages) if m.role == "system"
        ]
        turns: list[dict[str, Any]] = []
        for i, message in enumerate(request.messages):
            if message.role == "system":
                continue
            block = text_block(message, i in marked)
            if turns and turns[-1]["role"] == message.role:  # one turn per role change
                turns[-1]["content"].append(block)
            else:
                turns.append({"role": message.role, "content": [block]})
        body: dict[str, Any] = {
            "model": self.settings.model,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "stream": True,
            "messages": turns,
        }
        if system:
            body["system"] = system
        return body

    async def _read_stream(
        self, events: AsyncIterator[SseEvent], on_text: Callable[[str], None] | None
    ) -> tuple[str, Usage]:
        parts: list[str] = []
        usage = Usage()
        seen = stopped = False
        async for event in events:
            seen = True
            payload = self._event_json(event.data)
            kind = payload.get("type", event.event)
            if kind == "message_start":
                message = payload.get("message")
                usage = anthropic_usage(message.get("usage") if isinstance(message, dict) else None)
            elif kind == "content_block_delta":
                delta = payload.get("delta")
                if isinstance(delta, dict) and delta.get("type") == "text_delta":
                    text = delta.get("text")
                    if isinstance(text, str) and text:
                        parts.append(text)
                        if on_text is not None:
                            on_text("".join(parts))
            elif kind == "message_delta":
                usage = anthropic_usage(payload.get("usage"), usage)
            elif kind == "message_stop":
                stopped = True
                break
            elif kind == "error":
                raise self._error_event(payload.get("error"))
            # ping, content_block_start/stop and event types added later: nothing to do
        if not seen:
            raise self._malformed("empty stream")
        if not stopped:
            raise self._cut(f"message_stop (after {len(parts)} pieces of text)")
        return "".join(parts), usage

    def _read_json(self, body: Any) -> tuple[str, Usage]:
        """A proxy that answered with one ``message`` object instead of a stream."""
        if isinstance(body, dict) and body.get("type") == "error":
            raise self._error_event(body.get("error"))
        if not isinstance(body, dict) or not isinstance(body.get("content"), list):
            raise self._malformed("a JSON body that is not a message")
        text = "".join(
            block.get("text", "")
            for block in body["content"]
            if isinstance(block, dict) and block.get("type") == "text"
        )
        return text, anthropic_usage(body.get("usage"))

    def _error_event(self, error: Any) -> Exception:
        if not isinstance(error, dict):
            return self._stream_error(str(error), retryable=True)
        kind = str(error.get("type", "error"))
        return self._stream_error(
            f"{kind}: {error.get('message', '')}", retryable=kind in RETRYABLE_ERROR_TYPES
        )
