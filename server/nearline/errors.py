"""Exceptions raised by nearline.

Every error the user can act on derives from ``NearlineError`` and carries a message that says
what went wrong and, where there is one, how to fix it::

    NearlineError
     ├── ConfigError                 a setting has the wrong type or value (names key and allowed)
     ├── ModelError                  the model cannot be used
     │    └── ModelNotFoundError     no file at the configured path
     ├── DocumentError               a request the server cannot serve for this document
     │    ├── UnknownDocumentError   the document was never opened
     │    ├── PositionError          the position lies outside the document
     │    └── UnsupportedDocumentError   too large, or binary content
     ├── CatalogError                unknown model name or unreadable catalog
     ├── DownloadError               a model download failed (offline, HTTP error, cut)
     │    └── ChecksumMismatchError  the downloaded file is not the catalogued one
     ├── PrivacyError                content that policy keeps on this machine
     ├── ProviderError               a provider failed (``retryable`` says if another try helps)
     │    ├── ProviderKeyError       the API key's environment variable is unset
     │    └── OfflineError           the provider cannot be reached
     ├── DiffError                   an answer's diff does not apply to the current text
     ├── LedgerError                 the usage ledger cannot be read (a report, a budget)
     ├── TeamError                   the team database cannot be used (down, wrong, refused)
     ├── RemoteEngineError           a completion server failed (``busy``: it said so)
     └── EvalError                   ``nearline eval`` cannot run: no git history, a cost cap

Cancellation is not an error: superseded or cancelled work raises ``asyncio.CancelledError`` or
``concurrent.futures.CancelledError``. An escalation that is refused (privacy, a budget, a
runaway loop, no provider) or fails is not raised either: ``Escalator.run`` returns it as a
typed result (``escalation.results``).
"""

from __future__ import annotations


class NearlineError(Exception):
    """Base class for every error nearline reports to the user."""


class ConfigError(NearlineError):
    """A setting is invalid."""


class ModelError(NearlineError):
    """The model file is missing, unreadable or not loadable."""


class ModelNotFoundError(ModelError):
    """No model file at the configured path."""


class DocumentError(NearlineError):
    """A request names a document or position the server cannot serve."""


class UnknownDocumentError(DocumentError):
    """The document was not opened with textDocument/didOpen."""


class PositionError(DocumentError):
    """The position lies outside the document."""


class UnsupportedDocumentError(DocumentError):
    """The document is too large or holds binary content."""


class CatalogError(NearlineError):
    """The model catalog does not know a name, or cannot be read."""


class DownloadError(NearlineError):
    """A download failed."""


class ChecksumMismatchError(DownloadError):
    """The downloaded file's sha256 differs from the catalog's."""


class PrivacyError(NearlineError):
    """The request touches content that policy keeps on this machine."""


class ProviderError(NearlineError):
    """A provider failed. ``retryable`` says whether another try (or provider) may help."""

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        status: int | None = None,
        retryable: bool = False,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.status = status
        self.retryable = retryable


class ProviderKeyError(ProviderError):
    """The environment variable that should hold the provider's API key is unset."""


class OfflineError(ProviderError):
    """The provider cannot be reached (no network, DNS failure, connection refused)."""


class DiffError(NearlineError):
    """A unified diff that does not apply to the current document versions."""


class LedgerError(NearlineError):
    """The usage ledger cannot be read; writing problems are messages, never exceptions."""


class TeamError(NearlineError):
    """The team database cannot be reached, read or written. ``down`` tells an outage (try
    again later) from a mistake to fix (a wrong URL or password, a newer schema, no rights);
    the message never holds the connection string or its password."""

    def __init__(self, message: str, *, down: bool = False) -> None:
        super().__init__(message)
        self.down = down


class RemoteEngineError(NearlineError):
    """A completion server (``[completion.remote]``) failed, timed out or answered garbage;
    ``busy`` when it said it is busy (503, no free slot), which is not "down"."""

    def __init__(self, message: str, *, busy: bool = False) -> None:
        super().__init__(message)
        self.busy = busy


class EvalError(NearlineError):
    """``nearline eval`` cannot go on: not a git checkout, no history, or a cost over the cap."""
