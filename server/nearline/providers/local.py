"""The embedded model as a chat engine, for escalated tasks a rule sends to the local tier.

It runs its own llama-cpp-python instance on a worker thread, beside the autocomplete engine,
so a long answer never holds up ghost text; cancelling the awaiting task stops the generation
at the next token.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nearline.catalog import check_model_file
from nearline.config import LOCAL_PROVIDER, ModelSettings
from nearline.errors import ModelError
from nearline.providers.types import ChatRequest, ChatResult, Usage


class LocalChatEngine:
    def __init__(self, path: Path, model: ModelSettings) -> None:
        self.name = LOCAL_PROVIDER
        self.path = path
        self.model = model
        self._llm: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        if self._llm is None:
            check_model_file(self.path)
            from llama_cpp import Llama

            try:
                self._llm = Llama(
                    model_path=str(self.path),
                    n_ctx=max(4096, self.model.n_ctx),
                    n_threads=self.model.threads,
                    n_gpu_layers=self.model.n_gpu_layers,
                    verbose=False,
                )
            except Exception as exc:
                raise ModelError(f"model file {self.path} could not be loaded ({exc})") from None
        return self._llm

    def _run(
        self, request: ChatRequest, stop: threading.Event, on_text: Callable[[str], None] | None
    ) -> dict[str, Any]:
        with self._lock:
            llm = self._load()
            messages = [{"role": m.role, "content": m.content} for m in request.messages]
            text = ""
            usage: dict[str, Any] = {}
            chunks = llm.create_chat_completion(
                messages=messages,
                max_tokens=request.max_tokens,
                temperature=request.temperature,
                stream=True,
            )
            try:
                for chunk in chunks:
                    if stop.is_set():
                        break
                    delta = chunk["choices"][0].get("delta", {}).get("content") or ""
                    if delta:
                        text += delta
                        if on_text is not None:
                            on_text(text)
            except ValueError as exc:  # llama-cpp-python: the prompt exceeds the context
                raise ModelError(
                    f"the local model cannot take this request ({exc}): select less, or "
                    "route it to a cloud tier"
                ) from None
            prompt_tokens = len(
                llm.tokenize("\n".join(m["content"] for m in messages).encode(), add_bos=False)
            )
            usage = {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": len(llm.tokenize(text.encode(), add_bos=False)),
            }
            return {"text": text, "usage": usage}

    async def chat(
        self, request: ChatRequest, on_text: Callable[[str], None] | None = None
    ) -> ChatResult:
        stop = threading.Event()
        t0 = time.perf_counter()
        try:
            out = await asyncio.to_thread(self._run, request, stop, on_text)
        except asyncio.CancelledError:
            stop.set()
            raise
        usage = out["usage"]
        return ChatResult(
            text=out["text"],
            usage=Usage(
                input_tokens=usage["prompt_tokens"], output_tokens=usage["completion_tokens"]
            ),
            provider=LOCAL_PROVIDER,
            model=self.path.stem,
            latency_ms=(time.perf_counter() - t0) * 1000,
            attempts=1,
        )

    async def aclose(self) -> None:
        self._llm = None
