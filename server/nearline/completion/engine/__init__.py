"""Engines that produce completions. Each implements ``CompletionEngine`` (see ``base``)."""

from nearline.completion.engine.base import CompletionEngine, Generation, StopReason

__all__ = ["CompletionEngine", "Generation", "StopReason"]
