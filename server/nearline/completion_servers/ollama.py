"""Ollama's ``/api/generate`` with ``raw: true`` (the family's FIM prompt laid out here),
streamed as JSON lines."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx

from nearline.completion.remote import Probe, RemotePrompt
from nearline.completion_servers.base import HttpRemote, Stream, ndjson


class Ollama(HttpRemote):
    kind = "ollama"
    path = "/api/generate"
    probe_path = "/api/tags"

    def body(self, prompt: RemotePrompt) -> dict[str, Any]:
        return {
            "model": self.settings.model,
            "prompt": self.raw_prompt(prompt),
            "raw": True,
            "stream": True,
            "options": {
                "num_predict": prompt.max_tokens,
                "temperature": 0.0,
                "top_k": 1,
                "stop": self.stops(prompt),
            },
        }

    def events(self, response: httpx.Response) -> AsyncIterator[str]:
        return ndjson(response)

    def read(self, event: dict[str, Any], stream: Stream) -> bool:
        if event.get("error"):
            raise ValueError(str(event["error"]))
        text = event.get("response") or ""
        if text:
            stream.parts.append(str(text))
        if not event.get("done"):
            return False
        stream.prompt_tokens = int(event.get("prompt_eval_count", 0) or 0)
        stream.generated_tokens = int(event.get("eval_count", 0) or 0)
        return True

    def check_probe(self, found: Any, rtt_ms: float) -> Probe:
        names = [str(m.get("name", "")) for m in (found or {}).get("models", [])]
        model = self.settings.model
        if model and not any(n == model or n.split(":")[0] == model for n in names):
            return Probe(False, f"{self.where} has no model {model} (ollama pull {model})", rtt_ms)
        return Probe(True, f"{self.where} has {model or 'its models'}", rtt_ms)
