"""Engines that produce completions. Each implements ``CompletionEngine`` (see ``base``)."""

from nearline.engines.base import CompletionEngine, Generation, StopReason

__all__ = ["CompletionEngine", "Generation", "StopReason"]
