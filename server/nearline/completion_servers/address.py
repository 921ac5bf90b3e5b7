"""Whether a completion server's address is on this machine or the local network: the code
around the cursor goes there, so a public host needs ``completion.remote.allow_public``."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit


def origin(url: str) -> str:
    """Scheme, host and port of ``url`` (no path, no user info): for messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}"


def is_local_network(host: str) -> bool:
    """Loopback, private or link-local, for an address or a name that resolves only to such
    addresses. An unresolvable name is not (it cannot be checked)."""
    if not host:
        return False
    try:
        addresses = {ipaddress.ip_address(host.strip("[]"))}
    except ValueError:
        try:
            found = socket.getaddrinfo(host, None)
        except OSError:
            return False
        addresses = {ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in found}
    return bool(addresses) and all(
        a.is_loopback or a.is_private or a.is_link_local for a in addresses
    )


def public_refusal(url: str, allow_public: bool) -> str | None:
    """Why ``url`` may not be used (None when it may)."""
    host = urlsplit(url).hostname or ""
    if allow_public or is_local_network(host):
        return None
    return (
        f"the completion server {origin(url)} is not on this machine or a private network; "
        "the code around the cursor would go there: set completion.remote.allow_public = true "
        "to use it"
    )
