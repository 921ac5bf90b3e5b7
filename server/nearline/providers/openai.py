"""Any OpenAI-compatible server: OpenAI, vLLM, llama.cpp, llama-cpp-python, Ollama, ...

``POST {base_url}/chat/completions`` with ``"stream": true``; the answer is SSE ``data:`` lines of
``chat.completion.chunk`` objects, the usage in a last chunk (``stream_options.include_usage``),
then ``data: [DONE]``. OpenAI caches prompt prefixes by itself; ``prompt_cache_key`` groups
requests that share one (sent only when the request has a ``cache_key``).

For reasoning models (o-series, gpt-5) that refuse ``max_tokens`` and ``temperature``, set
``extra_body = {"max_tokens": None, "temperature": None, "max_completion_tokens": 4096}``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from nearline.providers.http import HttpChatEngine, SseEvent, token_count
from nearline.providers.types import ChatRequest, Usage

DONE = "[DONE]"


def openai_usage(usage: Any) -> Usage:
    """``prompt_tokens`` includes ``prompt_tokens_details.cached_tokens``; split them."""
    if not isinstance(usage, dict):
        return Usage()
    details = usage.get("prompt_tokens_details")
    cached = token_count(details.get("cached_tokens")) if isinstance(details, dict) else 0
    prompt = token_count(usage.get("prompt_tokens"))
    return Usage(
        input_tokens=max(0, prompt - cached),
        cache_read_tokens=cached,
        output_tokens=token_count(usage.get("completion_tokens")),
    )


class OpenAIEngine(HttpChatEngine):
    def _url(self) -> str:
        return self.settings.base_url.rstrip("/") + "/chat/completions"

    def _headers(self, key: str | None) -> dict[str, str]:
        headers = {"accept": "text/event-stream"}
        if key is not None:
            headers["authorization"] = f"Bearer {key}"
        return headers

    def _body(self, request: ChatRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.settings.model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if request.cache_key is not None:
            body["prompt_cache_key"] = request.cache_key
        return body

    async def _read_stream(
        self, events: AsyncIterator[SseEvent], on_text: Callable[[str], None] | None
    ) -> tuple[str, Usage]:
        parts: list[str] = []
        usage = Usage()
        seen = done = finished = False
        async for event in events:
            seen = True
            if event.data.strip() == DONE:
                done = True
                break
            chunk = self._event_json(event.data)
            if "error" in chunk:
                raise self._error_in_stream(chunk["error"])
            for choice in chunk.get("choices") or ():
                if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                    continue
                delta = choice.get("delta")
                content = delta.get("content") if isinstance(delta, dict) else None
                if isinstance(content, str) and content:
                    parts.append(content)
                    if on_text is not None:
                        on_text("".join(parts))
                finished = finished or bool(choice.get("finish_reason"))
            if chunk.get("usage"):
                usage = openai_usage(chunk["usage"])
        if not seen:
            raise self._malformed("empty stream")
        if not (done or finished):
            raise self._cut(f"{DONE} (after {len(parts)} pieces of text)")
        return "".join(parts), usage

    def _read_json(self, body: Any) -> tuple[str, Usage]:
        """A server that ignored ``stream`` and sent one ``chat.completion`` object."""
        if isinstance(body, dict) and "error" in body:
            raise self._error_in_stream(body["error"])
        try:
            content = body["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise self._malformed("a JSON body without choices[0].message") from None
        return (content if isinstance(content, str) else ""), openai_usage(body.get("usage"))

    def _error_in_stream(self, error: Any) -> Exception:
        if isinstance(error, dict):
            kind = str(error.get("type") or error.get("code") or "error")
            text = f"{kind}: {error.get('message', '')}"
            return self._stream_error(text, retryable=kind != "invalid_request_error")
        return self._stream_error(str(error), retryable=True)
