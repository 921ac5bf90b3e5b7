"""llama.cpp's ``llama-server``: ``/infill`` (prefix, suffix and the cross-file blocks as
``input_extra``; the server lays out the family's FIM prompt and keeps it in its cache)."""

from __future__ import annotations

from typing import Any

from nearline.completion.remote import Probe, RemotePrompt
from nearline.completion_servers.base import HttpRemote, Stream


class LlamaServer(HttpRemote):
    kind = "llama-server"
    path = "/infill"
    probe_path = "/health"

    def body(self, prompt: RemotePrompt) -> dict[str, Any]:
        body: dict[str, Any] = {
            "input_prefix": prompt.prefix,
            "input_suffix": prompt.suffix,
            "input_extra": [{"filename": p, "text": t} for p, t in prompt.blocks],
            "n_predict": prompt.max_tokens,
            "cache_prompt": True,
            "stream": True,
            "temperature": 0.0,
            "top_k": 1,
            "n_indent": prompt.indent,
            "stop": list(prompt.stop),
        }
        if prompt.time_limit_ms:
            body["t_max_predict_ms"] = prompt.time_limit_ms
        return body

    def read(self, event: dict[str, Any], stream: Stream) -> bool:
        content = event.get("content", "")
        if content:
            stream.parts.append(str(content))
        if not event.get("stop"):
            return False
        timings = event.get("timings") or {}
        stream.cached_tokens = int(event.get("tokens_cached", 0) or 0)
        stream.prompt_tokens = int(event.get("tokens_evaluated", 0) or 0) or int(
            timings.get("prompt_n", 0) or 0
        )
        stream.generated_tokens = int(timings.get("predicted_n", 0) or 0)
        return True

    def check_probe(self, found: Any, rtt_ms: float) -> Probe:
        status = str(found.get("status", "")) if isinstance(found, dict) else ""
        if status in ("ok", "no slot available"):
            busy = status != "ok"
            return Probe(not busy, f"{self.where} is {status}", rtt_ms, busy=busy)
        return Probe(False, f"{self.where}/health says {status or found!r}", rtt_ms)
