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
import math
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nearline.catalog import check_model_file
from nearline.completion.engine.base import Generation, StopReason, StopRule
from nearline.completion.engine.kvstate import KvState, KvStates, as_tokens, common_prefix
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


def _add_scratch_sequence(llm: Any) -> bool:
    """Give ``llm`` a context with a second sequence sharing the first's cells (``Llama``
    makes one with a single sequence), for ``LocalEngine._splice``. False (the context as it
    was) where llama.cpp cannot shift cells or make that context."""
    import llama_cpp
    from llama_cpp import _internals

    params = getattr(llm, "context_params", None)
    if params is None or not hasattr(llm, "_stack"):
        return False  # another llama-cpp-python: no splice, nothing else lost
    try:
        params.n_seq_max, params.kv_unified = 2, True
        ctx = _internals.LlamaContext(model=llm._model, params=params, verbose=False)
    except Exception as exc:
        log.info("no scratch sequence (%s): a keystroke before a suffix evaluates it again", exc)
        params.n_seq_max, params.kv_unified = 1, False
        return False
    if not llama_cpp.llama_memory_can_shift(ctx.memory):
        ctx.close()
        params.n_seq_max, params.kv_unified = 1, False
        return False
    old, llm._ctx = llm._ctx, llm._stack.enter_context(contextlib.closing(ctx))
    old.close()
    return True


def _logprob(logits: np.ndarray, token: int) -> float:
    """log P(token) under the softmax of ``logits``."""
    top = float(logits.max())
    return float(logits[token]) - top - math.log(float(np.exp(logits - top).sum()))


class PromptLookup:
    """Draft tokens by prompt lookup: the tokens that followed the last place where the
    sequence's last ``NGRAM`` tokens occurred before (in the prompt or the generation). Code
    repeats itself (names, calls, patterns); a draft is only a guess, checked by the model in
    one batch."""

    NGRAM = 3

    def __init__(self, tokens: Sequence[int]) -> None:
        self.tokens = np.asarray(tokens, dtype=np.int64)
        self._more: list[int] = []

    def add(self, token: int) -> None:
        self._more.append(token)

    def draft(self, k: int) -> list[int]:
        if k <= 0:
            return []
        seq = np.concatenate([self.tokens, np.asarray(self._more, dtype=np.int64)])
        n = self.NGRAM
        if len(seq) <= n:
            return []
        tail = seq[-n:]
        body = seq[:-1]  # a match must have a token after it
        hits = np.ones(len(body) - n + 1, dtype=bool)
        for i in range(n):
            hits &= body[i : len(body) - n + 1 + i] == tail[i]
        found = np.flatnonzero(hits)
        if not len(found):
            return []
        start = int(found[-1]) + n
        return [int(t) for t in seq[start : start + k]]


def _fits_forced(piece: bytes, needed: bytes) -> bool:
    """A token may begin a generation that must begin with the whitespace ``needed`` (typed
    before the cursor): it is a start of it, or it is all of it followed by something other
    than more whitespace (four typed spaces never become seven)."""
    if needed.startswith(piece):
        return True
    return piece.startswith(needed) and piece[len(needed) : len(needed) + 1] not in (b" ", b"\t")


KV_SWITCH_MIN = 32
"""A kept state is restored only when it saves evaluating at least this many tokens."""
KV_KEEP_MIN = 64
"""Windows shorter than this are cheap to evaluate again: not kept."""
SPLICE_MIN_TAIL = 8
"""A tail kept across an edit must be at least this long to be worth the splice."""
SPLICE_MAX_MIDDLE = 48
"""Edits whose tokens (old or new) are more than this are evaluated as usual."""
SCRATCH_SEQ = 1
"""The sequence a kept tail waits in while tokens go in before it."""
REFRESH_BATCH = 4
"""Tokens per step when a warm-up refreshes kept cells: a keystroke waits at most one step."""


