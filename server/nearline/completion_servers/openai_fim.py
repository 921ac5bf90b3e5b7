"""An OpenAI-compatible ``/v1/completions`` (vLLM, llama-cpp-python's server, llama-server,
LiteLLM) with the family's raw FIM prompt: vLLM rejects ``suffix`` and llama-cpp-python's is
broken, so the prompt is laid out here."""

from __future__ import annotations

from typing import Any

from nearline.completion.remote import Probe, RemotePrompt
from nearline.completion_servers.base import HttpRemote, Stream


class OpenAICompletions(HttpRemote):
    kind = "openai"
    path = "/completions"
    probe_path = "/models"

    def body(self, prompt: RemotePrompt) -> dict[str, Any]:
        return {
            "model": self.settings.model,
            "prompt": self.raw_prompt(prompt),
            "max_tokens": prompt.max_tokens,
            "temperature": 0.0,
            "stream": True,
            "stream_options": {"include_usage": True},
            "stop": self.stops(prompt)[:4],  # OpenAI's limit
        }

    def read(self, event: dict[str, Any], stream: Stream) -> bool:
        for choice in event.get("choices") or ():
            text = choice.get("text") or ""
            if text:
                stream.parts.append(str(text))
        usage = event.get("usage")
        if usage:
            stream.prompt_tokens = int(usage.get("prompt_tokens", 0) or 0)
            stream.generated_tokens = int(usage.get("completion_tokens", 0) or 0)
            details = usage.get("prompt_tokens_details") or {}
            stream.cached_tokens = int(details.get("cached_tokens", 0) or 0)
        return False  # until [DONE]

    def check_probe(self, found: Any, rtt_ms: float) -> Probe:
        ids = [str(m.get("id", "")) for m in (found or {}).get("data", []) if isinstance(m, dict)]
        model = self.settings.model
        if model and ids and model not in ids:
            return Probe(False, f"{self.where} serves {', '.join(ids)}, not {model}", rtt_ms)
        return Probe(True, f"{self.where} serves {', '.join(ids) or 'a model'}", rtt_ms)
