"""The embedded engine: llama-cpp-python running a GGUF in this process.

Prompt evaluation and generation are driven step by step here (``Llama.eval`` plus greedy
argmax over the last logits) rather than through ``Llama.generate``, so that:
- the longest common token prefix with what is already in the KV cache is kept;
- the cancel flag and the time budget are checked between every prompt batch and every token;
- an interrupted evaluation leaves the KV cache consistent (``eval`` commits batch by batch), so
  the next request goes on from where this one stopped.

A cancelled job also stops inside a decode: llama.cpp's abort callback is checked after every
graph node (see ``AbortFlag``), so a newer keystroke does not wait for the step in progress.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nearline.catalog import check_model_file
from nearline.completion.engine.base import Generation, StopReason, StopRule
from nearline.completion.engine.templates import FimTemplate, detect_template, get_template
from nearline.config import ModelSettings
from nearline.errors import ModelError

log = logging.getLogger(__name__)


class AbortFlag:
    """The abort flag llama.cpp's decode checks after every graph node.

    The callback must be cheap and must not take the GIL (it runs on ggml's thread, per node),
    so it is C's ``strlen`` over a two-byte buffer: ``"\\0\\0"`` gives 0 (go on), ``"\\1\\0"``
    gives 1 (abort). ``bool (*)(void *)`` and ``size_t strlen(const char *)`` take their argument
    and return their value in the same registers on the platforms llama.cpp supports, and the
    caller reads the low byte (0 or 1)."""

    def __init__(self) -> None:
        self.buffer = ctypes.create_string_buffer(2)

    @property
    def raised(self) -> bool:
        return self.buffer.raw[0] == 1

    def raise_(self) -> None:
        ctypes.memset(self.buffer, 1, 1)

    def clear(self) -> None:
        ctypes.memset(self.buffer, 0, 1)

    def install(self, ctx: Any) -> bool:
        """Set the callback on a llama context; False where there is no C library to use."""
        import llama_cpp

        try:
            libc = ctypes.CDLL(None)
            strlen = ctypes.cast(libc.strlen, ctypes.c_void_p).value
        except (OSError, AttributeError, TypeError):  # pragma: no cover - no C library here
            return False
        if not strlen:  # pragma: no cover
            return False
        self._callback = llama_cpp.ggml_abort_callback(strlen)  # kept alive with self
        llama_cpp.llama_set_abort_callback(
            ctx, self._callback, ctypes.cast(self.buffer, ctypes.c_void_p)
        )
        return True


_LLAMA_LEVELS = {2: logging.INFO, 3: logging.ERROR}
"""llama.cpp's warnings and errors, as log levels (its info and debug lines are dropped)."""
_EXPECTED = (b"removing memory module entries",)
"""What llama.cpp logs as an error when a decode is aborted on purpose."""
_llama_log = logging.getLogger("nearline.llama")


def _route_llama_logs() -> None:
    """llama.cpp's log lines go to the ``nearline.llama`` logger rather than straight to
    stderr; the ones an intended abort causes are debug lines."""
    import llama_cpp

    @llama_cpp.llama_log_callback  # type: ignore[misc]
    def callback(level: int, text: bytes, _user: ctypes.c_void_p) -> None:
        if level not in _LLAMA_LEVELS or not text.strip():
            return
        quiet = any(e in text for e in _EXPECTED)
        message = text.decode("utf-8", "replace").rstrip()
        _llama_log.log(logging.DEBUG if quiet else _LLAMA_LEVELS[level], "%s", message)

    global _log_callback
    _log_callback = callback  # kept alive: llama.cpp holds only the pointer
    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))


_log_callback = None


