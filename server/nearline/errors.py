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
     └── DownloadError               a model download failed (offline, HTTP error, cut)
          └── ChecksumMismatchError  the downloaded file is not the catalogued one

Cancellation is not an error: superseded or cancelled work raises ``asyncio.CancelledError`` or
``concurrent.futures.CancelledError``.
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
