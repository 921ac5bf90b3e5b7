"""The hot path: a completion for one keystroke (``service``) through typing-through, the cache,
the prompt window, the engine and post-processing. Imports no accounting, escalation or LSP
code."""

from nearline.completion.result import CompletionResult, Source, Stats
from nearline.completion.service import CompletionService, build_service

__all__ = ["CompletionResult", "CompletionService", "Source", "Stats", "build_service"]
