"""What an escalation comes to, as typed variants rather than exceptions::

    Answered       a provider answered in prose (explain, ask)
    Changed        a provider answered with a diff that applies: the files' new text
    Unappliable    a provider answered (and was paid) but its diff does not apply
    Refused        nothing was sent: privacy, a budget, a runaway loop, no provider, or none
                   that meets the project's data policy
    Failed         every provider failed; nothing changed

``Answered``, ``Changed`` and ``Unappliable`` carry the provider's ``ChatResult`` (its usage is
what the ledger bills); ``Refused`` and ``Failed`` cost nothing."""

from __future__ import annotations

from dataclasses import dataclass

from nearline.errors import NearlineError, OfflineError
from nearline.escalation.router import Decision
from nearline.providers import ChatResult
from nearline.vocab import StrEnum


@dataclass(frozen=True)
class FileChange:
    uri: str
    path: str
    old_text: str | None
    """None for a file the answer creates."""
    new_text: str
    version: int | None


@dataclass(frozen=True)
class Answered:
    decision: Decision
    result: ChatResult
    text: str


@dataclass(frozen=True)
class Changed:
    decision: Decision
    result: ChatResult
    text: str
    changes: tuple[FileChange, ...]


@dataclass(frozen=True)
class Unappliable:
    decision: Decision
    result: ChatResult
    text: str
    reason: str
    """Why the answer's diff does not apply (the file, the hunk)."""


class RefusalKind(StrEnum):
    PRIVACY = "privacy"
    BUDGET = "budget"
    LOOP = "loop"
    ROUTING = "routing"
    DATA_POLICY = "data-policy"
    """No provider of the tier meets the project's ``privacy.providers``."""


@dataclass(frozen=True)
class Refused:
    reason: str
    kind: RefusalKind
    decision: Decision | None = None


@dataclass(frozen=True)
class Failed:
    error: NearlineError
    """A ``ProviderError`` (every provider failed), or the local model's ``ModelError``."""
    decision: Decision

    @property
    def offline(self) -> bool:
        return isinstance(self.error, OfflineError)


Paid = Answered | Changed | Unappliable
"""A provider answered: the request has a cost."""
EscalationResult = Answered | Changed | Unappliable | Refused | Failed
