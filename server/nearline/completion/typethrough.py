"""Typing-through: while the person types what the shown suggestion says, answer with the rest
of it without calling the model."""

from __future__ import annotations

from dataclasses import dataclass

from nearline.completion.context import CompletionContext
from nearline.completion.remote import RemoteAnswer


@dataclass
class Shown:
    anchor: int
    prefix: str
    line_suffix: str
    text: str
    model: str = ""
    """The model that wrote it ("": the service's local one)."""
    engine: str = "local"
    late: bool = False
    """The completion server's answer, in after the request was answered: the client asks
    again at the same place (``completionReady``) and gets it whole, once."""
    answer: RemoteAnswer | None = None
    """A late answer's usage, for the ledger row of the request that delivers it."""


@dataclass(frozen=True)
class Kept:
    """The rest of a shown suggestion, and who wrote it."""

    text: str
    model: str
    engine: str
    late: bool = False
    answer: RemoteAnswer | None = None


class ShownSuggestions:
    """The last suggestion shown per document."""

    def __init__(self) -> None:
        self._shown: dict[str, Shown] = {}

    def remember(
        self,
        uri: str,
        ctx: CompletionContext,
        text: str,
        *,
        model: str = "",
        engine: str = "local",
        late: bool = False,
        answer: RemoteAnswer | None = None,
    ) -> None:
        self._shown[uri] = Shown(
            ctx.anchor, ctx.prefix, ctx.line_suffix, text, model, engine, late, answer
        )

    def extend(self, uri: str, ctx: CompletionContext, text: str, *, model: str = "") -> bool:
        """A longer version of the suggestion shown for ``ctx`` (generation carried on);
        False when another is shown there now (the server's, say)."""
        shown = self._shown.get(uri)
        if shown is None or shown.prefix != ctx.prefix or not text.startswith(shown.text):
            return False
        shown.text = text
        shown.model, shown.engine = model, "local"
        return True

    def forget(self, uri: str) -> None:
        self._shown.pop(uri, None)

    def remainder(self, uri: str, ctx: CompletionContext) -> str | None:
        """The rest of the shown suggestion if the text typed since it was shown matches it
        (backspacing within the typed part keeps matching)."""
        kept = self.take(uri, ctx)
        return kept.text if kept is not None else None

    def take(self, uri: str, ctx: CompletionContext) -> Kept | None:
        """``remainder`` with who wrote it; a late answer is given whole at its own place."""
        shown = self._shown.get(uri)
        if shown is None or shown.anchor != ctx.anchor or shown.line_suffix != ctx.line_suffix:
            return None
        if not ctx.prefix.startswith(shown.prefix):
            return None
        typed = ctx.prefix[len(shown.prefix) :]
        late, answer = shown.late, shown.answer
        shown.late, shown.answer = False, None
        if late and not typed and shown.text:
            return Kept(shown.text, shown.model, shown.engine, True, answer)
        if typed and shown.text.startswith(typed) and len(typed) < len(shown.text):
            return Kept(shown.text[len(typed) :], shown.model, shown.engine)
        return None
