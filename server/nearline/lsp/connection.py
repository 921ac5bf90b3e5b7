"""One editor connection: the pygls server, the state, the notifier, and the timers the
handlers keep. Every handler takes it first."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from pygls.lsp.server import LanguageServer

from nearline.lsp.notifier import Notifier
from nearline.lsp.state import ServerState


@dataclass
class Connection:
    server: LanguageServer
    state: ServerState
    notifier: Notifier
    idle: dict[str, asyncio.TimerHandle] = field(default_factory=dict)
    """Per document: the warm-up timer started by an edit."""
    reindex: dict[str, asyncio.TimerHandle] = field(default_factory=dict)
    """Per document: the timer that puts its symbols into the project index."""
    watcher: asyncio.TimerHandle | None = None
    """The next look at the config files."""
    closing: asyncio.Task[None] | None = None
    shut_down: bool = False
    """Whether ``shutdown`` came (``exit`` then ends with 0, else 1)."""

    @property
    def encoding(self) -> str:
        """The position encoding agreed at ``initialize`` (UTF-16 by default)."""
        encoding = self.server.workspace.position_encoding
        return str(getattr(encoding, "value", encoding) or "utf-16")

    def request_id(self) -> object:
        return getattr(self.server.protocol, "msg_id", None)
