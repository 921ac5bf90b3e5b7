"""Typing-through: while the person types what the shown suggestion says, answer with the rest
of it without calling the model."""

from __future__ import annotations

from dataclasses import dataclass

from nearline.completion.context import CompletionContext


@dataclass
class Shown:
    anchor: int
    prefix: str
    line_suffix: str
    text: str


class ShownSuggestions:
    """The last suggestion shown per document."""

    def __init__(self) -> None:
        self._shown: dict[str, Shown] = {}

    def remember(self, uri: str, ctx: CompletionContext, text: str) -> None:
        self._shown[uri] = Shown(ctx.anchor, ctx.prefix, ctx.line_suffix, text)

    def extend(self, uri: str, ctx: CompletionContext, text: str) -> None:
        """A longer version of the suggestion shown for ``ctx`` (generation carried on)."""
        shown = self._shown.get(uri)
        if shown is not None and shown.prefix == ctx.prefix and text.startswith(shown.text):
            shown.text = text

    def forget(self, uri: str) -> None:
        self._shown.pop(uri, None)

    def remainder(self, uri: str, ctx: CompletionContext) -> str | None:
        """The rest of the shown suggestion if the text typed since it was shown matches it
        (backspacing within the typed part keeps matching)."""
        shown = self._shown.get(uri)
        if shown is None or shown.anchor != ctx.anchor or shown.line_suffix != ctx.line_suffix:
            return None
        if not ctx.prefix.startswith(shown.prefix):
            return None
        typed = ctx.prefix[len(shown.prefix) :]
        if typed and shown.text.startswith(typed) and len(typed) < len(shown.text):
            return shown.text[len(typed) :]
        return None