class LocalEngine:
    def __init__(
        self, path: Path, settings: ModelSettings, kv_states: KvStates | None = None
    ) -> None:
        self.path = path
        self.settings = settings
        self.kv_states = kv_states
        """Evaluated windows kept in memory and on disk (None: none kept)."""
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
        self.drafts_offered = 0
        self.drafts_accepted = 0
        self.splices = 0
        self._splicing = False
        """Whether the context has the scratch sequence that ``_splice`` needs."""
        self._stale: int | None = None
        """The first position whose cells were kept across an edit (see ``_splice``)."""
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
        # Only a prompt with a suffix after the cursor has a tail worth splicing around; the
        # scratch sequence costs a second context at start-up.
        self._splicing = self.template.uses_suffix and _add_scratch_sequence(self._llm)
        self._abortable = self._abort.install(self._llm.ctx)
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
                [t for t, p in self._space_pieces if _fits_forced(p, needed)], dtype=np.intp
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

    def _decode(self, tokens: Sequence[int], *, all_logits: bool = False) -> None:
        """``Llama.eval`` (``all_logits``: one batch with every row's logits, for checking a
        draft); ``_Aborted`` when the abort flag stopped it. Then ``n_tokens`` has not moved,
        and the next evaluation removes whatever the stopped batch left in the cache."""
        llm = self._llm
        t0 = time.perf_counter()
        try:
            if all_logits:
                n_past = llm.n_tokens
                llm._ctx.kv_cache_seq_rm(-1, n_past, -1)
                llm._batch.set_batch(batch=tokens, n_past=n_past, logits_all=True)
                llm._ctx.decode(llm._batch)
                llm.input_ids[n_past : n_past + len(tokens)] = tokens
                llm.n_tokens += len(tokens)
            else:
                llm.eval(tokens)
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

    def _eval_prompt(
        self, tokens: Sequence[int], cancel: threading.Event, *, fresh: bool = False
    ) -> tuple[int, int, bool]:
        """Bring the KV cache to ``tokens``, keeping the common prefix already there, and,
        when only a few tokens in the middle changed (a keystroke before a FIM suffix), the
        common tail too (``_splice``); returns (reused, evaluated, finished). ``fresh``: no
        tail kept from before an edit (a warm-up refreshes them). Stops between batches, or
        inside one, when ``cancel`` is set."""
        llm = self._llm
        reused = common_prefix(llm.input_ids[: llm.n_tokens], as_tokens(tokens))
        if fresh and self._stale is not None and self._stale < reused:
            reused = self._stale  # cells past it were kept across an edit: a warm-up redoes them
        if self._splicing and not fresh and len(tokens) - reused > 2:
            spliced = self._splice(tokens, reused, cancel)
            if spliced is not None:
                return reused, *spliced
        if self.kv_states is not None and len(tokens) - reused > KV_SWITCH_MIN:
            reused = self._switch_state(tokens, reused)
        if reused == len(tokens):
            reused -= 1  # evaluate the last token again to have its logits
        if not llm._ctx.kv_cache_seq_rm(-1, reused, -1):
            reused = 0
        llm.n_tokens = reused
        if self._stale is not None and reused <= self._stale:
            self._stale = None  # the kept cells are gone: what follows is evaluated anew
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

    def _splice(
        self, tokens: Sequence[int], reused: int, cancel: threading.Event
    ) -> tuple[int, bool] | None:
        """Keep the cache's cells for the prompt's tail when the tokens before it changed only
        a little (a keystroke before a FIM suffix): the old middle out, the tail moved to its
        new positions (llama.cpp shifts its keys), the new middle evaluated in its place, and
        the last token evaluated again so the next token sees everything. The tail's cells
        were computed before the edit: close enough to go on typing, and marked stale (a
        warm-up evaluates them again). A cancel keeps the tail (see below). Returns (tokens
        evaluated, finished), or None when the cache has no such tail (nothing was touched:
        the caller evaluates as usual)."""
        llm = self._llm
        cached = np.asarray(llm.input_ids[: llm.n_tokens])
        want = np.asarray(tokens)
        m = len(want)
        # The tail is matched without the prompt's last token (a FIM middle marker, always
        # evaluated again; a cancelled request may have left it out of the cache).
        body = want[reused : m - 1][::-1]
        best: tuple[int, int] = (0, 0)
        for end in (np.flatnonzero(cached[reused:] == want[m - 2]) + reused + 1)[::-1][:8]:
            old = cached[reused:end][::-1]
            same = min(len(old), len(body))
            differ = np.flatnonzero(old[:same] != body[:same])
            tail = int(differ[0]) if len(differ) else same
            if tail > best[0]:
                best = (tail, int(end))
        tail, end = best
        old_middle, new_middle = end - tail - reused, m - 1 - tail - reused
        if tail < SPLICE_MIN_TAIL or max(old_middle, new_middle) > SPLICE_MAX_MIDDLE:
            return None
        import llama_cpp

        ctx, memory = llm._ctx, llm._ctx.memory
        if cancel.is_set():
            return 0, False
        tail_start = reused + old_middle
        ctx.kv_cache_seq_rm(0, end, -1)  # the old last token, and what was generated
        llama_cpp.llama_memory_seq_cp(memory, 0, SCRATCH_SEQ, tail_start, end)
        ctx.kv_cache_seq_rm(0, reused, end)
        finished = True
        try:
            if new_middle:
                self._decode_at(want[reused : reused + new_middle].tolist(), reused)
        except _Aborted:
            # Cut by a newer keystroke: the tail goes back in place of the old middle, so the
            # next request splices its own middle in (a cancel never loses the tail).
            ctx.kv_cache_seq_rm(0, reused, -1)
            want = np.concatenate([want[:reused], want[m - 1 - tail : m - 1], want[-1:]])
            new_middle, finished = 0, False
        shift = new_middle - old_middle
        if shift:
            ctx.kv_cache_seq_shift(SCRATCH_SEQ, tail_start, end, shift)
        llama_cpp.llama_memory_seq_cp(memory, SCRATCH_SEQ, 0, -1, -1)
        llama_cpp.llama_memory_seq_rm(memory, SCRATCH_SEQ, -1, -1)
        m = len(want)
        llm.input_ids[: m - 1] = want[: m - 1]
        llm.n_tokens = m - 1
        stale = reused + new_middle
        self._stale = stale if self._stale is None else min(self._stale, stale)
        if not finished or cancel.is_set():
            return new_middle, False  # the cache holds all but the last token: consistent
        try:
            self._decode_at([int(want[-1])], m - 1)
        except _Aborted:
            return new_middle, False
        llm.input_ids[m - 1] = want[-1]
        llm.n_tokens = m
        self.splices += 1
        return new_middle + 1, True

    def _refresh(self, tokens: Sequence[int], cancel: threading.Event) -> tuple[int, int, bool]:
        """Evaluate again, a batch at a time and in place, the cells kept across edits (a
        warm-up's job). The kept cells wait in the scratch sequence and each is dropped there
        once evaluated anew; a cancel between batches puts the rest back, still usable."""
        import llama_cpp

        assert self._stale is not None
        llm, start = self._llm, self._stale
        ctx, memory = llm._ctx, llm._ctx.memory
        end = len(tokens)
        ctx.kv_cache_seq_rm(0, end, -1)
        llama_cpp.llama_memory_seq_cp(memory, 0, SCRATCH_SEQ, start, end)
        ctx.kv_cache_seq_rm(0, start, end)
        position = start
        while position < end and not cancel.is_set():
            batch = list(tokens[position : position + REFRESH_BATCH])
            self._decode_at(batch, position)
            llama_cpp.llama_memory_seq_rm(memory, SCRATCH_SEQ, position, position + len(batch))
            position += len(batch)
        llama_cpp.llama_memory_seq_cp(memory, SCRATCH_SEQ, 0, -1, -1)  # what was not reached
        llama_cpp.llama_memory_seq_rm(memory, SCRATCH_SEQ, -1, -1)
        llm.n_tokens = end
        self._stale = position if position < end else None
        return start, position - start, position >= end

    def _decode_at(self, tokens: Sequence[int], position: int) -> None:
        """Evaluate ``tokens`` at ``position`` on (not at the end of the cache)."""
        llm = self._llm
        llm._batch.set_batch(batch=tokens, n_past=position, logits_all=False)
        try:
            llm._ctx.decode(llm._batch)
        except RuntimeError:
            if self._abort.raised:
                raise _Aborted() from None
            raise

    def cached(self, tokens: Sequence[int]) -> int:
        """How many leading ``tokens`` need no evaluation: in the cache, or in a kept state."""
        llm = self._llm
        if llm is None:
            return 0
        wanted = as_tokens(self._fit(tokens, 64))
        found = common_prefix(llm.input_ids[: llm.n_tokens], wanted)
        if self.kv_states is not None:
            found = max(found, self.kv_states.best(wanted)[0])
        return found

    def prefill(self, tokens: Sequence[int], cancel: threading.Event) -> int:
        tokens = self._fit(tokens, 64)
        llm = self._llm
        cached = common_prefix(llm.input_ids[: llm.n_tokens], as_tokens(tokens))
        if self._stale is not None and self._stale < cached and cached >= len(tokens) - 1:
            # Only cells kept across edits to refresh: batch by batch, never cut inside one
            # (a cut batch would take the kept tail with it, and the next keystroke would
            # evaluate all of it).
            return self._refresh(tokens, cancel)[1]
        with self._abort_on(cancel):
            _, evaluated, finished = self._eval_prompt(tokens, cancel, fresh=True)
        if finished:
            self._keep(memory=False)  # a window worth keeping across restarts
        return evaluated

    def _keep(self, *, memory: bool) -> None:
        """Keep the window the cache holds: on disk unless a kept one holds all but its last
        ``KV_SWITCH_MIN`` tokens, and in memory when ``memory`` (leaving it for another)."""
        kv, n = self.kv_states, self._llm.n_tokens if self._llm is not None else 0
        if kv is None or n < KV_KEEP_MIN:
            return
        new_on_disk = not kv.on_disk(as_tokens(self._llm.input_ids[:n]), KV_SWITCH_MIN)
        if not (memory or new_on_disk):
            return
        state = self._current_state()
        if memory:
            kv.remember(state)
        if new_on_disk:
            kv.save(state)

    # -- kept states ---------------------------------------------------------------------------
    def _switch_state(self, tokens: Sequence[int], reused: int) -> int:
        """Restore the kept state that shares the most tokens with ``tokens``, when it beats
        the cache's own ``reused`` by ``KV_SWITCH_MIN``; what the cache held is kept first, for
        switching back. Returns the tokens now reused."""
        assert self.kv_states is not None
        self._keep(memory=True)  # leaving this window: keep it for coming back
        wanted = as_tokens(tokens)
        found, state, disk_key = self.kv_states.best(wanted)
        if found < reused + KV_SWITCH_MIN:
            return reused
        if state is None and disk_key is not None:
            state = self.kv_states.load(disk_key)
            if state is None:
                return reused
        assert state is not None
        if not self._restore(state):
            self.kv_states.forget(disk_key, state)
            return 0
        if disk_key is not None:
            self.kv_states.stats.disk_restores += 1
            self.kv_states.remember(state)
        else:
            self.kv_states.stats.memory_restores += 1
        return min(found, len(state.tokens))

    def _current_state(self) -> KvState:
        """The cache's sequence as it is: its tokens and llama.cpp's copy of its cells."""
        import llama_cpp

        llm = self._llm
        n = llm.n_tokens
        llm._ctx.kv_cache_seq_rm(0, n, -1)  # what an aborted batch may have left past n
        ctx = llm._ctx.ctx
        size = llama_cpp.llama_state_seq_get_size(ctx, 0)
        buffer = (ctypes.c_uint8 * size)()
        written = llama_cpp.llama_state_seq_get_data(ctx, buffer, size, 0)
        return KvState(as_tokens(llm.input_ids[:n]), ctypes.string_at(buffer, written))

    def _restore(self, state: KvState) -> bool:
        """Put ``state`` in the cache; False (and an empty cache) when llama.cpp refuses it."""
        import llama_cpp

        llm = self._llm
        source = ctypes.cast(ctypes.c_char_p(state.data), ctypes.POINTER(ctypes.c_uint8))
        if not llama_cpp.llama_state_seq_set_data(llm._ctx.ctx, source, len(state.data), 0):
            llm._ctx.kv_cache_seq_rm(-1, 0, -1)
            llm.n_tokens = 0
            log.info("a kept KV state was refused; evaluating the window instead")
            return False
        n = len(state.tokens)
        llm.input_ids[:n] = state.tokens
        llm.n_tokens = n
        return True

    def counters(self) -> dict[str, int]:
        """What the engine did beyond plain decoding (for ``nearline/stats``)."""
        kv = self.kv_states.stats if self.kv_states is not None else None
        counts = {f"kv_{k}": v for k, v in vars(kv).items()} if kv is not None else {}
        return counts | {
            "drafts_offered": self.drafts_offered,
            "drafts_accepted": self.drafts_accepted,
            "splices": self.splices,
        }

    def _logits(self, row: int) -> np.ndarray:
        """The logits of a row of the last batch (-1: its last)."""
        return np.ctypeslib.as_array(
            ctypes.cast(self._llm._ctx.get_logits_ith(row), ctypes.POINTER(ctypes.c_float)),
            shape=(self._llm.n_vocab(),),
        )

    def _drop_last(self, n: int) -> None:
        """Take the last ``n`` tokens out of the cache (a draft that was not taken)."""
        llm = self._llm
        llm.n_tokens -= n
        llm._ctx.kv_cache_seq_rm(0, llm.n_tokens, -1)

    def close(self) -> None:
        """Keep the last window on disk (for the next start), and close the store. On the
        engine's thread or after it stopped."""
        if self.kv_states is not None:
            try:
                self._keep(memory=False)
            except Exception:  # never in the way of a shutdown
                log.debug("could not keep the last KV state", exc_info=True)
            self.kv_states.close()

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
        logprobs: list[float] = []
        text = ""
        reason = StopReason.CANCELLED if not finished else StopReason.LENGTH
        context = list(tokens[-8:])
        needed = forced_prefix.encode("utf-8")
        lookup = PromptLookup(tokens) if self.settings.draft_tokens else None
        ready = [-1]
        """Batch rows whose logits give the next tokens, in order (after an accepted draft the
        cache holds the token already)."""
        drafted: list[int] = []
        """Draft tokens in the cache after the last accepted token."""
        while finished and len(out) < max_tokens:
            if cancel.is_set():
                reason = StopReason.CANCELLED
                break
            if deadline is not None and out and time.perf_counter() >= deadline:
                # At least one token: a client that never asks again still sees a start.
                reason = StopReason.BUDGET
                break
            logits = self._logits(ready.pop(0))
            allowed = self._allowed(needed) if needed else None
            if allowed is not None:
                token = int(allowed[np.argmax(logits[allowed])])
                piece = llm._model.token_to_piece(token).rstrip(b"\0")
                needed = b"" if piece.startswith(needed) else needed[len(piece) :]
            else:
                token = int(np.argmax(logits))
                needed = b""
            if drafted and token == drafted[0]:
                drafted.pop(0)
                self.drafts_accepted += 1
            elif drafted:  # the model went another way: forget the rest of the draft
                self._drop_last(len(drafted))
                drafted, ready = [], []
            if token in self._stop_ids or llama_cpp.llama_vocab_is_eog(llm._model.vocab, token):
                reason = StopReason.STOP
                break
            out.append(token)
            logprobs.append(_logprob(logits, token))
            if lookup is not None:
                lookup.add(token)
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
            if ready:
                continue  # an accepted draft: its successor's logits are computed already
            room = max_tokens - len(out) - 1
            draft = lookup.draft(min(room, self.settings.draft_tokens)) if lookup else []
            if deadline is not None:
                left = deadline - time.perf_counter()
                draft = draft[: max(0, int(left / max(self._step_s, 1e-3) * 0.7) - 1)]
                if not draft and self._step_s >= left:
                    reason = StopReason.BUDGET  # the next token would come after the deadline
                    break
            try:
                if draft:
                    self._decode([token, *draft], all_logits=True)
                    self.drafts_offered += len(draft)
                    ready, drafted = list(range(len(draft) + 1)), list(draft)
                else:
                    self._decode([token])
                    ready = [-1]
            except _Aborted:
                reason = StopReason.CANCELLED
                break
        if drafted:  # drafts past the end: out of the cache, as if never evaluated
            self._drop_last(len(drafted))
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
            logprobs=tuple(logprobs),
        )
