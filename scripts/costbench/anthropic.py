"""Anthropic's Messages API as the simulated provider speaks it: the request's content blocks
(system first, with their ``cache_control`` marks) and a streamed answer's SSE events
(message_start with the usage, text deltas, message_delta with the output tokens,
message_stop), as ``nearline.providers.anthropic`` reads them."""

from __future__ import annotations

import json
from typing import Any

from costbench.caching import Billed


def pieces_of(text: str) -> list[str]:
    step = max(1, len(text) // 8)
    return [text[i : i + step] for i in range(0, len(text), step)]


def anthropic_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    """A Messages API body as one message per content block, in order (system first):
    ``{"role", "content", "cache", "ttl"}``, ``cache`` when the block has ``cache_control``
    (``ttl``: its lifetime, "" for the default)."""
    out: list[dict[str, Any]] = []

    def add(role: str, content: Any) -> None:
        blocks = [{"text": content}] if isinstance(content, str) else content or []
        for b in blocks:
            if isinstance(b, dict):
                control = b.get("cache_control")
                ttl = str(control.get("ttl") or "") if isinstance(control, dict) else ""
                out.append(
                    {
                        "role": role,
                        "content": str(b.get("text") or ""),
                        "cache": control is not None,
                        "ttl": ttl,
                    }
                )

    add("system", body.get("system"))
    for turn in body.get("messages") or []:
        add(str(turn.get("role")), turn.get("content"))
    return out


def anthropic_events(model: str, text: str, billed: Billed, output: int, stop: str) -> list[bytes]:
    """The SSE events of a streamed Messages API answer."""
    usage = {
        "input_tokens": billed.input,
        "cache_read_input_tokens": billed.cache_read,
        "cache_creation_input_tokens": billed.cache_write,
        "cache_creation": {
            "ephemeral_5m_input_tokens": billed.cache_write - billed.cache_write_1h,
            "ephemeral_1h_input_tokens": billed.cache_write_1h,
        },
        "output_tokens": 1,
    }
    message = {"id": "msg_bench", "type": "message", "role": "assistant", "model": model}
    payloads: list[dict[str, Any]] = [
        {"type": "message_start", "message": {**message, "content": [], "usage": usage}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    ]
    for piece in pieces_of(text):
        delta = {"type": "text_delta", "text": piece}
        payloads.append({"type": "content_block_delta", "index": 0, "delta": delta})
    payloads += [
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop},
            "usage": {"output_tokens": output},
        },
        {"type": "message_stop"},
    ]
    return [f"event: {p['type']}\ndata: {json.dumps(p)}\n\n".encode() for p in payloads]