class _Aborted(Exception):
    """A decode stopped by the abort flag."""


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class LocalEngine:
    def __init__(self, path: Path, settings: ModelSettings) -> None:
        self.path = path
        self.settings = settings
        self.model_id = path.stem
        self.template: FimTemplate = get_template("prefix-only")
        self.metadata: dict[str, str] = {}
        self.gpu_offload = False
        self._llm: Any = None
        self._stop_ids: frozenset[int] = frozenset()
        self._space_pieces: list[tuple[int, bytes]] | None = None
        self._allowed_cache: dict[bytes, Any] = {}
        self._abort = AbortFlag()
        self._abortable = False
        self._step_s = 0.0
        """How long one token's decode takes (a moving average): a generation with a deadline
        stops when the next decode would end past it."""

    def load(self) -> None:
        """Load the model; ``ModelError`` says what is wrong with the file."""
        check_model_file(self.path)
        import llama_cpp
        from llama_cpp import Llama

        threads = self.settings.threads
        if _log_callback is None:
            _route_llama_logs()
        try:
            self._llm = Llama(
                model_path=str(self.path),
                n_ctx=self.settings.n_ctx,
                n_batch=self.settings.n_batch,
                n_threads=threads,
                n_threads_batch=threads,
                n_gpu_layers=self.settings.n_gpu_layers,
                flash_attn=self.settings.flash_attn,
                verbose=False,
            )
        except Exception as exc:  # llama-cpp-python raises ValueError for a corrupt file
            raise ModelError(
                f"model file {self.path} could not be loaded ({exc}); it may be corrupt or "
                "made for a newer llama.cpp: download it again, or choose another model"
            ) from None
        self._abortable = self._abort.install(self._llm.ctx)
        self.metadata = dict(self._llm.metadata)
        self.gpu_offload = bool(llama_cpp.llama_supports_gpu_offload()) and (
            self.settings.n_gpu_layers != 0
        )
        names = [
            self.metadata.get("general.name", ""),
            self.metadata.get("general.basename", ""),
            self.path.name,
        ]
        if self.settings.template == "auto":
            self.template = detect_template(names, self._is_single_token)
        else:
            self.template = get_template(self.settings.template)
        self._stop_ids = frozenset(
            ids[0] for s in self.template.stop if len(ids := self._special_ids(s)) == 1
        )
        threading.Thread(
            target=self._index_space_pieces, name="nearline-vocab", daemon=True
        ).start()
        log.info(
            "loaded %s (template %s, %d threads, gpu layers %d)",
            self.path,
            self.template.id,
            threads,
            self.settings.n_gpu_layers,
        )

    @property
    def loaded(self) -> bool:
        return self._llm is not None

    def _index_space_pieces(self) -> None:
        """The tokens whose text starts with a space or tab, for ``forced_prefix``. A vocabulary
        lookup, safe beside decoding; built once after load (about 0.3 s for 49k tokens)."""
        import llama_cpp

        vocab = self._llm._model.vocab
        buf = ctypes.create_string_buffer(256)
        found = []
        for token in range(self._llm.n_vocab()):
            n = llama_cpp.llama_token_to_piece(vocab, token, buf, len(buf), 0, False)
            if n > 0 and buf.raw[0] in b" \t":
                found.append((token, buf.raw[:n]))
        self._space_pieces = found

    def _allowed(self, needed: bytes) -> Any:
        """Token ids whose text starts with ``needed`` or is a start of it; None until the index
        is built."""
        if self._space_pieces is None:
            return None
        allowed = self._allowed_cache.get(needed)
        if allowed is None:
            allowed = np.array(
                [t for t, p in self._space_pieces if p.startswith(needed) or needed.startswith(p)],
                dtype=np.intp,
            )
            if len(self._allowed_cache) > 64:
                self._allowed_cache.clear()
            self._allowed_cache[needed] = allowed
        return allowed if len(allowed) else None

    def _special_ids(self, text: str) -> list[int]:
        return list(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def _is_single_token(self, text: str) -> bool:
        return len(self._special_ids(text)) == 1

    def tokenize(self, text: str) -> list[int]:
        data = text.encode("utf-8", "replace")
        return list(self._llm.tokenize(data, add_bos=True, special=True))

    def _fit(self, tokens: Sequence[int], room: int) -> Sequence[int]:
        limit = self._llm.n_ctx() - room
        return tokens if len(tokens) <= limit else tokens[len(tokens) - limit :]

    def _decode(self, tokens: Sequence[int]) -> None:
        """``Llama.eval``; ``_Aborted`` when the abort flag stopped it. Then ``n_tokens`` has not
        moved, and the next evaluation removes whatever the stopped batch left in the cache."""
        t0 = time.perf_counter()
        try:
            self._llm.eval(tokens)
        except RuntimeError:
            if self._abort.raised:
                raise _Aborted() from None
            raise
        if len(tokens) == 1:
            took = time.perf_counter() - t0
            self._step_s = took if not self._step_s else 0.8 * self._step_s + 0.2 * took

    @contextlib.contextmanager
    def _abort_on(self, cancel: threading.Event) -> Iterator[None]:
        """While this runs, setting ``cancel`` also stops a decode in progress."""
        if self._abortable:
            self._abort.clear()  # a late cancel of an earlier job may have raised it
        hooks = getattr(cancel, "hooks", None)
        if not self._abortable or hooks is None:
            yield
            return
        hooks.append(self._abort.raise_)
        if cancel.is_set():  # set before the hook was in place
            self._abort.raise_()
        try:
            yield
        finally:
            hooks.remove(self._abort.raise_)
            self._abort.clear()

    def _eval_prompt(self, tokens: Sequence[int], cancel: threading.Event) -> tuple[int, int, bool]:
        """Bring the KV cache to ``tokens``, keeping the common prefix already there; returns
        (reused, evaluated, finished). Stops between batches, or inside one, when ``cancel`` is
        set."""
        llm = self._llm
        reused = _common_prefix(llm.input_ids[: llm.n_tokens].tolist(), tokens)
        if reused == len(tokens):
            reused -= 1  # evaluate the last token again to have its logits
        if not llm._ctx.kv_cache_seq_rm(-1, reused, -1):
            reused = 0
        llm.n_tokens = reused
        pending = list(tokens[reused:])
        step = self.settings.n_batch
        for i in range(0, len(pending), step):
            if cancel.is_set():
                return reused, i, False
            try:
                self._decode(pending[i : i + step])
            except _Aborted:
                return reused, i, False
        return reused, len(pending), True

    def prefill(self, tokens: Sequence[int], cancel: threading.Event) -> int:
        with self._abort_on(cancel):
            _, evaluated, _ = self._eval_prompt(self._fit(tokens, 64), cancel)
        return evaluated

    def generate(
        self,
        tokens: Sequence[int],
        *,
        max_tokens: int,
        stop: StopRule,
        deadline: float | None,
        cancel: threading.Event,
        forced_prefix: str = "",
    ) -> Generation:
        with self._abort_on(cancel):
            return self._generate(tokens, max_tokens, stop, deadline, cancel, forced_prefix)

    def _generate(
        self,
        tokens: Sequence[int],
        max_tokens: int,
        stop: StopRule,
        deadline: float | None,
        cancel: threading.Event,
        forced_prefix: str,
    ) -> Generation:
        import llama_cpp

        llm = self._llm
        tokens = self._fit(tokens, max_tokens + 1)
        t0 = time.perf_counter()
        reused, evaluated, finished = self._eval_prompt(tokens, cancel)
        t1 = time.perf_counter()
        out: list[int] = []
        text = ""
        reason = StopReason.CANCELLED if not finished else StopReason.LENGTH
        context = list(tokens[-8:])
        n_vocab = llm.n_vocab()
        needed = forced_prefix.encode("utf-8")
        while finished and len(out) < max_tokens:
            if cancel.is_set():
                reason = StopReason.CANCELLED
                break
            if deadline is not None and out and time.perf_counter() >= deadline:
                # At least one token: a client that never asks again still sees a start.
                reason = StopReason.BUDGET
                break
            logits = np.ctypeslib.as_array(
                ctypes.cast(llm._ctx.get_logits_ith(-1), ctypes.POINTER(ctypes.c_float)),
                shape=(n_vocab,),
            )
            allowed = self._allowed(needed) if needed else None
            if allowed is not None:
                token = int(allowed[np.argmax(logits[allowed])])
                piece = llm._model.token_to_piece(token).rstrip(b"\0")
                needed = b"" if piece.startswith(needed) else needed[len(piece) :]
            else:
                token = int(np.argmax(logits))
                needed = b""
            if token in self._stop_ids or llama_cpp.llama_vocab_is_eog(llm._model.vocab, token):
                reason = StopReason.STOP
                break
            out.append(token)
            text = llm.detokenize(out, prev_tokens=context).decode("utf-8", "ignore")
            cut = stop(text)
            if cut is not None:
                text = text[:cut]
                reason = StopReason.STOP
                break
            # The last token is evaluated only if another one follows: a stop here leaves it
            # out of the cache, and whoever goes on (carry-on, next keystroke) evaluates it.
            if len(out) >= max_tokens:
                break
            if deadline is not None and time.perf_counter() + self._step_s >= deadline:
                reason = StopReason.BUDGET  # the next token would come after the deadline
                break
            try:
                self._decode([token])
            except _Aborted:
                reason = StopReason.CANCELLED
                break
        t2 = time.perf_counter()
        return Generation(
            text=text,
            tokens=tuple(out),
            stop_reason=reason,
            prompt_tokens=len(tokens),
            reused_tokens=reused,
            evaluated_tokens=evaluated,
            eval_ms=(t1 - t0) * 1000,
            generate_ms=(t2 - t1) * 1000,
        )
